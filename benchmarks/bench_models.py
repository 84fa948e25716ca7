"""Accuracy against throughput for every shipped emotion model (and any extra candidates);
prints a table and writes JSON.

Usage:
    python benchmarks/bench_models.py [--threads 2] [--extra runs/x/x.onnx ...] \\
        [--out benchmarks/results/models.json]

Throughput is aligned faces per second through :class:`affectlens.classifier.EmotionClassifier`
(the models fold in their mirror TTA) at batch 1 and 32, all models measured in one run, so
the ratios between them are what to read. Accuracy is the figure each model's spec states
(PrivateTest, measured on the exported file; ``tests/test_evaluate.py`` holds the shipped
ones to it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np


def faces_per_second(clf, batch: int, min_seconds: float = 3.0) -> float:
    """Median-of-runs throughput of ``clf.classify_crops`` on ``batch`` random-texture crops."""
    h, w = clf.crop_size_hw
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (batch, h, w), dtype=np.uint8)
    clf.classify_crops(crops)  # warm-up
    times, t_end = [], time.perf_counter() + min_seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t0 = time.perf_counter()
        clf.classify_crops(crops)
        times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))


def main(argv=None) -> int:
    from affectlens.classifier import EmotionClassifier
    from affectlens.models.registry import available_models

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--extra", nargs="*", default=[], help="more .onnx candidates (spec JSON beside)")
    ap.add_argument("--out", default="benchmarks/results/models.json")
    args = ap.parse_args(argv)
    rows = []
    for ref in [*available_models(), *args.extra]:
        clf = EmotionClassifier(ref, threads=args.threads, batch_size=32)
        m = clf.spec.metrics
        fer = m.get("fer2013_private_test", {})
        ferplus = m.get("ferplus_private_test", {})
        rows.append({
            "model": clf.spec.name, "file": os.path.relpath(clf.spec.model_path),
            "size_mb": round(Path(clf.spec.model_path).stat().st_size / 2 ** 20, 2),
            "fer2013_private_acc": fer.get("accuracy"), "fer2013_macro_f1": fer.get("macro_f1"),
            "ferplus_test_acc": ferplus.get("accuracy"),
            "faces_per_s_b1": round(faces_per_second(clf, 1), 1),
            "faces_per_s_b32": round(faces_per_second(clf, 32), 1),
        })
    base = next((r for r in rows if r["model"] == "fer-vgg48s"), rows[0])
    for r in rows:
        r["speed_vs_fer_vgg48s_b32"] = round(r["faces_per_s_b32"] / base["faces_per_s_b32"], 3)
    print(f"{'model':<24}{'PrivateTest':>12}{'FER+':>8}{'f/s b1':>9}{'f/s b32':>9}{'x vgg48s':>10}{'MB':>7}")
    for r in rows:
        acc = f"{r['fer2013_private_acc']:.2%}" if r["fer2013_private_acc"] else "-"
        fp = f"{r['ferplus_test_acc']:.2%}" if r["ferplus_test_acc"] else "-"
        print(f"{r['model']:<24}{acc:>12}{fp:>8}{r['faces_per_s_b1']:>9.0f}{r['faces_per_s_b32']:>9.0f}"
              f"{r['speed_vs_fer_vgg48s_b32']:>10.2f}{r['size_mb']:>7.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "machine": platform.processor() or platform.machine(),
                               "models": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
