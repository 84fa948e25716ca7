"""``affectlens video`` end to end on the shared clips: tracks, outputs that agree, robustness."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from html.parser import HTMLParser

import cv2
import pytest

from conftest import VIDEOS, need


def run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "affectlens", "video", *map(str, args), "-q"],
                          capture_output=True, text=True, timeout=timeout)


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def talking_head(tmp_path_factory):
    out = tmp_path_factory.mktemp("talk")
    r = run(need(VIDEOS / "WolfgangLanger_Pexels.mp4"), "--out", out, "--every", "2", "--interval", "2",
            "--annotate", "--end", "12")
    assert r.returncode == 0, r.stderr
    return out


def test_single_face_clip_has_one_stable_track(talking_head):
    summary = json.loads((talking_head / "summary.json").read_text())
    tracks = summary["tracks"]
    assert len(tracks) == 1
    rows = _csv(talking_head / "frames.csv")
    assert {r["track_id"] for r in rows} == {str(tracks[0]["track_id"])}
    assert len(rows) >= 0.9 * summary["frames_analysed"]


def test_the_outputs_name_the_models_and_the_schedule(talking_head):
    from affectlens.models.registry import select_variant
    from affectlens.models import resolve_spec

    summary = json.loads((talking_head / "summary.json").read_text())
    spec = resolve_spec(select_variant(None, "auto")[0])
    assert summary["model"]["name"] == spec.name and summary["model"]["sha256"] == spec.sha256
    assert summary["model"]["cpu"] and summary["model"]["choice"]
    assert summary["options"]["classify_per_s"] == 30.0 and summary["options"]["detect_every"] == 0
    rows = _csv(talking_head / "frames.csv")
    assert {"quality", "reliable", "read"} <= set(rows[0])
    assert all(r["emotion"] == "unreliable" for r in rows if r["reliable"] == "0")
    html = (talking_head / "report.html").read_text()
    assert spec.name in html and spec.sha256[:16] in html


def test_outputs_agree_with_each_other(talking_head):
    summary = json.loads((talking_head / "summary.json").read_text())
    frames = [json.loads(line) for line in (talking_head / "frames.jsonl").read_text().splitlines()]
    rows = _csv(talking_head / "frames.csv")
    intervals = _csv(talking_head / "intervals.csv")
    assert summary["frames_analysed"] == len(frames)
    assert len(rows) == sum(len(f["faces"]) for f in frames)
    per_track = {}
    for r in rows:
        per_track[r["track_id"]] = per_track.get(r["track_id"], 0) + 1
    sums = {}
    for r in intervals:
        sums[r["track_id"]] = sums.get(r["track_id"], 0) + int(r["frames_with_face"])
    assert sums == per_track
    for r in intervals:
        shares = sum(float(v) for k, v in r.items() if k.startswith("share_"))
        assert shares == pytest.approx(1.0, abs=1e-3) or int(r["frames_with_face"]) == 0


def test_episodes_agree_with_the_smoothed_frames(talking_head):
    """Every episode of the real clip spans frames whose smoothed probability stays above the end threshold."""
    episodes = _csv(talking_head / "episodes.csv")
    rows = _csv(talking_head / "frames.csv")
    summary = json.loads((talking_head / "summary.json").read_text())
    assert len(summary["episodes"]) == len(episodes) >= 1, "she smiles: at least one episode"
    for ep in episodes:
        inside = [r for r in rows if r["track_id"] == ep["track_id"]
                  and float(ep["start_ms"]) <= float(r["timestamp_ms"]) <= float(ep["end_ms"])]
        probs = [float(r[ep["emotion"]]) for r in inside]
        assert len(inside) == int(ep["frames"]) and min(probs) >= 0.4 - 1e-6
        assert max(probs) == pytest.approx(float(ep["peak_prob"]), abs=1e-3) and probs[0] >= 0.5 - 1e-6
        assert float(ep["duration_ms"]) >= 300 and ep["emotion"] != "neutral"
    assert "Expression episodes" in (talking_head / "report.html").read_text()


def test_report_and_annotated_video(talking_head):
    html = (talking_head / "report.html").read_text()
    HTMLParser().feed(html)
    assert "<svg" in html and "consent" in html.lower()
    assert "src=\"http" not in html and "href=\"http" not in html
    cap = cv2.VideoCapture(str(talking_head / "annotated.mp4"))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    summary = json.loads((talking_head / "summary.json").read_text())
    assert n == summary["frames_analysed"]


def test_face_leaves_the_frame(tmp_path):
    r = run(need(VIDEOS / "face_noface.mov"), "--out", tmp_path, "--every", "2")
    assert r.returncode == 0, r.stderr
    frames = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    present = [any(f["track_id"] > 0 for f in fr["faces"]) for fr in frames]
    assert present[0] and not present[-1], "face at the start, gone at the end"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["tracks"]) >= 1
    assert summary["tracks"][0]["last_ms"] < frames[-1]["timestamp_ms"]


def test_crowd_has_simultaneous_tracks(tmp_path):
    r = run(need(VIDEOS / "crowd_walking.mp4"), "--out", tmp_path, "--every", "2")
    assert r.returncode == 0, r.stderr
    frames = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    simultaneous = max(sum(1 for f in fr["faces"] if f["track_id"] > 0) for fr in frames)
    assert simultaneous >= 2


def test_no_face_video_gives_zero_tracks(tmp_path):
    r = run(need(VIDEOS / "no_face.mp4"), "--out", tmp_path, "--every", "3")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["tracks"] == [] and summary["frames_analysed"] > 20
    assert "no faces" in (tmp_path / "report.html").read_text().lower()


def test_bad_sources_fail_cleanly(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    r = run(tmp_path / "empty.mp4", "--out", tmp_path / "o")
    assert r.returncode == 1 and "empty.mp4: empty file" in r.stderr and "Traceback" not in r.stderr
    r = run(tmp_path / "missing.mov", "--out", tmp_path / "o")
    assert r.returncode == 1 and "no such file" in r.stderr
    (tmp_path / "notes.mp4").write_text("not a video")
    r = run(tmp_path / "notes.mp4", "--out", tmp_path / "o")
    assert r.returncode == 1 and "notes.mp4" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()  # a bad input leaves no empty output folder behind


@pytest.mark.parametrize("args, message", [
    (("--classify-per-s", "-1"), "--classify-per-s must be in [0, 10000]"),
    (("--smooth", "moving-average", "--window-s", "0"), "--window-s must be in (0, 60]"),
    (("--start", "5", "--end", "2"), "--end (2.0 s) must be after --start (5.0 s)"),
    (("--every", "0"), "--every must be >= 1"),
    (("--temporal-model", "temporal-gru"), "--temporal-model is a setting of --smooth learned"),
])
def test_option_errors_name_the_flags(tmp_path, args, message):
    r = run(need(VIDEOS / "single_face.mp4"), "--out", tmp_path / "o", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "_per_s" not in r.stderr and not (tmp_path / "o").exists()


def test_resume_continues_after_the_last_written_frame(tmp_path):
    src = need(VIDEOS / "single_face.mp4")
    assert run(src, "--out", tmp_path, "--end", "1").returncode == 0
    first = (tmp_path / "frames.jsonl").read_text().splitlines()
    with open(tmp_path / "frames.jsonl", "a") as fh:
        fh.write('{"frame_index": 99, "torn')  # as if killed mid-write
    assert run(src, "--out", tmp_path, "--resume").returncode == 0
    frames = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    idx = [f["frame_index"] for f in frames]
    assert idx[: len(first)] == [json.loads(line)["frame_index"] for line in first]
    assert idx == sorted(set(idx)) and len(idx) == 72


def test_a_resumed_run_keeps_the_tracks_of_an_uninterrupted_one(tmp_path):
    """--resume re-analyses the last second without writing it: the face keeps its track id, so
    the resumed outputs have the tracks and episodes an uninterrupted run has."""
    src = need(VIDEOS / "single_face.mp4")
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run(src, "--out", whole).returncode == 0
    assert run(src, "--out", part, "--end", "1.2").returncode == 0
    assert run(src, "--out", part, "--resume").returncode == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (whole, part))
    assert a["frames_analysed"] == b["frames_analysed"] == 72
    assert [t["track_id"] for t in a["tracks"]] == [t["track_id"] for t in b["tracks"]] == [1]
    rows_a, rows_b = _csv(whole / "frames.csv"), _csv(part / "frames.csv")
    assert {r["track_id"] for r in rows_b} == {"1"} and len(rows_a) == len(rows_b)
    same = sum(x["emotion"] == y["emotion"] for x, y in zip(rows_a, rows_b))
    assert same >= 0.9 * len(rows_a)


def test_ctrl_c_leaves_valid_outputs_and_resume_completes(tmp_path):
    import signal
    import time

    src = need(VIDEOS / "face_noface.mov")
    # As from a terminal: SIGINT at its default even when the suite itself runs in the background
    # (a shell's `cmd &` starts it with SIGINT ignored, the child inherits that and never stops).
    proc = subprocess.Popen([sys.executable, "-m", "affectlens", "video", str(src), "--out", str(tmp_path), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    jsonl = tmp_path / "frames.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not jsonl.exists() or jsonl.read_text().count("\n") < 50):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["processing"]["interrupted"] is True
    done = summary["frames_analysed"]
    assert 50 <= done < 169
    assert len(_csv(tmp_path / "frames.csv")) <= done
    r = run(src, "--out", tmp_path, "--resume")
    assert r.returncode == 0, r.stderr
    frames = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [f["frame_index"] for f in frames] == list(range(169))
    assert json.loads((tmp_path / "summary.json").read_text())["frames_analysed"] == 169


def test_library_warnings_reach_the_terminal_while_native_messages_are_hidden(tmp_path):
    """A warning logged during the run (here: --resume with nothing to resume) is printed, although
    standard error's file descriptor goes to the native-message sink meanwhile."""
    r = run(need(VIDEOS / "single_face.mp4"), "--out", tmp_path / "new", "--resume", "--end", "0.5")
    assert r.returncode == 0, r.stderr
    assert "nothing to resume" in r.stderr and "starting from the beginning" in r.stderr
