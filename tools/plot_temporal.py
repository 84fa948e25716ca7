"""Before/after figure of temporal smoothing on the talking-head clip (docs/figures/temporal-talking-head.svg).

    python tools/plot_temporal.py [--model temporal-gru-ferplus] [--clip RUN/clip-WolfgangLanger_Pexels.json]

Reads the per-track raw probabilities that ``benchmarks/bench_temporal.py`` cached for the clip
(by default in the temporal model's run folder, scored by the classifier it was trained on),
runs each smoother over them frame by frame, and draws, per smoother, the top-label strip and
the probability of ``happy`` over time. Plain SVG, no plotting library.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

COLORS = {"angry": "#e53935", "disgust": "#7cb342", "fear": "#8e24aa", "happy": "#fbc02d", "neutral": "#9e9e9e",
          "sad": "#1e88e5", "surprise": "#fb8c00", "contempt": "#00897b"}


def smooth(track: dict, make, labels) -> np.ndarray:
    from affectlens.faces import Faces, FrameInfo

    sm = make()
    raw = np.asarray(track["p"], np.float32)
    out = np.zeros_like(raw)
    for i, t in enumerate(track["t"]):
        f = Faces(np.asarray([track["b"][i]]), np.asarray([track["s"][i]]), np.asarray([track["l"][i]]), raw[i][None],
                  labels, np.array([1]), info=FrameInfo(None, i, float(t), None))
        out[i] = sm.update(f).probs[0]
    return out


def main(argv=None) -> int:
    from affectlens.smoothing import HmmSmoother, MovingAverageSmoother, NoSmoother
    from affectlens.temporal.learned import LearnedSmoother

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="temporal model (default: the default emotion model's)")
    ap.add_argument("--clip", default=None, help="default: <the model's run folder>/clip-WolfgangLanger_Pexels.json")
    ap.add_argument("--out", default="docs/figures/temporal-talking-head.svg")
    args = ap.parse_args(argv)
    learned = LearnedSmoother(args.model)
    clip = args.clip or Path(learned.spec["training"]["config"]["out_dir"]) / "clip-WolfgangLanger_Pexels.json"
    track = max(json.loads(Path(clip).read_text()), key=lambda tr: len(tr["t"]))
    labels = learned.labels
    rows = [("raw (per frame)", NoSmoother), ("moving average 15 frames (old default)",
                                              lambda: MovingAverageSmoother(window=15)),
            ("HMM hold 0.8 s (default)", lambda: HmmSmoother(hold_s=0.8)), (f"learned GRU ({learned.spec['name']})", lambda: learned)]
    t = np.asarray(track["t"]) / 1000.0
    w, left, right, strip, gap, line_h = 840, 250, 10, 14, 8, 46
    h = 30 + len(rows) * (strip + line_h + gap) + 44
    x = lambda s: left + (s - t[0]) / (t[-1] - t[0]) * (w - left - right)  # noqa: E731
    hi = labels.index("happy")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="16">Talking-head clip (WolfgangLanger_Pexels.mp4, {len(t)} frames): '
           'top label (strip) and p(happy) (line)</text>']
    y = 30
    for name, make in rows:
        probs = smooth(track, make, labels)
        top = probs.argmax(1)
        switches = int((top[1:] != top[:-1]).sum())
        out.append(f'<text x="{left - 8}" y="{y + 11}" text-anchor="end">{name}</text>'
                   f'<text x="{left - 8}" y="{y + 25}" text-anchor="end" fill="#555">{switches} label changes</text>')
        starts = np.flatnonzero(np.r_[True, top[1:] != top[:-1]])
        for a, b in zip(starts, list(starts[1:]) + [len(t)]):
            x0, x1 = x(t[a]), (x(t[b]) if b < len(t) else x(t[-1]) + 1)
            out.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(0.5, x1 - x0):.1f}" height="{strip}" '
                       f'fill="{COLORS.get(labels[top[a]], "#999")}"/>')
        base = y + strip + line_h
        pts = " ".join(f"{x(ti):.0f},{base - probs[i, hi] * (line_h - 4):.0f}" for i, ti in enumerate(t))
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{base}" y2="{base}" stroke="#ccc"/>'
                   f'<polyline points="{pts}" fill="none" stroke="#c49000" stroke-width="1.2"/>')
        y = base + gap
    for s in range(int(np.ceil(t[0])), int(t[-1]) + 1, 2):
        out.append(f'<text x="{x(s):.1f}" y="{y + 12}" text-anchor="middle">{s} s</text>')
    legend = "".join(f'<rect x="{left + 72 * k}" y="{y + 22}" width="10" height="10" fill="{COLORS[n]}"/>'
                     f'<text x="{left + 72 * k + 14}" y="{y + 31}">{n}</text>' for k, n in enumerate(labels))
    out.append(legend + "</svg>\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
