"""How well a smoother follows the truth: accuracy, flicker and latency on labelled sequences.

Definitions (the table in ``docs/temporal.md`` uses them):

- **accuracy** — share of frames whose smoothed top label is the true label;
  **first-frame accuracy** the same on each sequence's first frame only, where no smoother has
  any history (what a smoother gains there is per-frame recalibration, not temporal context).
- **switches per minute** — changes of the smoothed top label between consecutive frames,
  divided by the sequences' total duration (the truth itself changes about 20 times a minute
  in the synthetic sequences; see ``true_switches_per_min``).
- **latency** — for every change of the true label at frame ``k``, the time (and frames) until
  the smoothed top label first equals the new label, searched until the next true change; a
  change never followed counts as *missed* (``followed`` is the share followed) and is left out
  of the latency means.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from affectlens.faces import Faces, FrameInfo
from affectlens.smoothing import TrackSmoother


def sequence_metrics(pred: np.ndarray, y: np.ndarray, t_ms: np.ndarray) -> dict[str, float]:
    """Accuracy, switches per minute and latency of predicted labels ``(S, T)`` against ``y``."""
    pred, y, t_ms = np.asarray(pred), np.asarray(y), np.asarray(t_ms, np.float64)
    minutes = float((t_ms[:, -1] - t_ms[:, 0]).sum()) / 60000.0
    lat_ms, lat_frames, changes = [], [], 0
    for p, yy, t in zip(pred, y, t_ms):
        ch = np.flatnonzero(yy[1:] != yy[:-1]) + 1
        bounds = list(ch[1:]) + [len(yy)]
        for k, end in zip(ch, bounds):
            changes += 1
            hit = np.flatnonzero(p[k:end] == yy[k])
            if len(hit):
                lat_frames.append(int(hit[0]))
                lat_ms.append(float(t[k + hit[0]] - t[k]))
    return {"accuracy": float((pred == y).mean()), "first_frame_accuracy": float((pred[:, 0] == y[:, 0]).mean()),
            "switches_per_min": float((pred[:, 1:] != pred[:, :-1]).sum()) / minutes,
            "true_switches_per_min": float((y[:, 1:] != y[:, :-1]).sum()) / minutes,
            "latency_ms_mean": float(np.mean(lat_ms)) if lat_ms else float("nan"),
            "latency_ms_median": float(np.median(lat_ms)) if lat_ms else float("nan"),
            "latency_frames_mean": float(np.mean(lat_frames)) if lat_frames else float("nan"),
            "followed": len(lat_ms) / changes if changes else float("nan")}


def smooth_sequences(make: Callable[[], TrackSmoother], probs: np.ndarray, feats: np.ndarray,
                     t_ms: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """Run a fresh smoother over each sequence as one track, frame by frame through ``update``.

    Args:
        make: builds a smoother (called once; ``reset()`` between sequences).
        probs: ``(S, T, C)``; feats: ``(S, T, 5)`` det_score, face_px, yaw, pitch, dt_ms (see
            :data:`affectlens.temporal.synth.FEATURES`); t_ms: ``(S, T)``.

    Returns:
        ``(S, T, C)`` smoothed probabilities.
    """
    from affectlens.temporal.learned import LearnedSmoother

    sm = make()
    out = np.zeros(probs.shape, np.float32)
    for s in range(len(probs)):
        sm.reset()
        if isinstance(sm, LearnedSmoother):  # its quality inputs come straight from the sequence
            out[s] = sm.smooth_sequence(probs[s], feats[s, :, :4], t_ms[s])
            continue
        for i in range(probs.shape[1]):
            f = Faces(np.array([[0.0, 0.0, feats[s, i, 1], feats[s, i, 1]]]), feats[s, i, :1], np.zeros((1, 5, 2)),
                      probs[s, i][None], labels, np.array([1]), info=FrameInfo(None, i, float(t_ms[s, i]), None))
            out[s, i] = sm.update(f).probs[0]
    return out


def response_lag_ms(raw: np.ndarray, smoothed: np.ndarray, t_ms: np.ndarray, max_lag_ms: float = 1500.0) -> float:
    """The delay that best aligns a smoothed track with its raw probabilities (no ground truth needed).

    The lag (in frames, reported in ms with the median frame step) that maximises the correlation
    of the smoothed probability traces with the raw ones, over all labels that vary.
    """
    t = np.asarray(t_ms, np.float64)
    if len(t) < 4:
        return float("nan")
    step = float(np.median(np.diff(t)))
    best, best_lag = -np.inf, 0
    for lag in range(0, max(1, int(max_lag_ms / max(step, 1e-6))) + 1):
        if lag >= len(t) - 3:
            break
        a, b = raw[:len(t) - lag], smoothed[lag:]
        num = ((a - a.mean(0)) * (b - b.mean(0))).sum()
        den = np.sqrt(((a - a.mean(0)) ** 2).sum() * ((b - b.mean(0)) ** 2).sum())
        c = num / den if den > 0 else -np.inf
        if c > best:
            best, best_lag = c, lag
    return best_lag * step
