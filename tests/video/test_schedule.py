"""Detector scheduling: fixed periods, and 'auto' (full scans every rescan_ms, windows between)."""

from __future__ import annotations

import pytest

from affectlens.video.schedule import (AUTO, AUTO_GAPS, FULL, PREDICT, REGIONS, STABLE_ERROR, UNSTABLE_ERROR,
                                      DetectionScheduler)


def _run(s: DetectionScheduler, n: int, step_ms: float = 40.0, have_tracks: bool = True) -> list[str]:
    return [s.plan(i * step_ms, have_tracks) for i in range(n)]


@pytest.mark.parametrize("every, expected", [(1, [FULL] * 6), (2, [FULL, PREDICT] * 3),
                                             (3, [FULL, PREDICT, PREDICT] * 2)])
def test_fixed_period(every, expected):
    assert _run(DetectionScheduler(every), 6) == expected


def test_without_tracks_every_frame_is_scanned():
    assert _run(DetectionScheduler(3), 5, have_tracks=False) == [FULL] * 5
    assert _run(DetectionScheduler(AUTO), 5, have_tracks=False) == [FULL] * 5


def test_auto_scans_every_rescan_ms_and_looks_around_tracks_between():
    s = DetectionScheduler(AUTO, rescan_ms=100)
    # 0 ms full; 40, 80 ms windows; 120 >= 100 ms since the last scan -> full; ...
    assert _run(s, 8, step_ms=40) == [FULL, REGIONS, REGIONS, FULL, REGIONS, REGIONS, FULL, REGIONS]


def test_reset_scans_the_next_frame():
    s = DetectionScheduler(AUTO, rescan_ms=1e9)
    assert _run(s, 3) == [FULL, REGIONS, REGIONS]
    s.reset()
    assert s.plan(200.0, True) == FULL


def test_auto_gap_grows_on_stable_tracks_and_shrinks_on_moving_ones():
    s = DetectionScheduler(AUTO, rescan_ms=1e9, regions_every=0)
    assert s.gap == AUTO_GAPS[0] and _run(s, 5) == [FULL, PREDICT, REGIONS, PREDICT, REGIONS]
    for _ in range(5):
        s.observe(STABLE_ERROR / 2)
    assert s.gap == AUTO_GAPS[1]
    assert [s.plan(t, True) for t in (200.0, 240.0, 280.0, 320.0)] == [PREDICT, PREDICT, PREDICT, REGIONS]
    s.observe((STABLE_ERROR + UNSTABLE_ERROR) / 2)  # in between: kept
    assert s.gap == AUTO_GAPS[1]
    for _ in range(5):
        s.observe(2 * UNSTABLE_ERROR)
    assert s.gap == AUTO_GAPS[0]
    s.observe(STABLE_ERROR / 2)
    s.reset()  # a new stream or a scene cut starts from the smallest gap
    assert s.gap == AUTO_GAPS[0]


def test_a_lost_face_shrinks_the_gap_and_slow_frame_rates_keep_the_smallest():
    s = DetectionScheduler(AUTO, rescan_ms=1e9, regions_every=0)
    _run(s, 3)
    for _ in range(3):
        s.observe(0.0)
    assert s.gap == 4
    s.observe(0.0, lost=True)  # a followed face was not found where predicted
    assert s.gap == 3
    s.observe(float("inf"))  # none was found
    assert s.gap == 2
    # at 5 frames/s two frames already span 400 ms: the gap stays at the smallest, and windowed
    # passes keep coming between full scans (every 0.5 s)
    slow = DetectionScheduler(AUTO, rescan_ms=500, regions_every=0)
    plans = []
    for i in range(12):
        plans.append(slow.plan(i * 200.0, True))
        if plans[-1] == REGIONS:
            slow.observe(0.0)
    assert slow.gap == 2 and plans.count(REGIONS) >= 3
    # at 24 frames/s the gap may reach 4 (167 ms), at 12 frames/s only 2 (83 ms a frame)
    for frame_ms, longest in ((1000 / 24, 4), (1000 / 12, 2)):
        s = DetectionScheduler(AUTO, rescan_ms=1e9, regions_every=0)
        for i in range(40):
            if s.plan(i * frame_ms, True) == REGIONS:
                s.observe(0.0)
        assert s.gap == longest


def test_a_fixed_regions_every_ignores_stability():
    s = DetectionScheduler(AUTO, rescan_ms=1e9, regions_every=3)
    s.observe(0.0)
    assert s.gap == 3 and _run(s, 7) == [FULL, PREDICT, PREDICT, REGIONS, PREDICT, PREDICT, REGIONS]


@pytest.mark.parametrize("kwargs", [{"every": -1}, {"rescan_ms": 0.0}, {"regions_every": -1}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError, match="expected every"):
        DetectionScheduler(**kwargs)
