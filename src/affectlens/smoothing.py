"""Temporal smoothing of emotion probabilities, per face track, in video time.

Frame-by-frame classification flickers. Every smoother here keeps one state per ``track_id``
and speaks one verb, ``update(faces) -> faces``: the returned copy has smoothed ``probs`` and
the raw ones in ``data["probs_raw"]``; rows without a track (``-1``) pass through unchanged.
Call ``forget(ids)`` for ended tracks and ``reset()`` for a new stream.

Smoothers are parameterised in **seconds** of video time (``faces.info.timestamp_ms``), so the
same setting means the same span at 8, 25 or a variable frame rate and under ``--fps`` /
``--every`` sampling. The older frame-count parameters stay as aliases (``window=15`` frames,
``alpha``, ``stay_prob`` per analysed frame). Frames without a timestamp are taken to be
:data:`ASSUMED_FPS` apart.

- :class:`MovingAverageSmoother` — mean over the last ``window_s`` seconds (default 0.5 s), or
  over the last ``window`` frames (the seed's ``TemporalEmotionTracker`` semantics).
  Lag about half the window.
- :class:`EmaSmoother` — exponential moving average with time constant ``tau_s``:
  ``s = a * p + (1 - a) * s`` with ``a = 1 - exp(-dt / tau_s)``; or a fixed ``alpha`` per frame.
- :class:`HmmSmoother` — online forward filtering of a hidden emotion state with a "sticky"
  transition matrix: the posterior changes only when the evidence persists, which removes
  one-frame flips without the fixed lag of a long window. The probability of keeping the same
  emotion over ``dt`` is ``exp(-dt / hold_s)``, or a fixed ``stay_prob`` per frame.
- ``learned`` (:class:`affectlens.temporal.learned.LearnedSmoother`) — a small recurrent
  network trained on the classifier's own noise, see ``docs/temporal.md``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable, Sequence

import numpy as np

from affectlens.faces import Faces

#: Frame rate assumed between frames that carry no ``info.timestamp_ms``.
ASSUMED_FPS = 30.0


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
        self._calls = 0

    def _smooth(self, track_id: int, p: np.ndarray, t_ms: float) -> np.ndarray:
        """Update track ``track_id`` with raw probabilities ``p`` seen at ``t_ms``; return the smoothed vector."""
        raise NotImplementedError

    def _time_ms(self, faces: Faces) -> float:
        """The frame's time: ``info.timestamp_ms``, else calls counted at :data:`ASSUMED_FPS`."""
        self._calls += 1
        t = faces.info.timestamp_ms
        return float(t) if t is not None else (self._calls - 1) * 1000.0 / ASSUMED_FPS

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
        t_ms = self._time_ms(faces)
        raw = faces.probs
        out = raw.astype(np.float64, copy=True)
        for i, tid in enumerate(faces.track_id):
            if tid >= 0:
                s = self._smooth(int(tid), raw[i].astype(np.float64), t_ms)
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
        self._calls = 0

    @property
    def tracks(self) -> list[int]:
        """Track ids with state."""
        return sorted(self._state)


class NoSmoother(TrackSmoother):
    """Raw probabilities pass through (``data["probs_raw"]`` is still recorded)."""

    def _smooth(self, track_id, p, t_ms):
        return p


class MovingAverageSmoother(TrackSmoother):
    """Mean of each track's probabilities over the last ``window_s`` seconds or ``window`` frames.

    Args:
        window: frames averaged, 1..300 (a frame-count alias; 10-30 recommended).
        window_s: seconds of video time averaged, > 0 and <= 60 (default 0.5 when neither is
            given): the frames with ``t > t_now - window_s``, the current one included.

    Raises:
        ValueError: both given, or either out of range.
    """

    def __init__(self, window: int | None = None, window_s: float | None = None):
        super().__init__()
        if window is not None and window_s is not None:
            raise ValueError(f"give window (frames) or window_s (seconds), not both; got {window} and {window_s}")
        if window is not None and not (int(window) == window and 1 <= int(window) <= 300):
            raise ValueError(f"expected a window of 1..300 frames (10-30 recommended), got {window}")
        if window is None and window_s is None:
            window_s = 0.5
        if window_s is not None and not (math.isfinite(window_s) and 0 < window_s <= 60):
            raise ValueError(f"expected window_s in (0, 60] seconds (0.3-1 recommended), got {window_s}")
        self.window = None if window is None else int(window)
        self.window_s = None if window_s is None else float(window_s)

    def _smooth(self, track_id, p, t_ms):
        if self.window is not None:
            tracker = self._state.get(track_id)
            if tracker is None:
                tracker = self._state[track_id] = TemporalEmotionTracker(self.window)
            return tracker.update(p)
        buf = self._state.setdefault(track_id, deque())
        buf.append((t_ms, p))
        while buf[0][0] <= t_ms - 1000.0 * self.window_s:
            buf.popleft()
        return np.mean([q for _, q in buf], axis=0)


class EmaSmoother(TrackSmoother):
    """Exponential moving average ``s_t = a * p_t + (1 - a) * s_{t-1}`` (``s_0 = p_0``).

    Args:
        alpha: a fixed weight ``a`` of the newest frame (a frame-count alias); the half-life is
            ``log(0.5) / log(1 - alpha)`` frames (3.1 for 0.2).
        tau_s: time constant in seconds (default 0.3 when neither is given):
            ``a = 1 - exp(-dt / tau_s)`` with ``dt`` the time since the track's previous frame,
            so a frame's weight decays by ``1/e`` every ``tau_s`` seconds at any frame rate
            (half-life ``0.69 * tau_s``).

    Raises:
        ValueError: both given, alpha outside (0, 1], or tau_s not > 0.
    """

    def __init__(self, alpha: float | None = None, tau_s: float | None = None):
        super().__init__()
        if alpha is not None and tau_s is not None:
            raise ValueError(f"give alpha (per frame) or tau_s (seconds), not both; got {alpha} and {tau_s}")
        if alpha is not None and not 0.0 < alpha <= 1.0:
            raise ValueError(f"expected alpha in (0, 1], got {alpha}")
        if alpha is None and tau_s is None:
            tau_s = 0.3
        if tau_s is not None and not (math.isfinite(tau_s) and 0 < tau_s <= 60):
            raise ValueError(f"expected tau_s in (0, 60] seconds, got {tau_s}")
        self.alpha = None if alpha is None else float(alpha)
        self.tau_s = None if tau_s is None else float(tau_s)

    def _smooth(self, track_id, p, t_ms):
        prev = self._state.get(track_id)
        if prev is None:
            s = p
        else:
            s_prev, t_prev = prev
            a = self.alpha if self.alpha is not None else 1.0 - math.exp(-max(0.0, t_ms - t_prev) / (1000 * self.tau_s))
            s = a * p + (1 - a) * s_prev
        self._state[track_id] = (s, t_ms)
        return s


class HmmSmoother(TrackSmoother):
    """Online forward filtering of a hidden emotion with a sticky transition matrix.

    ``posterior_t ∝ (T^T posterior_{t-1}) * (p_t / prior)`` with ``T = stay`` on the
    diagonal and ``(1 - stay) / (C - 1)`` elsewhere, where ``stay = exp(-dt / hold_s)`` over the
    time ``dt`` since the track's previous frame (or a fixed ``stay_prob`` per frame). Dividing the classifier's posterior
    by the class prior turns it into a likelihood; ``min_prob`` keeps any class recoverable.
    The first frame of a track returns the classifier's posterior unchanged. A one-frame flip
    needs a likelihood ratio above about ``stay_prob / off_diagonal`` to win; evidence that
    persists wins within a few frames.

    Args:
        stay_prob: probability that the expression stays the same between two analysed frames
            (a frame-count alias; 0.95 at 25 frames/s is ``hold_s`` 0.78).
        prior: class prior of the classifier's training data (default uniform).
        min_prob: floor of each posterior component, so a long-held state can still change.
        hold_s: mean time in seconds the filter expects an expression to be held (default 0.8
            when ``stay_prob`` is not given).

    Raises:
        ValueError: both stay_prob and hold_s given, stay_prob outside [0, 1), hold_s not > 0,
            or a prior with non-positive entries.
    """

    def __init__(self, stay_prob: float | None = None, prior: Sequence[float] | None = None, min_prob: float = 1e-3,
                 hold_s: float | None = None):
        super().__init__()
        if stay_prob is not None and hold_s is not None:
            raise ValueError(f"give stay_prob (per frame) or hold_s (seconds), not both; got {stay_prob} and {hold_s}")
        if stay_prob is not None and not 0.0 <= stay_prob < 1.0:
            raise ValueError(f"expected stay_prob in [0, 1), got {stay_prob}")
        if stay_prob is None and hold_s is None:
            hold_s = 0.8
        if hold_s is not None and not (math.isfinite(hold_s) and 0 < hold_s <= 600):
            raise ValueError(f"expected hold_s in (0, 600] seconds, got {hold_s}")
        if prior is not None and (np.ndim(prior) != 1 or np.any(np.asarray(prior, float) <= 0)):
            raise ValueError(f"expected a 1-D prior with entries > 0, got {prior}")
        if not 0.0 <= min_prob < 0.1:
            raise ValueError(f"expected min_prob in [0, 0.1), got {min_prob}")
        self.stay_prob = None if stay_prob is None else float(stay_prob)
        self.hold_s = None if hold_s is None else float(hold_s)
        self.min_prob = float(min_prob)
        self.prior = None if prior is None else np.asarray(prior, np.float64) / np.sum(prior)

    def _smooth(self, track_id, p, t_ms):
        c = p.shape[0]
        if self.prior is not None and self.prior.shape[0] != c:
            raise ValueError(f"expected probabilities over {self.prior.shape[0]} classes (the prior's), got {c}")
        like = p / self.prior if self.prior is not None else p
        state = self._state.get(track_id)
        if state is None:
            post = p.copy()
        else:
            prev, t_prev = state
            stay = self.stay_prob if self.stay_prob is not None else \
                math.exp(-max(0.0, t_ms - t_prev) / (1000.0 * self.hold_s))
            off = (1.0 - stay) / max(1, c - 1)
            predicted = prev * stay + (1.0 - prev) * off  # T^T prev for this T
            post = predicted * like
        post = np.maximum(post / max(post.sum(), 1e-300), self.min_prob)
        post /= post.sum()
        self._state[track_id] = (post, t_ms)
        return post


def _learned(**kwargs) -> TrackSmoother:
    from affectlens.temporal.learned import LearnedSmoother

    return LearnedSmoother(**kwargs)


SMOOTHERS = {"none": NoSmoother, "moving-average": MovingAverageSmoother, "ema": EmaSmoother, "hmm": HmmSmoother,
             "learned": _learned}


def create_smoother(name: str, **kwargs) -> TrackSmoother:
    """A smoother by name: ``none``, ``moving-average`` (``window_s`` or ``window`` frames), ``ema``
    (``tau_s`` or ``alpha``), ``hmm`` (``hold_s`` or ``stay_prob``, ``prior``), ``learned``
    (``model``, ``labels``).

    Raises:
        ValueError: unknown name or bad arguments.
        ModelLoadError: the learned model cannot be loaded or does not match ``labels``.
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
