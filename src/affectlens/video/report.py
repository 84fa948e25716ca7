"""One self-contained HTML report of a video run: summary table, inline SVG charts, definitions, notice.

The file loads nothing from outside (no scripts, stylesheets, fonts or images): every chart is
inline SVG drawn by the small helpers below, so the report opens offline and can be archived
or mailed as is. All text taken from the data is escaped.

Example:
    >>> rows = aggregate_intervals(frames, 5.0)
    >>> write_html_report("out/report.html", frames, rows, summarize(frames, rows))
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from affectlens.faces import Faces
from affectlens.labels import EMOTIONS, display_order, emotion_color
from affectlens.video.aggregate import DEFINITIONS, NOTICE, VALENCE_AROUSAL, summarize

_W, _H = 720, 210                      # chart size in SVG units
_ML, _MR, _MT, _MB = 58, 14, 24, 40    # margins: left, right, top, bottom
_MAX_BINS = 400                        # time bins of the emotion timeline


@dataclass(frozen=True)
class ReportOptions:
    """How the report treats many people and short tracks.

    Attributes:
        min_track_s: tracks whose face is visible for less than this (seconds of video time, and
            less than a fifth of the clip) are folded into one compact "short tracks" list.
        min_rate_s: label-change rates per minute are shown only for tracks spanning at least this
            many seconds (shorter spans give meaningless rates such as 600 changes per minute).
        max_sections: people (ranked by time on screen) who get a full section with charts; the
            others are listed in the summary table and the overview chart only.

    Raises:
        ValueError: negative durations or ``max_sections < 0``.
    """

    min_track_s: float = 2.0
    min_rate_s: float = 10.0
    max_sections: int = 12

    def __post_init__(self):
        if self.min_track_s < 0 or self.min_rate_s < 0 or self.max_sections < 0:
            raise ValueError(f"expected min_track_s >= 0, min_rate_s >= 0 and max_sections >= 0, got {self}")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _hex(label: str) -> str:
    """The palette colour of ``label`` as ``#rrggbb`` (see :mod:`affectlens.labels`)."""
    return emotion_color(label)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, nd: int = 2) -> str:
    return "–" if x is None else f"{x:+.{nd}f}"


def _sec(ms: float | None) -> str:
    return "–" if ms is None else f"{ms / 1000:.1f} s"


def _nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 times a power of ten apart) within [lo, hi]."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 9) for i in range(int((hi - first) / step + 1e-9) + 1)]


class _Plot:
    """Maps data coordinates to SVG units and draws axes."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float, h: int = _H, ml: int = _ML):
        self.x0, self.x1, self.y0, self.y1, self.h, self.ml = x0, x1, y0, y1, h, ml

    def x(self, v: float) -> float:
        return self.ml + (v - self.x0) / (self.x1 - self.x0) * (_W - self.ml - _MR)

    def y(self, v: float) -> float:
        return self.h - _MB - (v - self.y0) / (self.y1 - self.y0) * (self.h - _MT - _MB)

    def open(self, label: str) -> str:
        return (f'<svg viewBox="0 0 {_W} {self.h}" width="100%" style="max-width:{_W}px" role="img" '
                f'aria-label="{_e(label)}"><title>{_e(label)}</title>')

    def axes(self, xlabel: str, ylabel: str, yticks: Sequence[float], yfmt) -> str:
        out = []
        for v in yticks:
            y = self.y(v)
            out.append(f'<line x1="{self.ml}" x2="{_W - _MR}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                       f'<text x="{self.ml - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(yfmt(v))}</text>')
        base = self.h - _MB
        for v in _nice_ticks(self.x0, self.x1):
            x = self.x(v)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" class="axis"/>'
                       f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{v:g}</text>')
        out.append(f'<line x1="{self.ml}" x2="{_W - _MR}" y1="{base}" y2="{base}" class="axis"/>'
                   f'<text x="{(self.ml + _W - _MR) / 2:.0f}" y="{self.h - 6}" text-anchor="middle">{_e(xlabel)}</text>'
                   f'<text transform="translate(14 {(_MT + base) / 2:.0f}) rotate(-90)" '
                   f'text-anchor="middle">{_e(ylabel)}</text>')
        return "".join(out)


# ----- charts ------------------------------------------------------------------------------
def _timeline_svg(tid: int, pos: np.ndarray, probs: np.ndarray, raw_top: np.ndarray, labels: Sequence[str],
                  frame_bin: np.ndarray, centers_s: np.ndarray, half_s: float, xr: tuple[float, float]) -> str:
    """Stacked areas of smoothed probabilities over time, gaps where the face is missing,
    and a strip of the raw per-frame top label above them."""
    p = _Plot(*xr, 0.0, 100.0)
    out = [p.open(f"Track {tid}: emotion probabilities over time"),
           p.axes("time (seconds)", "probability (%)", [0, 25, 50, 75, 100], lambda v: f"{v:.0f}%")]
    c = len(labels)
    bins, inv = np.unique(frame_bin[pos], return_inverse=True)
    counts = np.bincount(inv, minlength=len(bins))[:, None]
    mean = np.zeros((len(bins), c))
    np.add.at(mean, inv, probs)
    cum = np.cumsum(mean / counts, 1) * 100
    votes = np.zeros((len(bins), c))
    np.add.at(votes, (inv, raw_top), 1)
    for seg in np.split(np.arange(len(bins)), np.flatnonzero(np.diff(bins) != 1) + 1):
        xs = centers_s[bins[seg]]
        xs = np.concatenate([[xs[0] - half_s], xs, [xs[-1] + half_s]])
        xs = np.clip(xs, *xr)
        cs = np.concatenate([cum[seg[:1]], cum[seg], cum[seg[-1:]]])
        for j, name in enumerate(labels):
            top, bot = cs[:, j], (cs[:, j - 1] if j else np.zeros(len(cs)))
            if np.all(top - bot < 1e-3):
                continue
            pts = [f"{p.x(x):.1f},{p.y(v):.1f}" for x, v in zip(xs, top)]
            pts += [f"{p.x(x):.1f},{p.y(v):.1f}" for x, v in zip(xs[::-1], bot[::-1])]
            out.append(f'<polygon points="{" ".join(pts)}" fill="{_hex(name)}"><title>{_e(name)}</title></polygon>')
    out.append(f'<text x="{_ML - 6}" y="{_MT - 9}" text-anchor="end" class="small">raw</text>')
    for b, v in zip(bins, votes):
        name = labels[int(v.argmax())]
        x0, x1 = p.x(max(xr[0], centers_s[b] - half_s)), p.x(min(xr[1], centers_s[b] + half_s))
        out.append(f'<rect x="{x0:.1f}" y="{_MT - 16}" width="{max(0.6, x1 - x0):.1f}" height="9" '
                   f'fill="{_hex(name)}"><title>{_e(f"{centers_s[b]:.1f} s: {name} (raw)")}</title></rect>')
    return "".join(out) + "</svg>"


def _episodes_html(tid: int, episodes: Sequence[dict] | None, xr: tuple[float, float]) -> str:
    """The track's expression episodes under its timeline (empty without episodes)."""
    from affectlens.video.episodes import episodes_svg

    svg = episodes_svg(tid, [e for e in episodes or [] if e["track_id"] == tid], xr, _hex)
    return svg and ("<p>Expression episodes: bars from when an emotion rose above the threshold to when it fell "
                    "back (episodes.csv); the dark tick marks its peak.</p>" + svg)


def _hbars_svg(tid: int, shares: dict[str, float], labels: Sequence[str]) -> str:
    """Horizontal bars: share of frames per top emotion."""
    row, lw, bw = 22, 90, 480
    h = row * len(labels) + 10
    out = [f'<svg viewBox="0 0 {_W} {h}" width="100%" style="max-width:{_W}px" role="img" '
           f'aria-label="Track {tid}: emotion distribution"><title>Track {tid}: emotion distribution</title>']
    for i, name in enumerate(labels):
        v = float(shares.get(name) or 0.0)
        y = 5 + i * row
        out.append(f'<text x="{lw - 8}" y="{y + 15}" text-anchor="end">{_e(name)}</text>'
                   f'<rect x="{lw}" y="{y + 3}" width="{bw}" height="{row - 6}" class="track"/>'
                   f'<rect x="{lw}" y="{y + 3}" width="{bw * v:.1f}" height="{row - 6}" fill="{_hex(name)}"/>'
                   f'<text x="{lw + bw * v + 6:.1f}" y="{y + 15}">{_pct(v)}</text>')
    return "".join(out) + "</svg>"


def _clip_interval(r: dict, xr: tuple[float, float]) -> tuple[float, float]:
    return max(xr[0], r["start_ms"] / 1000), min(xr[1], r["end_ms"] / 1000)


def _engagement_svg(tid: int, rows: Sequence[dict], xr: tuple[float, float]) -> str:
    p = _Plot(*xr, 0.0, 100.0, h=180)
    out = [p.open(f"Track {tid}: engagement per interval"),
           p.axes("time (seconds)", "engagement (%)", [0, 25, 50, 75, 100], lambda v: f"{v:.0f}%")]
    for r in rows:
        a, b = _clip_interval(r, xr)
        if r["engagement"] is None:  # the face was there but never reliably read: no bar, not 0%
            continue
        v = 100 * float(r["engagement"])
        top = min(p.y(v), p.y(0) - 1.5)                   # a thin bar still marks 0%
        tip = (f"{a:.1f}–{b:.1f} s: engagement {v:.0f}%, face visible in "
               f"{_pct(r['face_present_ratio'])} of frames")
        out.append(f'<rect x="{p.x(a) + 1:.1f}" y="{top:.1f}" width="{max(1.0, p.x(b) - p.x(a) - 2):.1f}" '
                   f'height="{p.y(0) - top:.1f}" class="eng"><title>{_e(tip)}</title></rect>')
    return "".join(out) + "</svg>"


def _va_svg(tid: int, rows: Sequence[dict], xr: tuple[float, float]) -> str:
    p = _Plot(*xr, -1.0, 1.0, h=200)
    out = [p.open(f"Track {tid}: valence and arousal per interval"),
           p.axes("time (seconds)", "score (−1 to +1)", [-1, -0.5, 0, 0.5, 1], lambda v: f"{v:+g}" if v else "0"),
           f'<line x1="{_ML}" x2="{_W - _MR}" y1="{p.y(0):.1f}" y2="{p.y(0):.1f}" class="axis"/>']
    for key, cls, lx in (("valence", "val", _ML + 10), ("arousal", "aro", _ML + 140)):
        out.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{_MT - 12}" y2="{_MT - 12}" class="{cls}"/>'
                   f'<text x="{lx + 30}" y="{_MT - 8}">{key}</text>')
        pts: list[str] = []
        for r in list(rows) + [None]:
            v = None if r is None else r[key]
            if v is None:
                if len(pts) > 1:
                    out.append(f'<polyline points="{" ".join(pts)}" class="{cls}"/>')
                pts = []
                continue
            a, b = _clip_interval(r, xr)
            x, y = p.x((a + b) / 2), p.y(v)
            pts.append(f"{x:.1f},{y:.1f}")
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="{cls}"><title>'
                       f'{_e(f"{a:.1f}–{b:.1f} s: {key} {v:+.2f}")}</title></circle>')
    return "".join(out) + "</svg>"


# ----- page --------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0 auto;max-width:960px;
padding:1em 1.5em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left}th{background:#f3f3f3}
.notice{background:#fff6db;border:1px solid #e0c46c;padding:.6em 1em;border-radius:4px}
.empty{font-size:1.2em;padding:1em;background:#f3f3f3}
.swatch{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 .8em;vertical-align:middle;
border:1px solid #888}
svg text{font-size:11px;fill:#333}svg .small{font-size:9px}
.grid{stroke:#e4e4e4}.cut{stroke:#333;stroke-width:1.5;stroke-dasharray:4 3}.axis{stroke:#888}.track{fill:#f0f0f0}.eng{fill:#4a7ab8}
.val{stroke:#1b4f8a;fill:#1b4f8a;stroke-width:2}.aro{stroke:#c0392b;fill:#c0392b;stroke-width:2;
stroke-dasharray:5 3}polyline.val,polyline.aro{fill:none}
.track-section{margin-top:1.5em;padding-top:.5em;border-top:2px solid #eee}
.scroll{overflow-x:auto}.people td{vertical-align:middle;white-space:nowrap}.small{font-size:.85em;color:#555}
.thumb{width:56px;height:56px;object-fit:cover;border-radius:4px;display:block}
.nothumb{font-size:.75em;color:#888}.who{display:flex;gap:1em;align-items:center}
.who .thumb{width:96px;height:96px}details.short{margin:.8em 0}
"""


def _bins(frame_ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, tuple[float, float]]:
    """Time bins of the timeline: one per frame up to :data:`_MAX_BINS` frames, equal-width beyond.

    Returns:
        bin of each frame, bin centres (s), half a bin width (s) and the x range (s).
    """
    ts = frame_ts_ms / 1000.0
    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 1.0
    step = step if step > 0 else 1.0
    xr = (float(ts[0]) - step / 2, float(ts[-1]) + step / 2)
    if len(ts) <= _MAX_BINS:
        return np.arange(len(ts)), ts, step / 2, xr
    width = (xr[1] - xr[0]) / _MAX_BINS
    frame_bin = np.clip(((ts - xr[0]) / width).astype(np.int64), 0, _MAX_BINS - 1)
    centers = xr[0] + (np.arange(_MAX_BINS) + 0.5) * width
    return frame_bin, centers, width / 2, xr


def _track_series(frames: Sequence[Faces], tids: set[int]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per track: frame positions, smoothed probabilities, raw top-label index."""
    acc: dict[int, list] = {t: [[], [], []] for t in tids}
    for i, f in enumerate(frames):
        if not len(f):
            continue
        raw_top = np.asarray(f.data.get("probs_raw", f.probs)).argmax(1)
        for j, t in enumerate(f.track_id.tolist()):
            if t in acc:
                acc[t][0].append(i)
                acc[t][1].append(f.probs[j])
                acc[t][2].append(raw_top[j])
    return {t: (np.asarray(a), np.asarray(b, np.float64), np.asarray(c, np.int64)) for t, (a, b, c) in acc.items()
            if a}


def _table(head: Sequence[str] | None, rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table (no header row when ``head`` is ``None``); cells are escaped here."""
    th = "" if head is None else "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{th}<tbody>{body}</tbody></table>"


_DETAIL_NAMES = {
    ("source", "source"): "video", ("source", "kind"): "kind of source", ("source", "fps_nominal"): "frame rate",
    ("source", "frames_announced"): "frames in the file", ("source", "frames_decoded"): "frames decoded",
    ("source", "frames_yielded"): "frames analysed", ("source", "last_timestamp_ms"): "last frame at",
    ("source", "stopped_early"): "stopped before the announced end",
    ("options", "smooth"): "smoothing", ("options", "window"): "smoothing window",
    ("options", "ema_alpha"): "EMA weight of the newest frame", ("options", "hmm_stay_prob"): "HMM stay probability",
    ("options", "interval_s"): "interval length", ("options", "every"): "analyse every n-th frame",
    ("options", "fps"): "analysis frame rate", ("options", "start_s"): "start", ("options", "end_s"): "end",
    ("options", "detect_every"): "full-frame face scans (0 = auto)",
    ("options", "rescan_s"): "auto: full scan at least every",
    ("options", "regions_every"): "auto: windowed passes every n frames (0 = from track stability)",
    ("options", "classify_per_s"): "emotion readings per second (0 = every face, every frame)",
    ("options", "model"): "learned smoother's model",
    ("model", "name"): "emotion model", ("model", "sha256"): "emotion model sha256",
    ("model", "choice"): "why this file", ("model", "cpu"): "CPU", ("model", "detector"): "face detector",
    ("model", "temporal_model"): "learned smoother's model", ("model", "temporal_model_sha256"): "its sha256",
    ("options", "scene_cut_distance"): "scene cuts: colour change from",
    ("options", "hold_s"): "smoothing: hold time", ("options", "window_s"): "smoothing window",
    ("options", "tau_s"): "smoothing time constant",
    ("processing", "seconds"): "processing time", ("processing", "frames_this_run"): "frames analysed in this run",
    ("processing", "fps"): "processing speed", ("processing", "interrupted"): "interrupted",
    ("processing", "complete"): "complete",
}
_SMOOTHER_KEYS = {"moving-average": "window", "ema": "ema_alpha", "hmm": "hmm_stay_prob"}


def _human(section: str, key: str, v: Any, d: dict) -> str | None:
    """A run-details value as people read it; ``None`` to leave the row out."""
    if v is None:
        return {("options", "fps"): "every frame", ("options", "start_s"): "from the beginning",
                ("options", "end_s"): "to the end", ("options", "scene_cut_distance"): "off"}.get((section, key), "–")
    if isinstance(v, bool):
        return "yes" if v else "no"
    if section == "options" and key in ("window", "ema_alpha", "hmm_stay_prob") and \
            _SMOOTHER_KEYS.get(d.get("smooth")) != key:
        return None  # a setting of a smoother that was not used
    if key == "source" and section == "source":
        return Path(str(v)).name or str(v)
    if key.endswith("sha256"):
        return f"{str(v)[:16]}… (in full in summary.json)"
    if key.endswith("_ms"):
        return f"{float(v) / 1000:.1f} s"
    if key.endswith("_per_s"):  # a rate, e.g. classify_per_s: faces read per second of video
        return f"{float(v):.3g} per second"
    if key in ("seconds", "interval_s", "start_s", "end_s") or (key.endswith("_s") and isinstance(v, (int, float))):
        return f"{float(v):.3g} s" if float(v) < 100 else f"{float(v):.0f} s"
    if key == "window":
        return f"{v} frames"
    if key in ("fps_nominal", "fps"):
        return f"{float(v):.4g} frames per second"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _details(summary: dict) -> str:
    """Run details that a session may have added (source, options, processing, problems)."""
    rows = []
    for section in ("source", "model", "options", "processing"):
        d = summary.get(section)
        if not isinstance(d, dict):
            continue
        if section == "source" and d.get("width") and d.get("height"):
            rows.append(("frame size", f"{d['width']} × {d['height']} pixels"))
        for k, v in d.items():
            if isinstance(v, (dict, list)) or (section == "source" and k in ("width", "height", "problems")):
                continue
            text = _human(section, k, v, d)
            if text is not None:
                rows.append((_DETAIL_NAMES.get((section, k), k.replace("_", " ")), text))
    problems = summary.get("problems") or []
    out = _table(["setting", "value"], rows) if rows else ""
    if problems:
        out += "<p><strong>Problems while reading the video:</strong></p><ul>" + "".join(
            f"<li>{_e(p)}</li>" for p in problems) + "</ul>"
    return out and f"<h2>Run details</h2>{out}"


def _rank_people(tracks: Sequence[dict], step_s: float, duration_s: float,
                 opts: ReportOptions) -> tuple[list[dict], list[dict]]:
    """Tracks ranked by time on screen, split into people shown and short tracks folded away."""
    ranked = sorted(tracks, key=lambda t: (-int(t["frames_with_face"]), t["first_ms"], t["track_id"]))
    cut = min(opts.min_track_s, 0.2 * duration_s)
    people = [t for t in ranked if t["frames_with_face"] * step_s >= cut]
    return people, [t for t in ranked if t["frames_with_face"] * step_s < cut]


def _overview_svg(people: Sequence[dict], names: dict[int, str], series: dict, labels: Sequence[str],
                  frame_bin: np.ndarray, centers_s: np.ndarray, half_s: float, xr: tuple[float, float],
                  cuts_ms: Sequence[float] = ()) -> str:
    """All people on one time axis: one row each, coloured by the smoothed top emotion, gaps where unseen."""
    row = 18
    h = _MT + row * len(people) + _MB
    p = _Plot(*xr, 0.0, float(len(people)), h=h, ml=76)
    out = [p.open("Overview: when each person was visible and their most probable emotion"),
           p.axes("time (seconds)", "", [], str)]
    for c in cuts_ms:
        x = p.x(min(max(c / 1000.0, xr[0]), xr[1]))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_MT - 4}" y2="{h - _MB}" class="cut">'
                   f'<title>{_e(f"scene cut at {c / 1000:.1f} s")}</title></line>')
    for r, t in enumerate(people):
        tid = int(t["track_id"])
        y = _MT + r * row
        out.append(f'<text x="{p.ml - 6}" y="{y + row - 5}" text-anchor="end">{_e(names[tid])}</text>'
                   f'<line x1="{p.ml}" x2="{_W - _MR}" y1="{y + row / 2:.1f}" y2="{y + row / 2:.1f}" class="grid"/>')
        if tid not in series:
            continue
        pos, probs, _raw = series[tid]
        bins, inv = np.unique(frame_bin[pos], return_inverse=True)
        mean = np.zeros((len(bins), len(labels)))
        np.add.at(mean, inv, probs)
        top = mean.argmax(1)
        start = 0
        for k in range(1, len(bins) + 1):  # merge runs of adjacent bins with the same label into one rect
            if k < len(bins) and bins[k] == bins[k - 1] + 1 and top[k] == top[start]:
                continue
            a = max(xr[0], centers_s[bins[start]] - half_s)
            b = min(xr[1], centers_s[bins[k - 1]] + half_s)
            name = labels[int(top[start])]
            out.append(f'<rect x="{p.x(a):.1f}" y="{y + 2}" width="{max(0.8, p.x(b) - p.x(a)):.1f}" '
                       f'height="{row - 4}" fill="{_hex(name)}"><title>'
                       f'{_e(f"{names[tid]}: {name}, {a:.1f}–{b:.1f} s")}</title></rect>')
            start = k
    return "".join(out) + "</svg>"


_PEOPLE_HEAD = ("", "person", "on screen", "visible from–to", "main emotion", "engagement", "facing camera",
                "valence", "arousal", "label changes per minute (raw → smoothed)")


def _rate(t: dict, opts: ReportOptions) -> str:
    span_s = (float(t["last_ms"]) - float(t["first_ms"])) / 1000.0
    if t.get("switches_per_min_raw") is None or span_s < opts.min_rate_s:
        return "– (too short)"
    return f"{t['switches_per_min_raw']:.1f} → {t['switches_per_min_smoothed']:.1f}"


def _thumb(uri: str | None, name: str) -> str:
    if not uri or not uri.startswith("data:image/"):
        return '<span class="nothumb">no image</span>'
    return f'<img class="thumb" src="{_e(uri)}" alt="{_e(f"face of {name}")}">'


def _people_table(people: Sequence[dict], names: dict[int, str], step_s: float, thumbs: dict[int, str],
                  opts: ReportOptions) -> str:
    head = "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in _PEOPLE_HEAD) + "</tr></thead>"
    rows = []
    for t in people:
        tid = int(t["track_id"])
        cells = [f'<a href="#track-{tid}">{_e(names[tid])}</a>' if tid in names.get("_sections", ())
                 else _e(names[tid]),
                 _e(_sec(t["frames_with_face"] * step_s * 1000)), _e(f"{_sec(t['first_ms'])} – {_sec(t['last_ms'])}"),
                 _e(t.get("dominant") or "–"), _e(_pct(t.get("engagement"))), _e(_pct(t.get("attention"))),
                 _e(_num(t.get("valence"))), _e(_num(t.get("arousal"))), _e(_rate(t, opts))]
        rows.append(f"<tr><td>{_thumb(thumbs.get(tid), names[tid])}</td><td>" + "</td><td>".join(cells)
                    + "</td></tr>")
    return f'<div class="scroll"><table class="people">{head}<tbody>{"".join(rows)}</tbody></table></div>'


def _short_list(short: Sequence[dict], step_s: float, cut_s: float) -> str:
    if not short:
        return ""
    items = ", ".join(f"track {t['track_id']} ({_sec(t['frames_with_face'] * step_s * 1000)} at "
                      f"{_sec(t['first_ms'])}, {t.get('dominant') or '–'})" for t in short)
    return (f'<details class="short" id="short-tracks"><summary>{len(short)} short track(s), each visible for '
            f"less than {cut_s:.1f} s, not shown separately</summary><p>{_e(items)}. Short tracks are often "
            "the same person again after the tracker lost them (occlusion, a turn of the head), or faces at the "
            "edge of the picture.</p></details>")


def _section(t: dict, name: str, thumb: str | None, series: dict, labels: Sequence[str], rows: list[dict],
             frame_bin, centers, half, xr, step_s: float, opts: ReportOptions,
             episodes: Sequence[dict] | None = None) -> str:
    tid = int(t["track_id"])
    parts = [f'<section class="track-section" id="track-{tid}"><h2>{_e(name)} <small>(track {tid})</small></h2>'
             f'<div class="who">{_thumb(thumb, name)}<p>Visible from {_sec(t["first_ms"])} to {_sec(t["last_ms"])}, '
             f"on screen for {_sec(t['frames_with_face'] * step_s * 1000)} ({t['frames_with_face']} frames, "
             f"{_pct(t.get('presence_ratio'))} of that time). Average engagement {_pct(t.get('engagement'))}. "
             f"Label changes per minute (raw → smoothed): {_e(_rate(t, opts))}.</p></div>"]
    if tid in series:
        parts.append("<h3>Emotions over time</h3><p>Coloured areas: smoothed probability of each emotion "
                     "(together 100%). Gaps: the face was not visible. Thin strip on top: the most "
                     "probable emotion of each single frame before smoothing.</p>"
                     + _timeline_svg(tid, *series[tid], labels, frame_bin, centers, half, xr)
                     + _episodes_html(tid, episodes, xr))
    parts.append("<h3>How often each emotion was the most probable</h3>"
                 + _hbars_svg(tid, t.get("shares") or {}, labels))
    if rows:
        parts.append("<h3>Engagement per interval</h3>" + _engagement_svg(tid, rows, xr)
                     + "<h3>Valence and arousal per interval</h3><p>Valence: unpleasant (−1) to pleasant "
                     "(+1). Arousal: calm (−1) to excited (+1).</p>" + _va_svg(tid, rows, xr))
    else:
        parts.append("<p>No interval data for this track.</p>")
    return "".join(parts) + "</section>"


def render_html_report(frames: Sequence[Faces], intervals: Sequence[dict], summary: dict | None = None,
                       title: str = "AffectLens video report", options: ReportOptions | None = None,
                       thumbnails: dict[int, str] | None = None) -> str:
    """The report as one HTML string (see :func:`write_html_report`)."""
    opts = options or ReportOptions()
    thumbs = {int(k): v for k, v in (thumbnails or {}).items()}
    frames = list(frames)
    intervals = list(intervals or [])
    summary = summary or summarize(frames, intervals)
    labels = tuple(summary.get("labels") or (frames[0].labels if frames else EMOTIONS))
    labels = tuple(display_order(labels))
    tracks = summary.get("tracks") or []
    notice = summary.get("notice") or NOTICE
    ts = np.array([f.info.timestamp_ms for f in frames], np.float64)
    duration_s = float(summary.get("duration_ms") or 0.0) / 1000.0
    step_s = duration_s / len(ts) if len(ts) and duration_s > 0 else 1.0  # every analysed frame weighs the same
    people, short = _rank_people(tracks, step_s, duration_s, opts)
    names: dict = {int(t["track_id"]): f"Person {i}" for i, t in enumerate(people, 1)}
    names.update({int(t["track_id"]): f"Track {t['track_id']}" for t in short})
    sections = people[:opts.max_sections]
    names["_sections"] = {int(t["track_id"]) for t in sections}
    parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><h1>{_e(title)}</h1>",
             f'<div class="notice" id="notice"><strong>Please read:</strong> {_e(notice)}<ul>'
             "<li>The charts show what faces <em>looked like</em> to a computer model, not what people felt.</li>"
             "<li>How emotions show on faces differs between people, cultures and situations; lighting, head pose, "
             "glasses or masks also change the results, and models are less accurate for some groups of people.</li>"
             "<li>People are numbered faces followed over time (Person 1 is the one on screen longest); the "
             "numbers do not identify anyone, and one person may appear as several tracks.</li>"
             "<li>Only analyse people who agreed to it, and do not use these numbers alone to judge or decide "
             "about anyone.</li>"
             + ("<li>This report contains small pictures of the faces (so that readers can tell the people apart); "
                "share it only with people entitled to see them, or run with --no-thumbnails or --blur-faces.</li>"
                if thumbs else "")
             + "</ul></div>"]
    parts.append("<h2>Overview</h2>" + _table(None, [
        ("frames analysed", summary.get("frames_analysed", len(frames))),
        ("video time covered", _sec(summary.get("duration_ms"))),
        ("people (face tracks)", f"{len(people)}" + (f" (and {len(short)} short tracks)" if short else "")),
        ("faces per frame, on average", f"{summary.get('faces_per_frame_mean') or 0.0:.2f}"),
        *([("scene cuts", ", ".join(_sec(c) for c in summary["scene_cuts_ms"]))] if summary.get("scene_cuts_ms") else []),
        ("interval length", f"{summary['interval_s']:g} s" if summary.get("interval_s") else "–")]))
    parts.append('<p>Colours:' + "".join(f'<span class="swatch" style="background:{_hex(n)}"></span>{_e(n)}'
                                         for n in labels) + "</p>")
    if not tracks:
        parts.append('<p class="empty">No faces found: no face was followed long enough to form a track.</p>')
    else:
        frame_bin, centers, half, xr = _bins(ts) if len(ts) else (np.zeros(0, np.int64), np.zeros(0), 0.5, (0, 1))
        series = _track_series(frames, {int(t["track_id"]) for t in tracks})
        if people:
            parts.append('<h2>Everyone on one time axis</h2><p>One row per person, ranked by time on screen; the '
                         "colour is the most probable emotion (smoothed), blank where the face was not visible."
                         + (" Dashed lines: scene cuts, where every track ends (a person seen in two shots "
                            "appears twice)." if summary.get("scene_cuts_ms") else "") + "</p>"
                         + '<div id="overview">' + _overview_svg(people, names, series, labels, frame_bin, centers,
                                                                half, xr, summary.get("scene_cuts_ms") or ())
                         + "</div>")
            parts.append("<h2>Summary per person</h2>" + _people_table(people, names, step_s, thumbs, opts)
                         + f"<p class=\"small\">Label-change rates are shown for people seen over at least "
                         f"{opts.min_rate_s:g} s.</p>")
        parts.append(_short_list(short, step_s, min(opts.min_track_s, 0.2 * duration_s)))
        if len(people) > len(sections):
            parts.append(f"<p>Detailed charts follow for the {len(sections)} people on screen longest; the other "
                         f"{len(people) - len(sections)} appear in the table and the overview above.</p>")
        by_track: dict[int, list[dict]] = {}
        for r in intervals:
            by_track.setdefault(int(r["track_id"]), []).append(r)
        for t in sections:
            tid = int(t["track_id"])
            parts.append(_section(t, names[tid], thumbs.get(tid), series, labels, by_track.get(tid, []),
                                  frame_bin, centers, half, xr, step_s, opts,
                                  (summary or {}).get("episodes")))
    parts.append("<h2>How the numbers are computed</h2>"
                 f"<h3>Engagement</h3><p>{_e(DEFINITIONS['engagement'])}</p>"
                 f"<h3>Facing the camera</h3><p>{_e(DEFINITIONS['attention'])}</p>"
                 f"<h3>Valence and arousal</h3><p>{_e(DEFINITIONS['valence_arousal'])}</p>"
                 + _table(["emotion", "valence", "arousal"],
                          [(n, *(f"{v:+.2f}" for v in VALENCE_AROUSAL[n])) for n in labels if n in VALENCE_AROUSAL])
                 + f"<h3>Shares and intervals</h3><p>{_e(DEFINITIONS['shares'])} {_e(DEFINITIONS['intervals'])}</p>")
    parts.append(_details(summary))
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html_report(path: str | Path, frames: Sequence[Faces], intervals: Sequence[dict],
                      summary: dict | None = None, title: str = "AffectLens video report",
                      options: ReportOptions | None = None, thumbnails: dict[int, str] | None = None) -> Path:
    """Write the self-contained HTML report of a video run.

    Args:
        path: output ``.html`` file (parent folders are created).
        frames: one :class:`Faces` per analysed frame, in time order.
        intervals: rows of :func:`~affectlens.video.aggregate.aggregate_intervals`.
        summary: :func:`~affectlens.video.aggregate.summarize` output (computed when ``None``);
            ``source``, ``options``, ``processing`` and ``problems`` keys, when present, are listed
            under "Run details".
        title: page title.
        options: :class:`ReportOptions` (short tracks, rates, how many detailed sections).
        thumbnails: track id → ``data:image/jpeg;base64,...`` face thumbnail (blurred when the run
            blurs faces); people without one show "no image".

    Returns:
        The written path.

    Raises:
        ValueError: frames that :func:`~affectlens.video.aggregate.summarize` rejects.
        OSError: the file cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html_report(frames, intervals, summary, title, options, thumbnails)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
