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
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from affectlens.annotate import EMOTION_COLORS
from affectlens.faces import Faces
from affectlens.labels import EMOTIONS
from affectlens.video.aggregate import DEFINITIONS, NOTICE, VALENCE_AROUSAL, summarize

_W, _H = 720, 210                      # chart size in SVG units
_ML, _MR, _MT, _MB = 58, 14, 24, 40    # margins: left, right, top, bottom
_MAX_BINS = 400                        # time bins of the emotion timeline


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _hex(label: str) -> str:
    """EMOTION_COLORS (BGR) as ``#rrggbb``; grey for unknown labels."""
    b, g, r = EMOTION_COLORS.get(label, (150, 150, 150))
    return f"#{r:02x}{g:02x}{b:02x}"


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

    def __init__(self, x0: float, x1: float, y0: float, y1: float, h: int = _H):
        self.x0, self.x1, self.y0, self.y1, self.h = x0, x1, y0, y1, h

    def x(self, v: float) -> float:
        return _ML + (v - self.x0) / (self.x1 - self.x0) * (_W - _ML - _MR)

    def y(self, v: float) -> float:
        return self.h - _MB - (v - self.y0) / (self.y1 - self.y0) * (self.h - _MT - _MB)

    def open(self, label: str) -> str:
        return (f'<svg viewBox="0 0 {_W} {self.h}" width="100%" style="max-width:{_W}px" role="img" '
                f'aria-label="{_e(label)}"><title>{_e(label)}</title>')

    def axes(self, xlabel: str, ylabel: str, yticks: Sequence[float], yfmt) -> str:
        out = []
        for v in yticks:
            y = self.y(v)
            out.append(f'<line x1="{_ML}" x2="{_W - _MR}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                       f'<text x="{_ML - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(yfmt(v))}</text>')
        base = self.h - _MB
        for v in _nice_ticks(self.x0, self.x1):
            x = self.x(v)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" class="axis"/>'
                       f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{v:g}</text>')
        out.append(f'<line x1="{_ML}" x2="{_W - _MR}" y1="{base}" y2="{base}" class="axis"/>'
                   f'<text x="{(_ML + _W - _MR) / 2:.0f}" y="{self.h - 6}" text-anchor="middle">{_e(xlabel)}</text>'
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
        v = 100 * float(r["engagement"] or 0.0)
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
.grid{stroke:#e4e4e4}.axis{stroke:#888}.track{fill:#f0f0f0}.eng{fill:#4a7ab8}
.val{stroke:#1b4f8a;fill:#1b4f8a;stroke-width:2}.aro{stroke:#c0392b;fill:#c0392b;stroke-width:2;
stroke-dasharray:5 3}polyline.val,polyline.aro{fill:none}
.track-section{margin-top:1.5em;padding-top:.5em;border-top:2px solid #eee}
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


def _details(summary: dict) -> str:
    """Run details that a session may have added (source, options, processing, problems)."""
    rows = []
    for section in ("source", "options", "processing"):
        d = summary.get(section)
        if isinstance(d, dict):
            rows += [(f"{section}: {k}", "–" if v is None else v) for k, v in d.items()
                     if not isinstance(v, (dict, list))]
    problems = summary.get("problems") or []
    out = _table(["setting", "value"], rows) if rows else ""
    if problems:
        out += "<p><strong>Problems while reading the video:</strong></p><ul>" + "".join(
            f"<li>{_e(p)}</li>" for p in problems) + "</ul>"
    return out and f"<h2>Run details</h2>{out}"


def render_html_report(frames: Sequence[Faces], intervals: Sequence[dict], summary: dict | None = None,
                       title: str = "AffectLens video report") -> str:
    """The report as one HTML string (see :func:`write_html_report`)."""
    frames = list(frames)
    intervals = list(intervals or [])
    summary = summary or summarize(frames, intervals)
    labels = tuple(summary.get("labels") or (frames[0].labels if frames else EMOTIONS))
    tracks = summary.get("tracks") or []
    notice = summary.get("notice") or NOTICE
    parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1">'
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><h1>{_e(title)}</h1>",
             f'<div class="notice" id="notice"><strong>Please read:</strong> {_e(notice)}<ul>'
             "<li>The charts show what faces <em>looked like</em> to a computer model, not what people felt.</li>"
             "<li>How emotions show on faces differs between people, cultures and situations; lighting, head pose, "
             "glasses or masks also change the results, and models are less accurate for some groups of people.</li>"
             "<li>Tracks are numbered faces followed over time; they do not identify anyone.</li>"
             "<li>Only analyse people who agreed to it, and do not use these numbers alone to judge or decide "
             "about anyone.</li></ul></div>"]
    parts.append("<h2>Overview</h2>" + _table(None, [
        ("frames analysed", summary.get("frames_analysed", len(frames))),
        ("video time covered", _sec(summary.get("duration_ms"))),
        ("people (face tracks)", len(tracks)),
        ("faces per frame, on average", f"{summary.get('faces_per_frame_mean') or 0.0:.2f}"),
        ("interval length", f"{summary['interval_s']:g} s" if summary.get("interval_s") else "–")]))
    parts.append('<p>Colours:' + "".join(f'<span class="swatch" style="background:{_hex(n)}"></span>{_e(n)}'
                                         for n in labels) + "</p>")
    if not tracks:
        parts.append('<p class="empty">No faces found: no face was followed long enough to form a track.</p>')
    else:
        parts.append("<h2>Summary per person</h2>" + _table(
            ["track", "visible from–to", "face visible", "main emotion", "engagement", "facing camera",
             "valence", "arousal", "label changes per minute (raw → smoothed)"],
            [(f"Track {t['track_id']}", f"{_sec(t['first_ms'])} – {_sec(t['last_ms'])}",
              _pct(t.get("presence_ratio")), t.get("dominant") or "–", _pct(t.get("engagement")),
              _pct(t.get("attention")), _num(t.get("valence")), _num(t.get("arousal")),
              "–" if t.get("switches_per_min_raw") is None else
              f"{t['switches_per_min_raw']:.1f} → {t['switches_per_min_smoothed']:.1f}") for t in tracks]))
        ts = np.array([f.info.timestamp_ms for f in frames], np.float64)
        frame_bin, centers, half, xr = _bins(ts) if len(ts) else (np.zeros(0, np.int64), np.zeros(0), 0.5, (0, 1))
        series = _track_series(frames, {int(t["track_id"]) for t in tracks})
        by_track: dict[int, list[dict]] = {}
        for r in intervals:
            by_track.setdefault(int(r["track_id"]), []).append(r)
        for t in tracks:
            tid = int(t["track_id"])
            parts.append(f'<section class="track-section" id="track-{tid}"><h2>Track {tid}</h2>'
                         f"<p>Visible from {_sec(t['first_ms'])} to {_sec(t['last_ms'])}, face seen in "
                         f"{t['frames_with_face']} frames ({_pct(t.get('presence_ratio'))} of that time). "
                         f"Average engagement {_pct(t.get('engagement'))}.</p>")
            if tid in series:
                parts.append("<h3>Emotions over time</h3><p>Coloured areas: smoothed probability of each emotion "
                             "(together 100%). Gaps: the face was not visible. Thin strip on top: the most "
                             "probable emotion of each single frame before smoothing.</p>"
                             + _timeline_svg(tid, *series[tid], labels, frame_bin, centers, half, xr)
                             + _episodes_html(tid, summary.get("episodes"), xr))
            parts.append("<h3>How often each emotion was the most probable</h3>"
                         + _hbars_svg(tid, t.get("shares") or {}, labels))
            rows = by_track.get(tid, [])
            if rows:
                parts.append("<h3>Engagement per interval</h3>" + _engagement_svg(tid, rows, xr)
                             + "<h3>Valence and arousal per interval</h3><p>Valence: unpleasant (−1) to pleasant "
                             "(+1). Arousal: calm (−1) to excited (+1).</p>" + _va_svg(tid, rows, xr))
            else:
                parts.append("<p>No interval data for this track.</p>")
            parts.append("</section>")
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
                      summary: dict | None = None, title: str = "AffectLens video report") -> Path:
    """Write the self-contained HTML report of a video run.

    Args:
        path: output ``.html`` file (parent folders are created).
        frames: one :class:`Faces` per analysed frame, in time order.
        intervals: rows of :func:`~affectlens.video.aggregate.aggregate_intervals`.
        summary: :func:`~affectlens.video.aggregate.summarize` output (computed when ``None``);
            ``source``, ``options``, ``processing`` and ``problems`` keys, when present, are listed
            under "Run details".
        title: page title.

    Returns:
        The written path.

    Raises:
        ValueError: frames that :func:`~affectlens.video.aggregate.summarize` rejects.
        OSError: the file cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html_report(frames, intervals, summary, title)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
