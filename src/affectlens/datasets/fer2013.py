"""FER-2013 reader: the canonical ``emotion,pixels,Usage`` CSV (optionally gzipped).

Parsing 35,887 rows of text takes a few seconds, so the decoded arrays are cached as
``.npz`` in the user cache folder (``$AFFECTLENS_CACHE_DIR`` or ``~/.cache/affectlens``),
keyed by the source file's size and modification time. The source is never written.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectlens.errors import DatasetError
from affectlens.labels import EMOTIONS, fer2013_to_canonical

logger = logging.getLogger(__name__)

FER2013_SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
_SIDE = 48


@dataclass(frozen=True)
class FerSplit:
    """One split of FER-2013.

    Attributes:
        images: ``(n, 48, 48)`` uint8 grayscale faces.
        labels: ``(n,)`` int64 indices into :data:`affectlens.labels.EMOTIONS`.
        rows: ``(n,)`` int64 row numbers in the source CSV (0-based, header excluded),
            which index the FER+ votes file row for row.
    """

    images: np.ndarray
    labels: np.ndarray
    rows: np.ndarray

    @property
    def label_names(self) -> tuple[str, ...]:
        return EMOTIONS

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def cache_dir() -> Path:
    """The folder AffectLens caches derived data in (created on demand)."""
    root = os.environ.get("AFFECTLENS_CACHE_DIR") or Path.home() / ".cache" / "affectlens"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_fer2013_csv(path: str | os.PathLike) -> Path:
    """Accept the CSV itself or a folder holding ``fer2013.csv[.gz]``.

    Raises:
        DatasetError: nothing usable at ``path``.
    """
    p = Path(path)
    if p.is_dir():
        for name in ("fer2013.csv.gz", "fer2013.csv"):
            if (p / name).is_file():
                return p / name
        raise DatasetError(f"{p}: no fer2013.csv or fer2013.csv.gz in this folder")
    if not p.is_file():
        raise DatasetError(f"{p}: no such file or folder (expected FER-2013's fer2013.csv[.gz])")
    return p


def _parse(csv_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    opener = gzip.open if csv_path.suffix == ".gz" else open
    fer_to_ours = np.asarray(fer2013_to_canonical(), dtype=np.int64)
    images, labels, usages = [], [], []
    with opener(csv_path, "rb") as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["emotion", "pixels", "Usage"]:
            raise DatasetError(f"{csv_path}: expected header 'emotion,pixels,Usage', got {header!r}")
        for line_no, row in enumerate(reader, start=2):
            try:
                pixels = np.array(row[1].split(), dtype=np.uint8)
                label = int(row[0])
            except (IndexError, ValueError) as exc:
                raise DatasetError(f"{csv_path}:{line_no}: unreadable row ({exc})") from exc
            if pixels.size != _SIDE * _SIDE or not 0 <= label < len(fer_to_ours):
                raise DatasetError(
                    f"{csv_path}:{line_no}: expected 2304 pixels and a label 0..6, "
                    f"got {pixels.size} pixels and label {label}"
                )
            images.append(pixels.reshape(_SIDE, _SIDE))
            labels.append(fer_to_ours[label])
            usages.append(FER2013_SPLITS.index(row[2].strip()) if row[2].strip() in FER2013_SPLITS else -1)
    return np.stack(images), np.asarray(labels, np.int64), np.asarray(usages, np.int8)


def load_fer2013(path: str | os.PathLike, splits: tuple[str, ...] = FER2013_SPLITS) -> dict[str, FerSplit]:
    """Load FER-2013 splits.

    Args:
        path: ``fer2013.csv[.gz]`` or the folder that holds it.
        splits: which of ``Training``, ``PublicTest``, ``PrivateTest`` to return.

    Returns:
        ``{split_name: FerSplit}`` in the order asked.

    Raises:
        DatasetError: missing file, malformed rows, or an unknown split name.
    """
    unknown = [s for s in splits if s not in FER2013_SPLITS]
    if unknown:
        raise DatasetError(f"unknown FER-2013 split(s) {unknown}; expected some of {list(FER2013_SPLITS)}")
    csv_path = resolve_fer2013_csv(path)
    stat = csv_path.stat()
    key = hashlib.sha1(f"{csv_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir() / f"fer2013-{key}.npz"
    if cached.is_file():
        with np.load(cached) as npz:
            images, labels, usages = npz["images"], npz["labels"], npz["usages"]
    else:
        logger.info("parsing %s (cached afterwards in %s)", csv_path, cached)
        images, labels, usages = _parse(csv_path)
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels, usages=usages)
        tmp.replace(cached)
    rows = np.arange(labels.shape[0], dtype=np.int64)
    out = {}
    for name in splits:
        mask = usages == FER2013_SPLITS.index(name)
        out[name] = FerSplit(images=images[mask], labels=labels[mask], rows=rows[mask])
    return out
