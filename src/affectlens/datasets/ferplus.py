"""FER+ (Microsoft's 10-annotator relabelling of FER-2013), joined row by row to FER-2013.

``fer2013new.csv`` has one row per row of ``fer2013.csv`` (same order) with votes over
neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF. The FER+
"majority" protocol (as in Microsoft's reference code): drop single votes as outliers; the
label is the emotion with more than half of the remaining votes; rows whose label would be
unknown/NF, that have no majority, or that FER+ dropped (empty image name) are excluded.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectlens.datasets.fer2013 import load_fer2013, resolve_fer2013_csv
from affectlens.errors import DatasetError
from affectlens.labels import FERPLUS_COLUMNS, FERPLUS_TO_EMOTION

#: FER+ emotion classes in our vocabulary, in FER+ column order (8 classes, with contempt).
FERPLUS_EMOTIONS: tuple[str, ...] = tuple(FERPLUS_TO_EMOTION[c] for c in FERPLUS_COLUMNS[:8])


@dataclass(frozen=True)
class FerPlusSplit:
    """One split of FER+ after the majority protocol.

    Attributes:
        images: ``(n, 48, 48)`` uint8 faces.
        labels: ``(n,)`` indices into :data:`FERPLUS_EMOTIONS`.
        votes: ``(n, 8)`` float32 vote counts over :data:`FERPLUS_EMOTIONS` (unknown/NF dropped).
        rows: ``(n,)`` row numbers in ``fer2013.csv``.
    """

    images: np.ndarray
    labels: np.ndarray
    votes: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _read_votes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    votes, kept = [], []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            if [h.strip() for h in header[2:12]] != list(FERPLUS_COLUMNS):
                raise DatasetError(f"{path}: unexpected header {header!r}")
            for row in reader:
                kept.append(bool(row[1].strip()))
                votes.append([float(v or 0) for v in row[2:12]])
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file (FER+ votes, fer2013new.csv)") from None
    return np.asarray(votes, np.float32), np.asarray(kept)


def majority_labels(votes10: np.ndarray) -> np.ndarray:
    """FER+ majority labels (index into :data:`FERPLUS_EMOTIONS`, ``-1`` = excluded)."""
    v = np.where(votes10 >= 2, votes10, 0)  # single votes are outliers
    total = v.sum(1)
    top = v.argmax(1)
    ok = (v.max(1) > 0.5 * total) & (top < 8) & (total > 0)
    return np.where(ok, top, -1)


def load_ferplus(path: str | os.PathLike, split: str = "PrivateTest") -> FerPlusSplit:
    """FER+ images, majority labels and votes of one split (``Training``, ``PublicTest`` = FER+
    Valid, ``PrivateTest`` = FER+ Test).

    Raises:
        DatasetError: files missing or malformed.
    """
    csv_path = resolve_fer2013_csv(path)
    votes_path = csv_path.parent / "fer2013new.csv"
    votes10, kept = _read_votes(votes_path)
    fer = load_fer2013(csv_path, (split,))[split]
    if votes10.shape[0] <= int(fer.rows.max()):
        raise DatasetError(f"{votes_path}: {votes10.shape[0]} rows, fewer than fer2013.csv")
    v = votes10[fer.rows]
    labels = majority_labels(v)
    keep = (labels >= 0) & kept[fer.rows]
    return FerPlusSplit(fer.images[keep], labels[keep].astype(np.int64), v[keep, :8], fer.rows[keep])
