"""Expression episodes: per track, the spans where an emotion rises above a threshold.

"When did the viewer smile, and for how long?" An episode of emotion ``e`` on a track starts
when the track's *smoothed* probability of ``e`` reaches ``min_prob`` and lasts while it stays
at or above ``end_prob`` (hysteresis, so a wobble around the threshold does not split it). The
face missing for more than ``max_gap_s`` ends it; two episodes of the same emotion less than
``max_gap_s`` apart are merged; episodes shorter than ``min_duration_s`` are dropped.

Each episode has the three phases facial-expression research names (onset, apex, offset):

- ``start_ms`` — first frame at or above ``min_prob``;
- ``peak_ms`` / ``peak_prob`` — the apex: the first frame within :data:`PEAK_TIE` of the
  highest probability (a plateau's start), and that highest probability;
- ``end_ms`` — last frame at or above ``end_prob``;
- ``duration_ms = end_ms - start_ms``, ``onset_ms = peak_ms - start_ms``,
  ``offset_ms = end_ms - peak_ms``; ``mean_prob`` over the episode's frames, ``frames``.

The probabilities describe what the face *looked like* to the model, not what the person felt.

Example:
    >>> rows = find_episodes(frames)                  # frames from VideoAnalyzer
    >>> [(r["emotion"], r["start_ms"], r["duration_ms"]) for r in rows if r["track_id"] == 1]
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from affectlens.faces import Faces

#: Probabilities this close to an episode's highest count as its peak too (the first one wins).
PEAK_TIE = 0.002
EPISODE_FIELDS = ["track_id", "emotion", "start_ms", "peak_ms", "end_ms", "duration_ms", "onset_ms", "offset_ms",
                  "peak_prob", "mean_prob", "frames"]


@dataclass(frozen=True)
class EpisodeOptions:
    """Thresholds of :func:`find_episodes`.

    Attributes:
        min_prob: smoothed probability at which an episode starts.
        end_prob: probability below which it ends (``None`` = ``min_prob - 0.1``, at least 0).
        min_duration_s: shorter episodes are dropped.
        max_gap_s: the face may be missing this long inside an episode; episodes of one emotion
            closer than this are merged.
        include_neutral: also report ``neutral`` spans (off by default: they are not expressions).

    Raises:
        ValueError: thresholds outside [0, 1], ``end_prob > min_prob`` or negative durations.
    """

    min_prob: float = 0.5
    end_prob: float | None = None
    min_duration_s: float = 0.3
    max_gap_s: float = 0.5
    include_neutral: bool = False

    def __post_init__(self):
        if not 0.0 < self.min_prob <= 1.0:
            raise ValueError(f"min_prob must be in (0, 1], got {self.min_prob}")
        if self.end_prob is not None and not 0.0 <= self.end_prob <= self.min_prob:
            raise ValueError(f"end_prob must be in [0, min_prob={self.min_prob}], got {self.end_prob}")
        for name in ("min_duration_s", "max_gap_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number of seconds >= 0, got {v}")

    @property
    def end_threshold(self) -> float:
        return max(0.0, self.min_prob - 0.1) if self.end_prob is None else self.end_prob


def _spans(t: np.ndarray, p: np.ndarray, opts: EpisodeOptions) -> list[tuple[int, int]]:
    """(first, last) indices of each episode in one track's series of one emotion."""
    spans: list[tuple[int, int]] = []
    start = None
    gap_ms = 1000.0 * opts.max_gap_s
    for i in range(len(t)):
        if start is not None and (p[i] < opts.end_threshold or t[i] - t[i - 1] > gap_ms):
            spans.append((start, last))
            start = None
        if start is None and p[i] >= opts.min_prob:
            start = i
        if start is not None:
            last = i
    if start is not None:
        spans.append((start, last))
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and t[a] - t[merged[-1][1]] <= gap_ms:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return [(a, b) for a, b in merged if t[b] - t[a] >= 1000.0 * opts.min_duration_s]


def find_episodes(frames: Sequence[Faces], options: EpisodeOptions | None = None) -> list[dict[str, Any]]:
    """Expression episodes of every confirmed track (``track_id >= 1``), from smoothed probabilities.

    Args:
        frames: one :class:`Faces` per analysed frame, in time order, with ``info.timestamp_ms``.
        options: thresholds (see :class:`EpisodeOptions`).

    Returns:
        Rows with the columns of :data:`EPISODE_FIELDS` (times in ms, rounded to 0.001),
        sorted by track, then start time.

    Raises:
        ValueError: a frame without a timestamp, or unclassified faces.
    """
    opts = options or EpisodeOptions()
    series: dict[int, tuple[list[float], list[np.ndarray]]] = {}
    labels: tuple[str, ...] = ()
    for i, f in enumerate(frames):
        if not len(f):
            continue
        if f.info.timestamp_ms is None:
            raise ValueError(f"frame {i}: expected info.timestamp_ms, got None; analyse videos with VideoAnalyzer")
        if not f.classified:
            raise ValueError(f"frame {i}: expected classified faces, got probs of shape {f.probs.shape}")
        labels = f.labels
        for j, tid in enumerate(f.track_id):
            if tid >= 1:
                ts, ps = series.setdefault(int(tid), ([], []))
                ts.append(float(f.info.timestamp_ms))
                ps.append(f.probs[j])
    rows = []
    for tid in sorted(series):
        t = np.asarray(series[tid][0])
        probs = np.asarray(series[tid][1], np.float64)
        found = []
        for k, name in enumerate(labels):
            if name == "neutral" and not opts.include_neutral:
                continue
            for a, b in _spans(t, probs[:, k], opts):
                p = probs[a:b + 1, k]
                # the first frame within PEAK_TIE of the highest: a plateau at the smoother's cap
                # gives the same apex on every run, not one set by float noise in the 4th decimal
                peak = a + int(np.argmax(p >= p.max() - PEAK_TIE))
                found.append({"track_id": tid, "emotion": name, "start_ms": round(t[a], 3),
                              "peak_ms": round(t[peak], 3), "end_ms": round(t[b], 3),
                              "duration_ms": round(t[b] - t[a], 3), "onset_ms": round(t[peak] - t[a], 3),
                              "offset_ms": round(t[b] - t[peak], 3), "peak_prob": round(float(p.max()), 4),
                              "mean_prob": round(float(p.mean()), 4), "frames": int(b - a + 1)})
        rows.extend(sorted(found, key=lambda r: (r["start_ms"], r["emotion"])))
    return rows


def episodes_svg(tid: int, episodes: Sequence[dict], xr: tuple[float, float], color: Callable[[str], str],
                 width: int = 720, left: int = 58, right: int = 14) -> str:
    """A strip chart of one track's episodes, aligned with the report's timeline (same x range).

    One row per emotion; each episode is a bar from start to end with a tick at its peak, and a
    tooltip with its numbers. Returns an empty string when the track has no episode.

    Args:
        tid: track id (for the caption).
        episodes: rows of :func:`find_episodes` for this track.
        xr: ``(first, last)`` seconds of the timeline's x axis.
        color: label -> CSS colour.
    """
    if not episodes:
        return ""
    names = list(dict.fromkeys(e["emotion"] for e in episodes))
    row_h, top = 16, 6
    h = top + row_h * len(names) + 6
    span = max(xr[1] - xr[0], 1e-9)

    def x(ms: float) -> float:
        return left + (min(max(ms / 1000.0, xr[0]), xr[1]) - xr[0]) / span * (width - left - right)

    e_ = html.escape
    out = [f'<svg viewBox="0 0 {width} {h}" width="100%" style="max-width:{width}px" role="img" '
           f'aria-label="Track {tid}: expression episodes"><title>Track {tid}: expression episodes</title>']
    for r, name in enumerate(names):
        y = top + r * row_h
        out.append(f'<text x="{left - 6}" y="{y + 11}" text-anchor="end" class="small">{e_(name)}</text>')
        for ep in (e for e in episodes if e["emotion"] == name):
            x0, x1, xp = x(ep["start_ms"]), x(ep["end_ms"]), x(ep["peak_ms"])
            tip = (f"{name}: {ep['start_ms'] / 1000:.1f}-{ep['end_ms'] / 1000:.1f} s "
                   f"({ep['duration_ms'] / 1000:.1f} s), peak {100 * ep['peak_prob']:.0f}% at {ep['peak_ms'] / 1000:.1f} s")
            out.append(f'<g><title>{e_(tip)}</title><rect x="{x0:.1f}" y="{y + 2}" width="{max(1.5, x1 - x0):.1f}" '
                       f'height="11" rx="2" fill="{e_(color(name))}"/><line x1="{xp:.1f}" x2="{xp:.1f}" '
                       f'y1="{y}" y2="{y + 15}" stroke="#222" stroke-width="1.5"/></g>')
    return "".join(out) + "</svg>"
