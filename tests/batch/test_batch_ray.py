"""The Ray engine on a local Ray started in the test: same results as the local engine's outputs,
a Ray worker killed mid-item is retried (bounded), and a rerun skips everything."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from batch_helpers import expected_rows, good_media, kill_when_running, make_bad_files, manifest_rows

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_worker_killed_mid_item_is_retried_and_rerun_skips(local_ray, tmp_path, recognizer):
    from affectlens.batch import BatchOptions, read_dataset, run_batch

    good = good_media()
    bad = make_bad_files(tmp_path / "bad")
    inputs = [good["face_noface.mov"], good["multi_face.jpg"], bad["corrupt.jpg"]]
    out = tmp_path / "out"
    opts = BatchOptions(engine="ray", workers=2, fps=5, max_attempts=2)
    killed: list[int | None] = []
    done = threading.Event()
    watcher = threading.Thread(target=lambda: killed.append(
        kill_when_running(out / "items", "face_noface", stop=done.is_set)), daemon=True)
    watcher.start()
    try:
        res = run_batch(inputs, out, opts)
    finally:
        done.set()
        watcher.join(10)
    assert killed and killed[0] is not None, "the video was never seen running"
    rows = {r["path"].rsplit("/", 1)[1]: r for r in manifest_rows(out)}
    assert rows["face_noface.mov"]["status"] == "done" and rows["face_noface.mov"]["attempts"] == "2"
    assert rows["face_noface.mov"]["engine"] == "ray"
    assert rows["multi_face.jpg"]["status"] == "done"
    assert rows["corrupt.jpg"]["status"] == "invalid" and "corrupt.jpg" in rows["corrupt.jpg"]["error"]
    assert res.status == {r["item"]: r["status"] for r in rows.values()}

    table = read_dataset(out).to_pandas()
    assert table.groupby("source").size().to_dict() == {
        r["item"]: expected_rows(r) for r in rows.values() if r["status"] == "done"}
    img = table[table["kind"] == "image"]
    faces = recognizer.predict(good["multi_face.jpg"])  # the model shipped through Ray = the local one
    assert np.allclose(img[list(faces.labels)].to_numpy(), faces.probs, atol=1e-4)
    assert not list((out / "items").glob("*.tmp-*"))

    again = run_batch(inputs, out, opts)
    assert again.processed == [] and len(again.skipped) == 3
