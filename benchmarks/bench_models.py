"""Accuracy against throughput for every shipped emotion model (and any extra candidates);
prints a table and writes JSON.

Usage:
    python benchmarks/bench_models.py [--threads 2] [--extra runs/x/x.onnx ...] \\
        [--out benchmarks/results/models.json]

Throughput is aligned faces per second through :class:`affectlens.classifier.EmotionClassifier`
(the models fold in their mirror TTA) at batch 1 and 32, all models measured in one run, so
the ratios between them are what to read. Accuracy is measured in the same run, on this CPU
(never copied from the specs): FER-2013 PrivateTest for every model with the 7 FER-2013
labels, FER+ test (majority vote) for every model, CK+ apex frames zero-shot (6 shared
classes, argmax over all the model's labels) when ``ckplus48`` is found, and each int8
file's top-1 agreement with its fp32 model. The JSON names the CPU, its ISA flags and int8 path.
"""

from __future__ import annotations

import argparse
import json
import os
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


CKPLUS_TO_OURS = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
                  "sadness": "sad", "surprise": "surprise"}


def load_ckplus6(root: Path):
    """CK+ apex crops of the 6 classes we share with it (contempt left out): ``(images, labels)``."""
    import cv2

    images, labels = [], []
    for folder, label in CKPLUS_TO_OURS.items():
        for p in sorted((root / folder).glob("*.png")):
            images.append(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))
            labels.append(label)
    return (np.stack(images), np.array(labels)) if images else (None, None)


def accuracy_rows(clf, data: Path, ck) -> tuple[dict, dict]:
    """``(figures, argmax per test set)`` for one model, measured now."""
    from affectlens.evaluate import evaluate_fer2013, evaluate_ferplus
    from affectlens.labels import EMOTIONS

    out, tops = {}, {}
    if set(EMOTIONS) <= set(clf.labels):
        r = evaluate_fer2013(clf, data, "PrivateTest")
        out["fer2013_private_acc"], out["fer2013_macro_f1"] = r["accuracy"], r["macro_f1"]
        tops["fer2013"] = r["_probs"].argmax(1)
    r = evaluate_ferplus(clf, data, "PrivateTest")
    out["ferplus_test_acc"], out["ferplus_classes"] = r["accuracy"], len(r["labels"])
    tops["ferplus"] = r["_probs"].argmax(1)
    if ck[0] is not None:
        pred = np.array(clf.labels)[clf.classify_crops(ck[0]).argmax(1)]
        out["ckplus6_zero_shot_acc"] = float((pred == ck[1]).mean())
        tops["ckplus"] = pred
    return out, tops


def main(argv=None) -> int:
    from affectlens.classifier import EmotionClassifier
    from affectlens.cpu import cpu_info
    from affectlens.models.registry import available_models, select_variant

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.environ.get("AFFECTLENS_SHARED_DATA", "../shared/data"),
                    help="shared data folder (fer2013/, ckplus48/)")
    ap.add_argument("--models", nargs="*", default=None, help="shipped names (default: all)")
    ap.add_argument("--extra", nargs="*", default=[], help="more .onnx candidates (spec JSON beside)")
    ap.add_argument("--out", default="benchmarks/results/models.json")
    args = ap.parse_args(argv)
    data = Path(args.data)
    ck = load_ckplus6(data / "ckplus48") if (data / "ckplus48").is_dir() else (None, None)
    rows, tops = [], {}
    for ref in [*(args.models or available_models()), *args.extra]:
        clf = EmotionClassifier(ref, threads=args.threads, batch_size=32)
        figures, tops[clf.spec.name] = accuracy_rows(clf, data / "fer2013", ck)
        rows.append({
            "model": clf.spec.name, "file": os.path.relpath(clf.spec.model_path),
            "size_mb": round(Path(clf.spec.model_path).stat().st_size / 2 ** 20, 2), **figures,
            "faces_per_s_b1": round(faces_per_second(clf, 1), 1),
            "faces_per_s_b32": round(faces_per_second(clf, 32), 1),
        })
    for r in rows:
        ref = tops.get(r["model"].removesuffix("-int8")) if r["model"].endswith("-int8") else None
        if ref:
            mine = tops[r["model"]]
            r["fp32_agreement"] = {k: float((mine[k] == ref[k]).mean()) for k in mine if k in ref}
    base = next((r for r in rows if r["model"] == "fer-vgg48s"), rows[0])
    for r in rows:
        r["speed_vs_fer_vgg48s_b32"] = round(r["faces_per_s_b32"] / base["faces_per_s_b32"], 3)

    def pct(v):
        return f"{v:.2%}" if v is not None else "-"

    print(f"CPU: {cpu_info().describe()}; {args.threads} threads; default here: {select_variant()[0]}")
    print(f"{'model':<30}{'FER2013':>9}{'FER+':>9}{'CK+6':>9}{'agree':>9}{'f/s b1':>8}{'f/s b32':>8}{'x':>6}{'MB':>6}")
    for r in rows:
        agree = min(r["fp32_agreement"].values()) if r.get("fp32_agreement") else None
        print(f"{r['model']:<30}{pct(r.get('fer2013_private_acc')):>9}{pct(r.get('ferplus_test_acc')):>9}"
              f"{pct(r.get('ckplus6_zero_shot_acc')):>9}{pct(agree):>9}{r['faces_per_s_b1']:>8.0f}"
              f"{r['faces_per_s_b32']:>8.0f}{r['speed_vs_fer_vgg48s_b32']:>6.2f}{r['size_mb']:>6.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "cpu": cpu_info().to_dict(),
                               "date": time.strftime("%Y-%m-%d"), "default_here": select_variant()[0],
                               "models": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
