"""The video reading budget (``VideoOptions.classify_per_s``): which faces the emotion model reads
on a frame, and the latest reading of the others.

The emotion model reads at most about ``per_second`` faces per second of video: faces without a
reading always, then the tracked faces read longest ago, as far as the credit goes; the others
keep their latest raw and smoothed reading for that frame (and the smoother is not fed one
reading twice). The credit is ``per_second`` × the time since the previous frame; unused credit
carries over for at most one frame. The web/Node SDK mirrors this class (``sdk/web/src/budget.ts``)
and its tests check that both hold the same faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Reading:
    """A track's latest reading: raw and smoothed probabilities, and the frame time (ms)."""

    raw: np.ndarray
    smoothed: np.ndarray
    timestamp_ms: float


class ReadingBudget:
    """Per-stream state of the reading budget.

    Args:
        per_second: readings per second of video; ``0`` reads every face on every frame.

    Raises:
        ValueError: a rate outside [0, 10000].
    """

    def __init__(self, per_second: float = 30.0):
        if not 0 <= per_second <= 10_000:
            raise ValueError(f"classify_per_s must be in [0, 10000] faces per second (0 = read every face on every "
                             f"frame), got {per_second}")
        self.per_second = float(per_second)
        self.reset()

    def reset(self) -> None:
        """Start over (a new stream)."""
        self._readings: dict[int, Reading] = {}
        self._credit, self._last_ts = 0.0, None  # readings owed, time of the last frame

    def held(self, track_ids: np.ndarray, timestamp_ms: float) -> np.ndarray:
        """``(n,)`` bool mask of the faces that keep their latest reading on this frame (call once
        per frame, in time order; untracked faces, id -1, are always read)."""
        keep = np.zeros(len(track_ids), bool)
        rate = self.per_second
        if rate <= 0:
            return keep
        dt_s = 0.0 if self._last_ts is None else max(0.0, timestamp_ms - self._last_ts) / 1000.0
        self._last_ts = timestamp_ms
        known = [i for i, t in enumerate(track_ids) if int(t) in self._readings]
        credit = self._credit + rate * dt_s - (len(track_ids) - len(known))  # new faces are read in any case
        n = min(len(known), max(0, int(credit + 1e-6)))  # 30/s × 1/30 s is one reading, not 0.99999
        by_age = sorted(known, key=lambda i: (self._readings[int(track_ids[i])].timestamp_ms, int(track_ids[i])))
        keep[by_age[n:]] = True
        self._credit = float(np.clip(credit - n, -0.5 * rate, max(1.0, rate * dt_s)))
        return keep

    def get(self, track_id: int) -> Reading:
        """The latest reading of a track (``KeyError`` when it has none)."""
        return self._readings[int(track_id)]

    def record(self, track_id: int, raw: np.ndarray, smoothed: np.ndarray, timestamp_ms: float) -> None:
        """Record a track's fresh reading."""
        self._readings[int(track_id)] = Reading(raw, smoothed, float(timestamp_ms))

    def forget(self, track_ids) -> None:
        """Drop the readings of ended tracks."""
        for t in track_ids:
            self._readings.pop(int(t), None)
