"""Detector scheduling: fixed periods, and 'auto' from track stability."""

from __future__ import annotations

import numpy as np
import pytest

from affectlens.video.schedule import AUTO, DetectionScheduler

BOX = np.array([[100.0, 100.0, 200.0, 220.0]])


def _run(s: DetectionScheduler, n: int, step_ms: float = 40.0, have_tracks: bool = True) -> list[bool]:
    return [s.should_detect(i * step_ms, have_tracks) for i in range(n)]


@pytest.mark.parametrize("every, expected", [(1, [True] * 6), (2, [True, False] * 3),
                                             (3, [True, False, False] * 2)])
def test_fixed_period(every, expected):
    assert _run(DetectionScheduler(every), 6) == expected


def test_without_tracks_every_frame_is_detected():
    assert _run(DetectionScheduler(3), 5, have_tracks=False) == [True] * 5


def test_auto_grows_with_stable_tracks_and_resets_when_they_jump():
    s = DetectionScheduler(AUTO, max_every=3, max_gap_ms=1e9)
    ids = np.array([1])
    for _ in range(4):  # every detection matched its prediction well
        s.observe(ids, BOX, ids, BOX + 2, started_or_ended=False)
    assert s.period == 3
    assert _run(s, 6) == [True, False, False, True, False, False]
    s.observe(ids, BOX, ids, BOX + 60, started_or_ended=False)  # the face jumped: IoU low
    assert s.period == 1
    s.observe(ids, BOX, ids, BOX, started_or_ended=True)  # a track started
    assert s.period == 1


def test_auto_detects_at_least_every_max_gap():
    s = DetectionScheduler(AUTO, max_every=10, max_gap_ms=100)
    s.period = 10
    decisions = _run(s, 8, step_ms=40)  # 0, 40, 80 ms skipped; 120 >= 100 ms -> detect
    assert decisions == [True, False, False, True, False, False, True, False]


def test_unconfirmed_or_unpredicted_tracks_are_not_stable():
    s = DetectionScheduler(AUTO)
    s.observe(np.array([2]), BOX, np.array([1]), BOX, started_or_ended=False)  # no prediction for track 1
    assert s.period == 1


@pytest.mark.parametrize("kwargs", [{"every": -1}, {"max_every": 0}, {"min_iou": 0.0}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError, match="expected every"):
        DetectionScheduler(**kwargs)
