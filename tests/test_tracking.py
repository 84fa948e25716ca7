"""Face tracks: persistence, crossings, occlusions, ends, and a real crowd video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens.faces import Faces, FrameInfo
from affectlens.tracking import FaceTracker, TrackerOptions
from conftest import VIDEOS, need


def _faces(boxes, ts=None, scores=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    lm = np.zeros((n, 5, 2), np.float32)
    return Faces(boxes, np.full(n, 0.9) if scores is None else scores, lm, info=FrameInfo(None, None, ts))


def _box(cx, cy, s=40):
    return [cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2]


def test_a_moving_face_keeps_one_id():
    tr = FaceTracker()
    ids = [tr.update(_faces([_box(50 + 4 * i, 100)], 40.0 * i)).track_id[0] for i in range(50)]
    assert ids[0] == 1 and set(ids) == {1}
    assert tr.active_tracks == [1] and tr.ended_track_ids == []


def test_new_faces_are_confirmed_after_min_hits():
    tr = FaceTracker(TrackerOptions(min_hits=3))
    tr.update(_faces([_box(50, 50)], 0))
    out = [tr.update(_faces([_box(50, 50), _box(200, 50)], 40.0 * i)).track_id[1] for i in range(1, 4)]
    assert out == [-1, -1, 2]


def test_a_tentative_track_that_misses_a_frame_is_dropped():
    tr = FaceTracker()
    tr.update(_faces([_box(50, 50)], 0))
    tr.update(_faces([_box(50, 50), _box(200, 50)], 40))  # track 2 starts, tentative
    tr.update(_faces([_box(50, 50)], 80))  # ... and misses a frame
    assert tr.update(_faces([_box(50, 50), _box(200, 50)], 120)).track_id[1] == -1  # track 3 starts
    assert tr.update(_faces([_box(50, 50), _box(200, 50)], 160)).track_id[1] == 3
    assert tr.active_tracks == [1, 3]


def test_crossing_faces_keep_their_ids():
    tr = FaceTracker()
    seen = set()
    for i in range(40):
        a, b = _box(40 + 6 * i, 100), _box(280 - 6 * i, 104)
        seen.add(tuple(int(t) for t in tr.update(_faces([a, b], 40.0 * i)).track_id))
    assert seen == {(1, 2)}


@pytest.mark.parametrize("iou_buffer, expected_ids", [(0.3, {2}), (0.0, {-1})])
def test_fast_faces_are_tracked_by_the_buffered_stage(iou_buffer, expected_ids):
    # A 40 px face moving 32 px per frame: IoU 0.11 between consecutive boxes, below min_iou,
    # so only the buffered stage can match a new track, whose velocity is not known yet.
    tr = FaceTracker(TrackerOptions(iou_buffer=iou_buffer))
    tr.update(_faces([_box(500, 100)], 0))  # another face, so that the fast one starts tentative
    ids = [tr.update(_faces([_box(500, 100), _box(32 * i, 300)], 40.0 * i)).track_id[1] for i in range(1, 20)]
    assert ids[0] == -1 and set(ids[1:]) == expected_ids


def test_short_occlusion_keeps_the_id_and_long_absence_ends_the_track():
    tr = FaceTracker(TrackerOptions(max_lost_ms=500))
    for i in range(10):
        tr.update(_faces([_box(100 + 2 * i, 100)], 40.0 * i))
    for i in range(10, 18):  # gone for 320 ms: lost but alive
        assert len(tr.update(_faces([], 40.0 * i))) == 0
        assert tr.active_tracks == [1] and tr.ended_track_ids == []
    assert tr.update(_faces([_box(136, 100)], 40.0 * 18)).track_id[0] == 1
    ended_at = None
    for i in range(19, 40):  # gone for 840 ms > max_lost_ms
        tr.update(_faces([], 40.0 * i))
        if tr.ended_track_ids:
            assert tr.ended_track_ids == [1] and ended_at is None
            ended_at = 40.0 * i
        elif ended_at is not None:
            assert tr.ended_track_ids == []  # reported once, by the update that ended it
    assert ended_at == pytest.approx(40.0 * 18 + 520)
    assert tr.active_tracks == []
    assert tr.update(_faces([_box(136, 100)], 40.0 * 41)).track_id[0] == -1  # a new, unconfirmed track
    assert tr.update(_faces([_box(137, 100)], 40.0 * 42)).track_id[0] == 2


def test_a_sparse_update_after_max_lost_ms_starts_a_new_track():
    tr = FaceTracker(TrackerOptions(max_lost_ms=500))
    for i in range(3):
        tr.update(_faces([_box(100, 100)], 40.0 * i))
    out = tr.update(_faces([_box(100, 100)], 2000.0))  # same place, but 1920 ms later
    assert out.track_id[0] == -1 and tr.ended_track_ids == [1]


def test_low_score_detections_continue_tracks_but_start_none():
    tr = FaceTracker()
    tr.update(_faces([_box(100, 100)], 0))
    out = tr.update(_faces([_box(101, 100), _box(300, 300), _box(500, 500)], 40,
                           scores=np.array([0.4, 0.4, 0.1])))
    assert list(out.track_id) == [1, -1, -1] and len(out) == 3
    assert tr.active_tracks == [1]


def test_input_is_not_mutated_and_time_must_not_go_back():
    tr = FaceTracker()
    f = _faces([_box(100, 100)], 100.0)
    out = tr.update(f)
    assert f.track_id[0] == -1 and out.track_id[0] == 1 and out is not f
    np.testing.assert_array_equal(out.xyxy, f.xyxy)
    with pytest.raises(ValueError, match="backwards"):
        tr.update(_faces([], 50.0))
    tr.update(_faces([], 100.0))  # the same time again is fine
    tr.reset()
    assert tr.active_tracks == []
    assert tr.update(_faces([_box(100, 100)], 0.0)).track_id[0] == 2  # ids are never reused


def test_timestamps_from_the_argument_the_frame_info_or_a_frame_counter():
    tr = FaceTracker(TrackerOptions(max_lost_ms=100))
    tr.update(_faces([_box(100, 100)]))  # no timestamp anywhere: frame 0 → 0 ms
    tr.update(_faces([]))  # 33 ms
    tr.update(_faces([]))  # 67 ms
    assert tr.active_tracks == [1]
    tr.update(_faces([]), timestamp_ms=200.0)  # the argument wins over the counter
    assert tr.ended_track_ids == [1]
    with pytest.raises(ValueError, match="backwards"):
        tr.update(_faces([], ts=150.0))  # the frame info


def test_finish_ends_every_confirmed_track():
    tr = FaceTracker()
    tr.update(_faces([_box(100, 100), _box(300, 100)], 0))
    assert tr.finish() == [1, 2] and tr.ended_track_ids == [1, 2] and tr.active_tracks == []


@pytest.mark.parametrize("kwargs, valid", [
    ({}, True),
    ({"min_low_score": 0.0, "min_high_score": 1.0}, True),
    ({"min_low_score": 0.8, "min_high_score": 0.5}, False),
    ({"min_high_score": 1.5}, False),
    ({"min_iou": 0.0}, False),
    ({"min_iou": 1.0}, False),
    ({"max_lost_ms": 0.0}, True),
    ({"max_lost_ms": -1.0}, False),
    ({"max_lost_ms": float("nan")}, False),
    ({"min_hits": 1}, True),
    ({"min_hits": 0}, False),
    ({"min_hits": 1.5}, False),
    ({"iou_buffer": 0.0}, True),
    ({"iou_buffer": -0.1}, False),
])
def test_options_are_validated(kwargs, valid):
    if valid:
        TrackerOptions(**kwargs)
    else:
        with pytest.raises(ValueError, match="expected"):
            TrackerOptions(**kwargs)


@pytest.mark.slow
def test_crowd_video_has_several_persistent_tracks():
    from affectlens.detection import RetinaFaceDetector

    cap = cv2.VideoCapture(str(need(VIDEOS / "crowd_walking.mp4")))
    det, tr = RetinaFaceDetector(), FaceTracker()
    lifetimes: dict[int, int] = {}
    simultaneous = 0
    for i in range(60):
        ok, frame = cap.read()
        if not ok:
            break
        if i % 2 == 0:
            d = det.detect(frame)
            out = tr.update(Faces(d.xyxy, d.scores, d.landmarks), cap.get(cv2.CAP_PROP_POS_MSEC))
            ids = [int(t) for t in out.track_id if t > 0]
            assert len(ids) == len(set(ids))
            simultaneous = max(simultaneous, len(ids))
            for t in ids:
                lifetimes[t] = lifetimes.get(t, 0) + 1
    cap.release()
    assert simultaneous >= 2
    long_lived = [t for t, n in lifetimes.items() if n >= 5]
    assert len(long_lived) >= 2 and len(long_lived) > 0.5 * len(lifetimes)
