"""Detector scheduling: fixed periods, and 'auto' (full scans every rescan_ms, windows between)."""

from __future__ import annotations

import pytest

from affectlens.video.schedule import AUTO, FULL, PREDICT, REGIONS, DetectionScheduler


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


@pytest.mark.parametrize("kwargs", [{"every": -1}, {"rescan_ms": 0.0}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(ValueError, match="expected every"):
        DetectionScheduler(**kwargs)
