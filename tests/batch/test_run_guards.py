"""run_batch refuses a second batch on the same output folder before touching anything."""

from __future__ import annotations

import pytest

fcntl = pytest.importorskip("fcntl")
pytest.importorskip("pyarrow")


def test_second_batch_on_the_same_folder_is_refused(tmp_path):
    from affectlens.batch import run_batch
    from affectlens.batch.run import BatchBusyError

    out = tmp_path / "out"
    out.mkdir()
    (out / "items").mkdir()
    stale = out / "items" / "clip-0123456789.tmp-999999"
    stale.mkdir()
    with open(out / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "another batch" holds the folder
        with pytest.raises(BatchBusyError, match="another batch is writing"):
            run_batch([tmp_path / "nothing.jpg"], out)
        assert stale.exists()  # its temp files were left alone
    res = run_batch([], out)  # lock released: runs (no items), and clears the stale temp folder
    assert res.items == [] and not stale.exists()


def test_report_options_reach_the_videos_and_defaults_keep_earlier_batches_keys(tmp_path):
    import dataclasses
    import hashlib
    import json

    from affectlens.batch import BatchOptions, run_batch
    from conftest import VIDEOS, need

    # the key of the default options, computed as before the report options existed
    opts = BatchOptions()
    old_fields = {k: v for k, v in dataclasses.asdict(opts).items()
                  if k not in ("engine", "address", "workers", "threads", "max_attempts",
                               "thumbnails", "min_track_s", "scene_cut_distance", "codec")}
    old_fields["model"] = "sha"
    old_key = hashlib.sha256(json.dumps(old_fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert opts.results_key("sha") == old_key
    assert BatchOptions(thumbnails=False).results_key("sha") != old_key  # a changed option redoes the items
    with pytest.raises(ValueError, match="codec"):
        BatchOptions(codec="divx")

    clip = tmp_path / "in" / "single_face.mp4"
    clip.parent.mkdir()
    clip.write_bytes(need(VIDEOS / "single_face.mp4").read_bytes())
    run_batch([clip.parent], tmp_path / "out", BatchOptions(workers=1, threads=1, thumbnails=False, scene_cut_distance=None))
    reports = list((tmp_path / "out").rglob("report.html"))
    assert len(reports) == 1 and "data:image/jpeg" not in reports[0].read_text()
    summaries = [json.loads(s.read_text()) for s in (tmp_path / "out").rglob("summary.json")]
    video = [s for s in summaries if "tracks" in s]
    assert len(video) == 1 and video[0]["options"]["scene_cut_distance"] is None
