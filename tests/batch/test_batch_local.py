"""``affectlens batch`` on the local engine, as a real subprocess: real media with bad files mixed
in, every good item exactly once, every bad one reported, a killed worker, and resumable reruns."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from batch_helpers import (expected_rows, good_media, jsonl_entries, kill_when_running, make_bad_files,
                           manifest_rows, write_manifest)

pa = pytest.importorskip("pyarrow")


def batch_cmd(*args):
    return [sys.executable, "-m", "affectlens", "batch", *map(str, args), "--workers", "2", "--fps", "5", "-q"]


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    good = good_media()
    bad = make_bad_files(root / "bad")
    rows = [{"path": str(p), "subject": f"S{i:02d}", "session": "s1", "consent_ref": f"C-{i}"}
            for i, p in enumerate(good.values())]
    rows.append({"path": str(root / "missing.jpg"), "subject": "S99", "session": "", "consent_ref": ""})
    manifest = write_manifest(root / "study.csv", rows)
    out = root / "out"
    r = subprocess.run(batch_cmd(manifest, root / "bad", "--out", out), capture_output=True, text=True, timeout=600)
    return {"out": out, "good": good, "bad": {**bad, "missing.jpg": root / "missing.jpg"}, "proc": r,
            "cmd": batch_cmd(manifest, root / "bad", "--out", out)}


def test_every_good_item_done_once_every_bad_one_reported(mixed_run):
    out, r = mixed_run["out"], mixed_run["proc"]
    assert r.returncode == 1, r.stderr  # some inputs are bad: reported, not fatal
    rows = manifest_rows(out)
    by_name = Counter(row["path"].rsplit("/", 1)[1] for row in rows)
    assert set(by_name) == set(mixed_run["good"]) | set(mixed_run["bad"])
    assert set(by_name.values()) == {1}
    for row in rows:
        name = row["path"].rsplit("/", 1)[1]
        if name in mixed_run["good"]:
            assert row["status"] == "done", row
            assert row["model_sha256"] and len(row["content_sha256"]) == 64 and float(row["seconds"]) > 0
        elif name == "truncated.avi":  # decodes up to the cut: outputs for that part, reported as partial
            assert row["status"] == "partial" and "decoding stopped" in row["error"], row
            assert int(row["frames"]) > 0 and (out / "items" / row["item"] / "summary.json").exists()
        else:
            assert row["status"] == "invalid" and name in row["error"], row
            assert row["attempts"] == "1"  # unreadable input: not retried
    assert not list((out / "items").glob("*.tmp-*"))
    assert "5 done, 1 partly decoded, 6 unreadable" in r.stderr


def test_dataset_has_one_partition_per_source_matching_the_item_outputs(mixed_run):
    from affectlens.batch import read_dataset

    out = mixed_run["out"]
    table = read_dataset(out).to_pandas()
    done = [row for row in manifest_rows(out) if row["status"] in ("done", "partial")]
    sizes = table.groupby("source").size().to_dict()
    for row in done:
        assert sizes.get(row["item"], 0) == expected_rows(row) == int(row["faces"]), row["path"]
    assert set(sizes) <= {row["item"] for row in done}
    video = table[table["kind"] == "video"]
    assert len(video) > 0 and video.groupby(["source", "frame_index", "track_id"]).size().max() == 1
    subj = dict(zip((row["item"] for row in done), (row["subject"] for row in done)))
    assert (table["subject"] == table["source"].map(subj)).all()
    labels = [c for c in table.columns if c.startswith("raw_")]
    assert np.allclose(table[labels].sum(axis=1), 1.0, atol=1e-3)


def test_image_item_has_the_same_faces_as_the_recognizer(mixed_run, recognizer):
    row = next(r for r in manifest_rows(mixed_run["out"]) if r["path"].endswith("multi_face.jpg"))
    doc = json.loads(open(json.loads(row["outputs"])["faces_json"]).read())
    faces = recognizer.predict(mixed_run["good"]["multi_face.jpg"])
    assert doc["model"] == row["model"] and len(doc["images"][0]["faces"]) == len(faces) >= 2
    got = np.array([[f["scores"][k] for k in faces.labels] for f in doc["images"][0]["faces"]])
    assert np.allclose(got, faces.probs, atol=1e-4)


def test_summary_lists_sources_and_failed_items(mixed_run):
    html = (mixed_run["out"] / "summary.html").read_text()
    for name in mixed_run["bad"]:
        assert name in html
    assert "face_noface.mov" in html and "not inner state" in html
    assert "Per subject" in html and "S04" in html  # subjects from the manifest CSV
    assert "<script" not in html
    opts = json.loads((mixed_run["out"] / "options.json").read_text())
    assert opts["options"]["fps"] == 5 and len(opts["model_sha256"]) == 64


def test_rerun_skips_everything_already_done(mixed_run):
    out = mixed_run["out"]
    before = len(jsonl_entries(out))
    r = subprocess.run(mixed_run["cmd"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert len(jsonl_entries(out)) == before  # nothing processed again
    assert "12 skipped" in r.stderr


@pytest.mark.slow
def test_killed_worker_then_rerun_completes_without_duplicates_or_losses(tmp_path):
    good = good_media()
    inputs = [good["face_noface.mov"], good["single_face.mp4"], good["single_face.jpg"]]
    out = tmp_path / "out"
    proc = subprocess.Popen(batch_cmd(*inputs, "--out", out, "--max-attempts", "1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = kill_when_running(out / "items", "face_noface", stop=lambda: proc.poll() is not None)
    _, err = proc.communicate(timeout=300)
    assert pid is not None and pid != proc.pid, err
    assert proc.returncode == 1, err
    first = {row["path"]: row for row in manifest_rows(out)}
    killed = first[str(good["face_noface.mov"])]
    assert killed["status"] == "failed" and "died" in killed["error"], killed
    not_done = {p for p, row in first.items() if row["status"] != "done"}

    r = subprocess.run(batch_cmd(*inputs, "--out", out), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = manifest_rows(out)
    assert len(rows) == 3 and all(row["status"] == "done" for row in rows)
    rerun = jsonl_entries(out)[len(first):]  # the driver only appends: these are the rerun's items
    assert {e["path"] for e in rerun} == not_done
    from affectlens.batch import read_dataset

    sizes = read_dataset(out).to_pandas().groupby("source").size().to_dict()
    assert {row["item"]: expected_rows(row) for row in rows if expected_rows(row)} == sizes
    assert len(list((out / "dataset").rglob("*.parquet"))) == 3
    assert not list((out / "items").glob("*.tmp-*"))
