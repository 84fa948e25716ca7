"""Every shipped emotion model on the in-the-wild set, through the full pipeline; prints a
markdown table and writes JSON.

Usage:
    python benchmarks/bench_wild.py [--data ../shared/data] [--labels benchmarks/wild/labels.csv] \\
        [--models NAME ...] [--threads 2] [--out benchmarks/results/wild.json]

The set and how its labels were made: docs/wild-eval.md. Accuracy counts a face as right when
the argmax over all the model's labels equals the label (a face read as ``contempt`` by an
8-label model is wrong). Faces of one person in nearby frames are correlated: the per-person
mean accuracy weights each person once.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def table(rows: list[dict]) -> str:
    """Markdown: accuracy, per-person mean, recall per class, neutral read as sad/other."""
    classes = [c for c in rows[0]["per_class_recall"]] if rows else []
    head = ["model", "faces", "accuracy", "per-person mean", *[f"{c} recall" for c in classes],
            "neutral → sad", "missed"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        n_neutral = r["support"].get("neutral", 0)
        out.append("| " + " | ".join([
            f"`{r['model']}`", str(r["n_faces"]), f"{100 * r['accuracy']:.1f}%",
            f"{100 * r['person_mean_accuracy']:.1f}%",
            *[f"{100 * r['per_class_recall'][c]:.1f}%" for c in classes],
            f"{r['neutral_as_sad']} of {n_neutral} ({100 * (r['neutral_to_sad_rate'] or 0):.1f}%)",
            str(r["n_missed"])]) + " |")
    return "\n".join(out)


def read_as(r: dict) -> str:
    """The confusion matrix's non-empty rows in words: ``neutral (84) read as sad 53, neutral 13; ...``."""
    parts = []
    for name, row in zip(r["confusion_rows"], r["confusion"]):
        if sum(row):
            pairs = sorted(((v, c) for v, c in zip(row, r["confusion_cols"]) if v), reverse=True)
            parts.append(f"{name} ({sum(row)}) read as " + ", ".join(f"{c} {v}" for v, c in pairs))
    return "; ".join(parts)


def main(argv=None) -> int:
    from affectlens.models.registry import available_models
    from affectlens.wild import DEFAULT_LABELS_CSV, evaluate_wild

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="shared data folder (default ../shared/data beside the repo)")
    ap.add_argument("--labels", default=str(DEFAULT_LABELS_CSV))
    ap.add_argument("--models", nargs="*", default=None, help="default: every shipped model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/wild.json")
    args = ap.parse_args(argv)
    rows = []
    for name in args.models or available_models():
        t0 = time.perf_counter()
        r = evaluate_wild(name, args.labels, args.data, threads=args.threads)
        r["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(r)
        print(f"{name}: {100 * r['accuracy']:.1f}% ({r['seconds']} s)", flush=True)
    print()
    print(table(rows))
    print()
    for r in rows:
        print(f"- `{r['model']}`: {read_as(r)}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "machine": platform.processor() or platform.machine(),
                               "labels": str(Path(args.labels).name), "models": rows}, indent=1) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
