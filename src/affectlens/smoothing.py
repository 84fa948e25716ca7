"""Temporal smoothing of emotion probabilities, per face track.

Frame-by-frame classification flickers. Every smoother here keeps one state per ``track_id``
and speaks one verb, ``update(faces) -> faces``: the returned copy has smoothed ``probs`` and
the raw ones in ``data["probs_raw"]``; rows without a track (``-1``) pass through unchanged.
Call ``forget(ids)`` for ended tracks and ``reset()`` for a new stream.

- :class:`MovingAverageSmoother` — mean of the last ``window`` frames (the seed's
  ``TemporalEmotionTracker`` semantics; 10–30 frames recommended). Lag ≈ window / 2 frames.
- :class:`EmaSmoother` — exponential moving average, ``s = alpha * p + (1 - alpha) * s``.
- :class:`HmmSmoother` — online forward filtering of a hidden emotion state with a "sticky"
  transition matrix: the posterior changes only when the evidence persists, which removes
  one-frame flips without the fixed lag of a long window.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Sequence

import numpy as np

from affectlens.faces import Faces


class TemporalEmotionTracker:
    """Moving average of one face's probability vectors (the seed project's public class).

    Args:
        window_size: number of most recent frames averaged (>= 1).

    Raises:
        ValueError: ``window_size < 1``.
    """

    def __init__(self, window_size: int = 15):
        if int(window_size) < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        self.window_size = int(window_size)
        self._buf: deque[np.ndarray] = deque(maxlen=self.window_size)

    def update(self, probs: Sequence[float]) -> np.ndarray:
        """Add one frame's probabilities; returns the mean over the window (sums to 1)."""
        self._buf.append(np.asarray(probs, np.float64))
        return np.mean(self._buf, axis=0)

    def reset(self) -> None:
        self._buf.clear()


class TrackSmoother:
    """Base class: one state per track id; subclasses implement :meth:`_smooth`."""

    def __init__(self):
        self._state: dict[int, object] = {}

    def _smooth(self, track_id: int, p: np.ndarray) -> np.ndarray:
        """Update track ``track_id`` with raw probabilities ``p``; return the smoothed vector."""
        raise NotImplementedError

    def update(self, faces: Faces) -> Faces:
        """Smooth ``faces.probs`` per track; returns a copy with the raw values in ``data["probs_raw"]``.

        Raises:
            ValueError: the faces are not classified.
        """
        if len(faces) and not faces.classified:
            raise ValueError("expected classified faces (probs set); run the classifier first")
        raw = faces.probs
        out = raw.astype(np.float64, copy=True)
        for i, tid in enumerate(faces.track_id):
            if tid >= 0:
                s = self._smooth(int(tid), raw[i].astype(np.float64))
                out[i] = s / max(float(s.sum()), 1e-12)
        return faces.replace(probs=out.astype(np.float32)).with_data(probs_raw=raw.copy())

    def forget(self, track_ids: Iterable[int]) -> None:
        """Drop the state of ended tracks."""
        for t in track_ids:
            self._state.pop(int(t), None)

    def reset(self) -> None:
        """Drop every track's state."""
        self._state.clear()

    @property
    def tracks(self) -> list[int]:
        """Track ids with state."""
        return sorted(self._state)


class NoSmoother(TrackSmoother):
    """Raw probabilities pass through (``data["probs_raw"]`` is still recorded)."""

    def _smooth(self, track_id, p):
        return p


class MovingAverageSmoother(TrackSmoother):
    """Mean of each track's last ``window`` frames.

    Raises:
        ValueError: window outside 1..300.
    """

    def __init__(self, window: int = 15):
        super().__init__()
        if not 1 <= int(window) <= 300:
            raise ValueError(f"window must be 1..300 frames (10-30 recommended), got {window}")
        self.window = int(window)

    def _smooth(self, track_id, p):
        tracker = self._state.get(track_id)
        if tracker is None:
            tracker = self._state[track_id] = TemporalEmotionTracker(self.window)
        return tracker.update(p)


class EmaSmoother(TrackSmoother):
    """Exponential moving average ``s_t = alpha * p_t + (1 - alpha) * s_{t-1}`` (``s_0 = p_0``).

    Raises:
        ValueError: alpha outside (0, 1].
    """

    def __init__(self, alpha: float = 0.2):
        super().__init__()
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)

    def _smooth(self, track_id, p):
        prev = self._state.get(track_id)
        s = p if prev is None else self.alpha * p + (1 - self.alpha) * prev
        self._state[track_id] = s
        return s


class HmmSmoother(TrackSmoother):
    """Online forward filtering of a hidden emotion with a sticky transition matrix.

    ``posterior_t ∝ (T^T posterior_{t-1}) * (p_t / prior)`` with ``T = stay_prob`` on the
    diagonal and ``(1 - stay_prob) / (C - 1)`` elsewhere. Dividing the classifier's posterior
    by the class prior turns it into a likelihood; ``min_prob`` keeps any class recoverable.

    Args:
        stay_prob: probability that the expression stays the same between two analysed frames.
        prior: class prior of the classifier's training data (default uniform).
        min_prob: floor of each posterior component, so a long-held state can still change.

    Raises:
        ValueError: stay_prob outside [0, 1), or a prior with non-positive entries.
    """

    def __init__(self, stay_prob: float = 0.9, prior: Sequence[float] | None = None, min_prob: float = 1e-3):
        super().__init__()
        if not 0.0 <= stay_prob < 1.0:
            raise ValueError(f"stay_prob must be in [0, 1), got {stay_prob}")
        if prior is not None and np.any(np.asarray(prior, float) <= 0):
            raise ValueError("prior entries must be > 0")
        self.stay_prob, self.min_prob = float(stay_prob), float(min_prob)
        self.prior = None if prior is None else np.asarray(prior, np.float64) / np.sum(prior)

    def _smooth(self, track_id, p):
        c = p.shape[0]
        like = p / self.prior if self.prior is not None else p
        prev = self._state.get(track_id)
        if prev is None:
            post = p.copy()
        else:
            off = (1.0 - self.stay_prob) / max(1, c - 1)
            predicted = prev * self.stay_prob + (1.0 - prev) * off  # T^T prev for this T
            post = predicted * like
        post = np.maximum(post / max(post.sum(), 1e-300), self.min_prob)
        post /= post.sum()
        self._state[track_id] = post
        return post


SMOOTHERS = {"none": NoSmoother, "moving-average": MovingAverageSmoother, "ema": EmaSmoother, "hmm": HmmSmoother}


def create_smoother(name: str, **kwargs) -> TrackSmoother:
    """A smoother by name: ``none``, ``moving-average`` (``window``), ``ema`` (``alpha``),
    ``hmm`` (``stay_prob``, ``prior``).

    Raises:
        ValueError: unknown name or bad arguments.
    """
    if name not in SMOOTHERS:
        raise ValueError(f"unknown smoother {name!r}; expected one of {', '.join(SMOOTHERS)}")
    try:
        return SMOOTHERS[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"smoother {name!r}: {exc}") from None


def flicker_rate(labels: Sequence, timestamps_ms: Sequence[float]) -> float:
    """Top-label switches per minute of one track's label sequence (0 for under 2 frames)."""
    labels = list(labels)
    if len(labels) < 2:
        return 0.0
    switches = sum(a != b for a, b in zip(labels, labels[1:]))
    minutes = (float(timestamps_ms[-1]) - float(timestamps_ms[0])) / 60000.0
    return switches / minutes if minutes > 0 else 0.0
