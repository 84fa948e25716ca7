"""Merge the by-eye labels of the wild candidates into ``benchmarks/wild/labels.csv``.

Inputs (outside the repository, written by ``tools/wild_candidates.py`` and the labellers):
``candidates.csv`` and ``labels_a.csv`` / ``labels_b.csv`` (``id,label`` with ``label`` an
emotion or ``excluded:<reason>``). With both labellers, only faces both labelled with the same
emotion are kept; the script prints the raw agreement and Cohen's kappa. Output rows hold the
source, frame, box and label only — no pixels.

Usage: python tools/wild_labels.py --crops /work/wild-crops [--out benchmarks/wild/labels.csv]
       python tools/wild_labels.py --crops /work/wild-crops --only-a --out benchmarks/wild/labels_a.csv
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path

from affectlens.labels import EMOTIONS

#: People of the crowd clip, grouped by eye from the crops (the tracker splits some people into
#: several tracks and once hands a track from one person to another). Keys: the candidate
#: tracks; ``_IDS`` overrides single crops. Used only to count distinct people.
_CROWD_PEOPLE = {"t1": "curly-haired woman", "t24": "curly-haired woman", "t2": "woman with scarf",
                 "t9": "woman with scarf", "t11": "woman with scarf", "t14": "woman with scarf",
                 "t12": "woman with scarf", "t15": "woman with scarf", "t16": "woman with scarf",
                 "t3": "red-haired youth", "t4": "older man", "t18": "older man", "t5": "boy",
                 "t7": "white-haired woman", "t17": "man with glasses", "t23": "man with glasses"}
_CROWD_BOY_IN_T4_FROM = 163  # t4 follows the older man up to f0143, then the boy (f0163 on)
#: The two webcam clips show the same man in the same room.
_SAME_PERSON = {"face_noface:t1": "webcam man", "single_face:t1": "webcam man"}


def read_labels(path: Path) -> dict[str, str]:
    """``{id: label}``; labels lower-cased, anything outside the 7 emotions counts as an exclusion."""
    out = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            label = r["label"].strip().lower().replace(" ", "")
            if label not in EMOTIONS and not label.startswith("excluded"):
                print(f"{path.name}: {r['id']}: {label!r} is not one of the 7 labels; counted as excluded")
                label = f"excluded:{label}"
            out[r["id"].strip()] = label
    return out


def person_of(row: dict) -> str:
    track = row["track"]
    if track in _SAME_PERSON:
        return _SAME_PERSON[track]
    stem, _, t = track.partition(":")
    if stem == "crowd_walking" and t in _CROWD_PEOPLE:
        if t == "t4" and int(row["id"][1:]) >= _CROWD_BOY_IN_T4_FROM:
            return "crowd_walking:boy"
        return f"crowd_walking:{_CROWD_PEOPLE[t]}"
    return track


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa of two raters' categorical labels."""
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    return (po - pe) / (1 - pe) if pe < 1 else 1.0


def coarse(label: str) -> str:
    return "excluded" if label.startswith("excluded") else label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=Path, required=True)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parents[1] / "benchmarks" / "wild" / "labels.csv")
    ap.add_argument("--only-a", action="store_true",
                    help="labeller A alone, ignoring labels_b.csv (the larger, single-labeller set)")
    args = ap.parse_args()
    with open(args.crops / "candidates.csv", newline="") as fh:
        cands = list(csv.DictReader(fh))
    la = read_labels(args.crops / "labels_a.csv")
    has_b = (args.crops / "labels_b.csv").exists() and not args.only_a
    lb = read_labels(args.crops / "labels_b.csv") if has_b else None
    for name, lab in (("a", la), ("b", lb)):
        if lab is None:
            continue
        print(f"labeller {name}: {len(lab)} of {len(cands)} labelled;",
              dict(Counter(v for v in lab.values()).most_common()))
    if lb is not None:
        both = [c["id"] for c in cands if c["id"] in la and c["id"] in lb]
        a8, b8 = [coarse(la[i]) for i in both], [coarse(lb[i]) for i in both]
        raw = sum(x == y for x, y in zip(a8, b8)) / len(both)
        print(f"all {len(both)} crops (7 emotions + excluded): agreement {raw:.3f}, kappa {cohen_kappa(a8, b8):.3f}")
        emo = [i for i in both if la[i] in EMOTIONS and lb[i] in EMOTIONS]
        a7, b7 = [la[i] for i in emo], [lb[i] for i in emo]
        print(f"{len(emo)} crops both gave an emotion: agreement {sum(x == y for x, y in zip(a7, b7)) / len(emo):.3f}, "
              f"kappa {cohen_kappa(a7, b7):.3f}")
        print("disagreements:", Counter((x, y) for x, y in zip(a7, b7) if x != y).most_common())
    rows = []
    for c in cands:
        label = la.get(c["id"], "")
        if label not in EMOTIONS:
            continue
        if lb is not None and lb.get(c["id"]) != label:
            continue
        rows.append({"source": c["source"], "frame_index": c["frame_index"], "timestamp_ms": c["timestamp_ms"],
                     "x1": c["x1"], "y1": c["y1"], "x2": c["x2"], "y2": c["y2"], "face_px": c["face_px"],
                     "label": label, "agreement": "a+b" if lb is not None else "a",
                     "track": c["track"], "person": person_of(c)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} faces -> {args.out}:", dict(Counter(r["label"] for r in rows)),
          f"{len({r['person'] for r in rows})} people, {len({r['track'] for r in rows})} tracks,",
          f"{len({r['source'] for r in rows})} sources")


if __name__ == "__main__":
    main()
