"""The reading budget on its own: who is read, who keeps a reading, and the credit."""

from __future__ import annotations

import numpy as np
import pytest

from affectlens.video.budget import ReadingBudget


def _frame(budget: ReadingBudget, ids, ts: float) -> np.ndarray:
    keep = budget.held(np.array(ids), ts)
    for i in np.flatnonzero(~keep):
        if ids[i] > 0:
            budget.record(ids[i], np.full(3, ts), np.full(3, -ts), ts)
    return keep


def test_new_faces_are_read_then_the_longest_unread_as_far_as_the_credit_goes():
    b = ReadingBudget(50)                       # 50/s at 25 frames/s: 2 readings a frame
    assert not _frame(b, [1, 2, 3, 4, 5, 6], 0.0).any()   # all new: all read, the credit goes negative
    reads = [int((~_frame(b, [1, 2, 3, 4, 5, 6], 40.0 * k)).sum()) for k in range(1, 13)]
    assert sum(reads) == pytest.approx(50 * 0.48 - 6, abs=1)  # the first frame's six were paid from the budget
    assert reads[-4:] == [2, 2, 2, 2]
    keep = _frame(b, [1, 2, 3, 4, 5, 6, -1, 7], 40.0 * 13)
    assert not keep[6] and not keep[7]         # an untracked face and a new track are always read
    assert b.get(3).raw[0] <= 40.0 * 13 and b.get(7).smoothed[0] == -40.0 * 13


def test_round_robin_oldest_first_and_ties_by_track_id():
    b = ReadingBudget(25)                       # one reading a frame at 25 frames/s
    _frame(b, [1, 2, 3], 0.0)                   # three new faces: read now, paid back over 3 frames
    read = [[[3, 1, 2][i] for i in np.flatnonzero(~_frame(b, [3, 1, 2], 40.0 * k))] for k in range(1, 10)]
    assert read == [[], [], [], [1], [2], [3], [1], [2], [3]]


def test_one_face_at_25_fps_is_read_on_every_frame_but_its_second_and_forget_and_reset():
    b = ReadingBudget(30)
    assert [bool(_frame(b, [1], 40.0 * k)[0]) for k in range(8)] == [False, True] + [False] * 6
    b = ReadingBudget(30)
    _frame(b, [1, 2, 3, 4], 0.0)
    assert _frame(b, [1, 2, 3, 4], 2000.0).sum() == 0   # after a 2 s gap every face is read
    b.forget([1, 2])
    assert not _frame(b, [1, 2, 3, 4], 2080.0)[:2].any()  # forgotten tracks read again at once
    b.reset()
    assert not _frame(b, [3, 4], 0.0).any()    # after a reset, time may start over


def test_zero_reads_everything_and_a_negative_rate_is_refused():
    b = ReadingBudget(0)
    assert not any(_frame(b, [1, 2, 3], 40.0 * k).any() for k in range(5))
    for bad in (-1, 10_001, float("nan")):
        with pytest.raises(ValueError, match=r"classify_per_s must be in \[0, 10000\]"):
            ReadingBudget(bad)
