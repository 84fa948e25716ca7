"""Face tracks: persistence, crossings, occlusions, ends, and a real crowd video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens.detection import RetinaFaceDetector
from affectlens.faces import Faces, FrameInfo
from affectlens.tracking import FaceTracker, TrackerOptions
from conftest import VIDEOS, need


def _faces(boxes, ts, scores=None):
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


def test_new_faces_are_confirmed_after_min_hits():
    tr = FaceTracker(TrackerOptions(min_hits=3))
    tr.update(_faces([_box(50, 50)], 0))
    out = [tr.update(_faces([_box(50, 50), _box(200, 50)], 40.0 * i)).track_id[1] for i in range(1, 4)]
    assert out == [-1, -1, 2]


def test_crossing_faces_keep_their_ids():
    tr = FaceTracker()
    seen = []
    for i in range(40):
        a, b = _box(40 + 6 * i, 100), _box(280 - 6 * i, 104)
        out = tr.update(_faces([a, b], 40.0 * i))
        seen.append(tuple(out.track_id))
    assert seen[0] == (1, 2) and seen[-1] == (1, 2)


def test_short_occlusion_keeps_the_id_and_long_absence_ends_the_track():
    tr = FaceTracker(TrackerOptions(max_lost_ms=500))
    for i in range(10):
        tr.update(_faces([_box(100 + 2 * i, 100)], 40.0 * i))
    for i in range(10, 18):  # gone for 320 ms
        assert len(tr.update(_faces([], 40.0 * i))) == 0
    assert tr.update(_faces([_box(136, 100)], 40.0 * 18)).track_id[0] == 1
    for i in range(19, 40):  # gone for 840 ms > max_lost_ms
        tr.update(_faces([], 40.0 * i))
        if tr.ended_track_ids:
            assert tr.ended_track_ids == [1]
            break
    else:
        pytest.fail("track 1 never ended")
    assert tr.update(_faces([_box(136, 100)], 40.0 * 41)).track_id[0] == -1  # a new, unconfirmed track
    assert tr.update(_faces([_box(137, 100)], 40.0 * 42)).track_id[0] == 2


def test_low_score_detections_continue_tracks_but_start_none():
    tr = FaceTracker()
    tr.update(_faces([_box(100, 100)], 0))
    out = tr.update(_faces([_box(101, 100), _box(300, 300)], 40, scores=np.array([0.4, 0.4])))
    assert list(out.track_id) == [1, -1]
    assert tr.active_tracks == [1]


def test_input_is_not_mutated_and_time_must_not_go_back():
    tr = FaceTracker()
    f = _faces([_box(100, 100)], 100.0)
    out = tr.update(f)
    assert f.track_id[0] == -1 and out.track_id[0] == 1
    with pytest.raises(ValueError, match="backwards"):
        tr.update(_faces([], 50.0))
    tr.reset()
    assert tr.update(_faces([_box(100, 100)], 0.0)).track_id[0] == 2  # ids are never reused


def test_options_are_validated():
    with pytest.raises(ValueError):
        TrackerOptions(min_low_score=0.8, min_high_score=0.5)
    with pytest.raises(ValueError):
        TrackerOptions(min_hits=0)


def test_crowd_video_has_several_persistent_tracks():
    cap = cv2.VideoCapture(str(need(VIDEOS / "crowd_walking.mp4")))
    det, tr = RetinaFaceDetector(), FaceTracker()
    lifetimes: dict[int, int] = {}
    simultaneous = 0
    i = 0
    while i < 60:
        ok, frame = cap.read()
        if not ok:
            break
        if i % 2 == 0:
            d = det.detect(frame)
            out = tr.update(Faces(d.xyxy, d.scores, d.landmarks), cap.get(cv2.CAP_PROP_POS_MSEC))
            ids = [int(t) for t in out.track_id if t > 0]
            simultaneous = max(simultaneous, len(ids))
            for t in ids:
                lifetimes[t] = lifetimes.get(t, 0) + 1
        i += 1
    assert simultaneous >= 2
    long_lived = [t for t, n in lifetimes.items() if n >= 5]
    assert len(long_lived) >= 2 and len(long_lived) >= 0.5 * len(lifetimes)
