"""The crash-safe per-frame JSONL store."""

from __future__ import annotations

import numpy as np

from affectlens.faces import Faces, FrameInfo
from affectlens.video.store import FrameWriter, read_frames


def _frame(i, n):
    rng = np.random.default_rng(i)
    probs = rng.dirichlet(np.ones(7), n)
    return Faces(np.tile([10, 10, 50, 60], (n, 1)), np.full(n, 0.9), rng.uniform(10, 50, (n, 5, 2)), probs,
                 track_id=np.arange(1, n + 1), data={"probs_raw": rng.dirichlet(np.ones(7), n)},
                 info=FrameInfo("v.mp4", i, 40.0 * i, (100, 100)))


def test_round_trip_and_torn_tail(tmp_path):
    p = tmp_path / "frames.jsonl"
    frames = [_frame(i, i % 3) for i in range(10)]
    with FrameWriter(p, flush_every=4) as w:
        for f in frames:
            w.write(f)
    with open(p, "a") as fh:
        fh.write('{"frame_index": 10, "timest')  # a write cut off by a crash
    back = read_frames(p)
    assert len(back) == 10
    for a, b in zip(frames, back):
        assert a.info.frame_index == b.info.frame_index and len(a) == len(b)
        assert np.allclose(a.probs, b.probs, atol=1e-5)
        assert np.allclose(a.data["probs_raw"], b.data["probs_raw"], atol=1e-5)
        assert list(a.track_id) == list(b.track_id)
    with FrameWriter(p, append=True) as w:  # resume drops the torn line and appends
        w.write(_frame(10, 1))
    assert [f.info.frame_index for f in read_frames(p)] == list(range(11))


def test_flushed_in_chunks(tmp_path):
    p = tmp_path / "frames.jsonl"
    w = FrameWriter(p, flush_every=3)
    for i in range(7):
        w.write(_frame(i, 1))
    assert len(read_frames(p)) == 6  # two flushes so far; the 7th frame is still buffered
    w.close()
    assert len(read_frames(p)) == 7


def test_quality_and_reading_columns_survive_a_resume(tmp_path):
    """A resumed run must still leave unreliable faces out of the aggregates and know which rows
    kept an earlier reading."""
    from affectlens.video.aggregate import frame_rows

    p = tmp_path / "frames.jsonl"
    f = _frame(1, 3).with_data(quality=np.array([0.9, 0.1, 0.55], np.float32),
                               quality_reason=np.array(["pose", "size", "sharpness"], dtype=object),
                               reliable=np.array([True, False, True]), read=np.array([True, True, False]))
    with FrameWriter(p) as w:
        w.write(f)
    back = read_frames(p)[0]
    assert list(back.reliable) == [True, False, True] and back.emotions[1] == "unreliable"
    assert list(back.data["quality_reason"]) == ["pose", "size", "sharpness"]
    np.testing.assert_allclose(back.data["quality"], [0.9, 0.1, 0.55], atol=1e-4)
    rows = frame_rows([back])
    assert [(r["quality"], r["quality_reason"], r["reliable"], r["read"]) for r in rows] == [
        (0.9, "pose", 1, 1), (0.1, "size", 0, 1), (0.55, "sharpness", 1, 0)]
    plain = frame_rows(read_frames(_write(tmp_path / "old.jsonl", _frame(2, 1))))  # a record without them
    assert (plain[0]["quality"], plain[0]["reliable"], plain[0]["read"]) == (None, 1, 1)


def _write(path, frame):
    with FrameWriter(path) as w:
        w.write(frame)
    return path
