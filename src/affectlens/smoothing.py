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
        ValueError: ``window_size`` is not an integer >= 1.

    Example:
        >>> tracker = TemporalEmotionTracker(window_size=15)
        >>> smoothed = [tracker.update(p) for p in per_frame_probs]   # each (C,), sums to 1
    """

    def __init__(self, window_size: int = 15):
        if int(window_size) != window_size or window_size < 1:
            raise ValueError(f"expected an integer window_size >= 1, got {window_size}")
        self.window_size = int(window_size)
        self._buf: deque[np.ndarray] = deque(maxlen=self.window_size)

    def update(self, probs: Sequence[float]) -> np.ndarray:
        """Add one frame's probabilities; returns the mean over the last ``window_size`` frames.

        Args:
            probs: ``(C,)`` probabilities of one frame (summing to 1).

        Returns:
            ``(C,)`` float64 mean (sums to 1 when the inputs do).

        Raises:
            ValueError: ``probs`` is not 1-D or its length differs from the earlier frames'.
        """
        p = np.asarray(probs, np.float64)
        if p.ndim != 1 or (self._buf and p.shape != self._buf[0].shape):
            want = f"({self._buf[0].shape[0]},)" if self._buf else "(C,)"
            raise ValueError(f"expected probabilities of shape {want}, got {p.shape}")
        self._buf.append(p)
        return np.mean(self._buf, axis=0)

    def reset(self) -> None:
        """Forget every frame seen."""
        self._buf.clear()


class TrackSmoother:
    """Base class of the per-track smoothers: one state per track id.

    Subclasses implement :meth:`_smooth`. Example:

        >>> smoother = create_smoother("hmm", stay_prob=0.95)
        >>> faces = smoother.update(tracker.update(faces))   # classified, tracked faces
        >>> smoother.forget(tracker.ended_track_ids)
    """

    def __init__(self):
        self._state: dict[int, object] = {}

    def _smooth(self, track_id: int, p: np.ndarray) -> np.ndarray:
        """Update track ``track_id`` with raw probabilities ``p``; return the smoothed vector."""
        raise NotImplementedError

    def update(self, faces: Faces) -> Faces:
        """Smooth ``faces.probs`` per ``track_id``, one step per call.

        Args:
            faces: classified faces of one frame (not changed).

        Returns:
            A copy whose ``probs`` rows are smoothed (and sum to 1) for tracked faces; rows with
            ``track_id`` -1 pass through unchanged. ``data["probs_raw"]`` holds the raw
            probabilities (kept as they are when the input already has that column).

        Raises:
            ValueError: the faces are not classified.
        """
        if len(faces) and not faces.classified:
            raise ValueError("expected classified faces (probs of shape (n, len(labels))), got probs of shape "
                             f"{faces.probs.shape}; run the classifier first")
        raw = faces.probs
        out = raw.astype(np.float64, copy=True)
        for i, tid in enumerate(faces.track_id):
            if tid >= 0:
                s = self._smooth(int(tid), raw[i].astype(np.float64))
                out[i] = s / max(float(s.sum()), 1e-12)
        kept = faces.data.get("probs_raw")
        raw_col = kept if kept is not None and kept.shape == raw.shape else raw.copy()
        return faces.replace(probs=out.astype(np.float32)).with_data(probs_raw=raw_col)

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
    """Mean of each track's last ``window`` frames (a :class:`TemporalEmotionTracker` per track).

    Args:
        window: frames averaged, 1..300 (CLI default 15; 10-30 recommended).

    Raises:
        ValueError: window outside 1..300.
    """

    def __init__(self, window: int = 15):
        super().__init__()
        if not 1 <= int(window) <= 300:
            raise ValueError(f"expected a window of 1..300 frames (10-30 recommended), got {window}")
        self.window = int(window)

    def _smooth(self, track_id, p):
        tracker = self._state.get(track_id)
        if tracker is None:
            tracker = self._state[track_id] = TemporalEmotionTracker(self.window)
        return tracker.update(p)


class EmaSmoother(TrackSmoother):
    """Exponential moving average ``s_t = alpha * p_t + (1 - alpha) * s_{t-1}`` (``s_0 = p_0``).

    Args:
        alpha: weight of the newest frame; the half-life is ``log(0.5) / log(1 - alpha)``
            frames (3.1 for the default 0.2).

    Raises:
        ValueError: alpha outside (0, 1].
    """

    def __init__(self, alpha: float = 0.2):
        super().__init__()
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"expected alpha in (0, 1], got {alpha}")
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
    The first frame of a track returns the classifier's posterior unchanged. A one-frame flip
    needs a likelihood ratio above about ``stay_prob / off_diagonal`` to win; evidence that
    persists wins within a few frames.

    Args:
        stay_prob: probability that the expression stays the same between two analysed frames.
        prior: class prior of the classifier's training data (default uniform).
        min_prob: floor of each posterior component, so a long-held state can still change.

    Raises:
        ValueError: stay_prob outside [0, 1), or a prior with non-positive entries.
    """

    def __init__(self, stay_prob: float = 0.95, prior: Sequence[float] | None = None, min_prob: float = 1e-3):
        super().__init__()
        if not 0.0 <= stay_prob < 1.0:
            raise ValueError(f"expected stay_prob in [0, 1), got {stay_prob}")
        if prior is not None and (np.ndim(prior) != 1 or np.any(np.asarray(prior, float) <= 0)):
            raise ValueError(f"expected a 1-D prior with entries > 0, got {prior}")
        if not 0.0 <= min_prob < 0.1:
            raise ValueError(f"expected min_prob in [0, 0.1), got {min_prob}")
        self.stay_prob, self.min_prob = float(stay_prob), float(min_prob)
        self.prior = None if prior is None else np.asarray(prior, np.float64) / np.sum(prior)

    def _smooth(self, track_id, p):
        c = p.shape[0]
        if self.prior is not None and self.prior.shape[0] != c:
            raise ValueError(f"expected probabilities over {self.prior.shape[0]} classes (the prior's), got {c}")
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


def flicker_rate(labels_sequence: Sequence, timestamps_ms: Sequence[float]) -> float:
    """Top-label switches per minute of one track.

    Args:
        labels_sequence: the top label (name or index) of each analysed frame, in time order.
        timestamps_ms: the time of each of those frames in milliseconds.

    Returns:
        Number of frames whose label differs from the previous frame's, divided by the time
        from first to last frame in minutes; 0 for fewer than 2 frames or no elapsed time.

    Raises:
        ValueError: the two sequences differ in length.

    Example:
        >>> flicker_rate(["happy", "sad", "sad", "happy"], [0, 20_000, 40_000, 60_000])
        2.0
    """
    labels = list(labels_sequence)
    if len(labels) != len(timestamps_ms):
        raise ValueError(f"expected one timestamp per label, got {len(labels)} labels and "
                         f"{len(timestamps_ms)} timestamps")
    if len(labels) < 2:
        return 0.0
    switches = sum(a != b for a, b in zip(labels, labels[1:]))
    minutes = (float(timestamps_ms[-1]) - float(timestamps_ms[0])) / 60000.0
    return switches / minutes if minutes > 0 else 0.0
