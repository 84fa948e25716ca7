"""Quick probe of candidate emotion models for training experiments (issue 20): the aligned
crops of labeller A's in-the-wild faces, cached once, then log-probability averages of exported
members on those crops, CK+ apex frames (6 classes, zero-shot) and FER+ Valid/test.

The crops come from the same detector, matching (IoU >= 0.5) and alignment as
:func:`affectlens.wild.evaluate_wild`; they are written OUTSIDE the repository (derived from the
shared data, which never enters it). Mirror TTA only (no zoom views): use ``affectlens evaluate
--wild`` and ``benchmarks/bench_models.py`` for the figures of a finished model.

Usage:
    python tools/wild_probe.py cache --out /tmp/wild-crops.npz
    python tools/wild_probe.py mix --crops /tmp/wild-crops.npz --models ferplus-vgg48s,runs/x/x.onnx \\
        --weights 0,0.5,1

``--weights`` lists the total weight of the models after the first (shared equally); the first
model gets the rest. The wild sets are test sets: do not select models on them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def cache(out: str, data_root: str | None) -> None:
    """Detect, match and align every face of labels_a.csv; save crops, labels and the agreed flag."""
    from affectlens.recognizer import EmotionRecognizer
    from affectlens.wild import load_labels, match_faces, read_frames, resolve_source

    rec = EmotionRecognizer(model="ferplus-vgg48s", threads=1)
    faces = load_labels(ROOT / "benchmarks/wild/labels_a.csv")
    agreed = {(f.source, f.frame_index, tuple(f.xyxy)) for f in load_labels(ROOT / "benchmarks/wild/labels.csv")}
    by_source: dict[str, list[int]] = {}
    for k, f in enumerate(faces):
        by_source.setdefault(f.source, []).append(k)
    crops = {}
    for source, rows in by_source.items():
        path = resolve_source(source, data_root)
        if path is None:
            continue
        for fi, (_, img) in read_frames(path, {faces[k].frame_index for k in rows}).items():
            here = [k for k in rows if faces[k].frame_index == fi]
            found = rec.detector.detect(img)
            if not len(found):
                continue
            aligned = rec.classifier.align(img, found.landmarks)
            for i, j in match_faces(np.array([faces[k].xyxy for k in here], np.float64), found.xyxy).items():
                crops[here[i]] = aligned[j]
    idx = sorted(crops)
    np.savez(out, crops=np.stack([crops[k] for k in idx]), label=np.array([faces[k].label for k in idx]),
             agreed=np.array([(faces[k].source, faces[k].frame_index, tuple(faces[k].xyxy)) in agreed for k in idx]))
    print(f"{len(idx)} of {len(faces)} labelled faces matched; wrote {out}")


def mix(crops_npz: str, models: list[str], weights: list[float], data_root: str) -> None:
    """Print wild (A's set, agreed set), CK+6 and FER+ Valid/test accuracy for each weight."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_models import load_ckplus6

    from affectlens.classifier import EmotionClassifier
    from affectlens.training.data import load_training_data

    data_root = Path(data_root)
    z = np.load(crops_npz)
    ck = load_ckplus6(data_root / "ckplus48")
    data = load_training_data("ferplus", str(data_root / "fer2013"))
    sets = {"wild": z["crops"], "ck": ck[0], "pub": data.splits["PublicTest"].images,
            "test": data.splits["PrivateTest"].images}
    logp, labels = {}, None
    for m in models:
        clf = EmotionClassifier(m, threads=1, batch_size=128)
        labels = np.array(clf.labels)
        logp[m] = {k: np.log(np.clip(clf.classify_crops(v), 1e-8, 1)) for k, v in sets.items()}
    y, agreed = z["label"], z["agreed"]
    neutral = y == "neutral"
    for w in weights:
        ws = [1 - w] + [w / max(1, len(models) - 1)] * (len(models) - 1)
        avg = {k: sum(wi * logp[m][k] for wi, m in zip(ws, models)) for k in sets}
        pw, pc = labels[avg["wild"].argmax(1)], labels[avg["ck"].argmax(1)]
        print(f"weight {w:.2f}: wild A {100 * (pw == y).mean():.1f}% (neutral->sad {(pw[neutral] == 'sad').sum()}"
              f"/{neutral.sum()}), agreed {100 * (pw[agreed] == y[agreed]).mean():.1f}% | CK+6 "
              f"{100 * (pc == ck[1]).mean():.2f}% | FER+ Valid "
              f"{100 * (avg['pub'].argmax(1) == data.splits['PublicTest'].labels).mean():.2f}% test "
              f"{100 * (avg['test'].argmax(1) == data.splits['PrivateTest'].labels).mean():.2f}%", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache")
    c.add_argument("--out", required=True)
    c.add_argument("--data", default=None, help="shared data folder (default ../shared/data)")
    m = sub.add_parser("mix")
    m.add_argument("--crops", required=True)
    m.add_argument("--models", required=True, help="comma-separated model names or .onnx paths")
    m.add_argument("--weights", default="0", help="comma-separated weights of the models after the first")
    m.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args(argv)
    if args.cmd == "cache":
        cache(args.out, args.data)
    else:
        mix(args.crops, args.models.split(","), [float(w) for w in args.weights.split(",")], args.data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
