"""Train the learned smoother with several flicker penalties and compare them with the HMM default.

    python benchmarks/sweep_temporal.py [--config configs/temporal-gru-ferplus.toml] [--penalties 0 0.5 2]
        [--then-hmm 0.4 0.8]

Each penalty (other than the config's own, trained in its run folder by ``affectlens
train-temporal``) trains in ``<out_dir>-sp<penalty>/`` on the cached sequences of the config's run
folder (symlinked, never scored again), then is measured on the validation sequences (PublicTest
faces: accuracy, switches per minute, latency) and on the real clips' cached tracks (flicker;
``benchmarks/bench_temporal.py`` caches them). The test sequences are not used here: they stay
for the final table. ``--then-hmm HOLD...`` also measures each learned model followed by the HMM
filter with that hold time (a hysteresis on the learned output). Writes ``benchmarks/results/<name>-sweep.json`` and prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/temporal-gru-ferplus.toml")
    ap.add_argument("--penalties", nargs="+", type=float, default=[0.0, 0.5, 2.0])
    ap.add_argument("--then-hmm", nargs="*", type=float, default=[], metavar="HOLD_S")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging

    from bench_temporal import clip_rows, load
    from affectlens.smoothing import HmmSmoother, TrackSmoother
    from affectlens.temporal.evaluate import sequence_metrics, smooth_sequences
    from affectlens.temporal.learned import LearnedSmoother
    from affectlens.training.temporal import load_temporal_config, train_temporal

    logging.basicConfig(level=logging.WARNING)
    base = load_temporal_config(args.config)
    run = Path(base.out_dir)
    val = load(run, "val")
    clips = {p.stem.removeprefix("clip-"): json.loads(p.read_text()) for p in sorted(run.glob("clip-*.json"))}
    rows = {}

    class Then(TrackSmoother):
        """One smoother's output through another (the learned model, then an HMM)."""

        def __init__(self, first, second):
            super().__init__()
            self.first, self.second = first, second

        def update(self, faces):
            return self.second.update(self.first.update(faces))

        def reset(self):
            self.first.reset(), self.second.reset()

        def forget(self, ids):
            self.first.forget(ids), self.second.forget(ids)

    def measure(name, make, labels):
        sm = smooth_sequences(make, val["probs"], val["feats"], val["t_ms"], labels)
        m = sequence_metrics(sm.argmax(-1), val["y"], val["t_ms"])
        m["clips"] = {c: clip_rows(tr, {name: (None, make)}, labels)[name] for c, tr in clips.items()}
        rows[name] = m

    for pen in args.penalties:
        out = Path(f"{base.out_dir}-sp{pen:g}") if pen != base.switch_penalty else run  # the config's own run
        out.mkdir(parents=True, exist_ok=True)
        for f in run.glob("seq-*.npz"):
            link = out / f.name
            if not link.exists():
                link.symlink_to(f.resolve())
        cfg = load_temporal_config(args.config, [f"out_dir={out}", f"switch_penalty={pen}"])
        if not (out / f"{cfg.name}.json").exists():
            train_temporal(cfg)
        spec = out / f"{cfg.name}.json"
        labels = tuple(json.loads(spec.read_text())["labels"])
        measure(f"learned, switch penalty {pen:g}", lambda spec=spec: LearnedSmoother(spec), labels)
        for hold in args.then_hmm:
            measure(f"learned, switch penalty {pen:g}, then HMM hold {hold:g} s",
                    lambda spec=spec, hold=hold: Then(LearnedSmoother(spec), HmmSmoother(hold_s=hold)), labels)
    measure("HMM hold 0.8 s", lambda: HmmSmoother(hold_s=0.8), labels)
    name = base.name
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path(f"benchmarks/results/{name}-sweep.json").write_text(json.dumps(
        {"config": args.config, "what": "validation sequences (PublicTest faces) and the real clips' tracks",
         "rows": rows, "cpu": "2-core AMD EPYC, AVX2 (shared)",
         "command": "python benchmarks/sweep_temporal.py " + " ".join(sys.argv[1:])}, indent=2) + "\n")
    names = list(clips)
    print("| smoother | val accuracy | val switches/min | val latency ms (mean) | changes followed | "
          + " | ".join(f"{c} switches/min, lag ms" for c in names) + " |")
    print("|---" * (5 + len(names)) + "|")
    for k, m in rows.items():
        print(f"| {k} | {100 * m['accuracy']:.1f}% | {m['switches_per_min']:.1f} | {m['latency_ms_mean']:.0f} | "
              f"{100 * m['followed']:.0f}% | " + " | ".join(
                  f"{m['clips'][c]['switches_per_min']:.1f}, {m['clips'][c]['lag_ms']:.0f}" for c in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
