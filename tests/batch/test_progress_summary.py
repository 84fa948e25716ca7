"""Batch progress (counts, rates, ETA by bytes), the summary page, and option validation."""

from __future__ import annotations

import json

import pytest

from affectlens.batch.options import BatchOptions
from affectlens.batch.progress import BatchProgress
from affectlens.batch.summary import batch_summary, write_summary

LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise", "contempt")


def test_progress_counts_and_eta_by_bytes(tmp_path):
    p = BatchProgress(total_items=3, total_bytes=400, out_dir=tmp_path, show=False)
    assert p.snapshot()["eta_s"] is None  # nothing finished yet: no rate to extrapolate
    p.update({"status": "done", "frames": 10, "faces": 12}, 100)
    p.update({"status": "invalid", "frames": 0, "faces": 0}, 100)
    snap = json.loads((tmp_path / "progress.json").read_text())
    assert (snap["items_done"], snap["ok"], snap["failed"], snap["frames"], snap["faces"]) == (2, 1, 1, 10, 12)
    assert snap["eta_s"] == pytest.approx(snap["seconds"], rel=0.5, abs=0.05)  # half the bytes left: ~ time so far
    p.update({"status": "done", "frames": 1, "faces": 1}, 200)
    assert p.close()["eta_s"] == 0.0


def _entry(name, status, faces=0, shares=None, error="", subject=""):
    return {"item": name, "path": f"/data/{name}", "kind": "video", "status": status, "faces": faces, "frames": 5,
            "attempts": 1, "error": error, "outputs": {}, "subject": subject,
            "stats": {"faces": faces, "shares": shares or {}, "engagement": 0.5 if faces else None}}


def test_summary_pools_shares_by_faces_and_escapes_names(tmp_path):
    entries = [_entry("a.mp4", "done", 3, {"happy": 1.0}), _entry("b.mp4", "done", 1, {"sad": 1.0}),
               _entry("<img src=x>.jpg", "invalid", error="<b>corrupt</b>")]
    s = batch_summary(entries, LABELS, {})
    assert s["shares"]["happy"] == pytest.approx(0.75) and s["shares"]["sad"] == pytest.approx(0.25)
    assert (s["done"], s["invalid"], s["faces"]) == (2, 1, 4)
    write_summary(tmp_path, entries, LABELS, {"engine": "local"})
    html = (tmp_path / "summary.html").read_text()
    assert "<img src=x>" not in html and "&lt;img src=x&gt;" in html and "&lt;b&gt;corrupt" in html
    assert "#fbc02d" in html  # the palette's happy
    assert json.loads((tmp_path / "summary.json").read_text())["items"] == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"engine": "spark"}, "engine must be one of"), ({"workers": -1}, "workers and threads"),
    ({"max_attempts": 0}, "max_attempts"), ({"smooth": "kalman"}, "smooth must be one of"),
    ({"interval_s": 0}, "interval_s must be > 0")])
def test_bad_options_are_refused_before_any_worker_starts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchOptions(**kwargs)


def test_results_key_ignores_engine_and_workers_but_not_sampling():
    base = BatchOptions().results_key("abc")
    assert BatchOptions(engine="ray", workers=8, threads=2).results_key("abc") == base
    assert BatchOptions(fps=5).results_key("abc") != base
    assert BatchOptions().results_key("other-model") != base


def test_running_videos_count_frames_and_bytes_until_they_finish(tmp_path):
    p = BatchProgress(total_items=2, total_bytes=1000, out_dir=tmp_path, show=False)
    p.live("a", 40, 0.5, 800)  # half of an 800-byte video analysed, 40 frames so far
    snap = json.loads((tmp_path / "progress.json").read_text())
    assert (snap["frames"], snap["running"], snap["items_done"]) == (40, 1, 0)
    assert snap["eta_s"] is not None and snap["bytes_per_s"] > 0  # 400 of 1000 bytes: a rate exists
    p.update({"item": "a", "status": "done", "frames": 80, "faces": 80}, 800)
    snap = p.snapshot()
    assert (snap["frames"], snap["running"], snap["items_done"]) == (80, 0, 1)  # not 120: live counts replaced


def test_subjects_pool_their_items_faces():
    entries = [_entry("a.mp4", "done", 3, {"happy": 1.0}, subject="S1"),
               _entry("b.mp4", "done", 1, {"sad": 1.0}, subject="S1"),
               _entry("c.mp4", "done", 2, {"fear": 1.0}, subject="S2"), _entry("d.mp4", "done", 2, {"fear": 1.0}),
               _entry("e.mp4", "invalid", subject="S3")]
    subjects = {s["subject"]: s for s in batch_summary(entries, LABELS, {})["subjects"]}
    assert set(subjects) == {"S1", "S2"}  # no subject: left out; nothing analysed: left out
    assert subjects["S1"]["faces"] == 4 and subjects["S1"]["shares"]["happy"] == pytest.approx(0.75)
    assert subjects["S1"]["engagement"] == pytest.approx(0.5)
