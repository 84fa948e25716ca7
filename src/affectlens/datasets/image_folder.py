"""Face crops in class folders, the layout most labelling tools export.

Two layouts are read:

* split folders: ``root/<split>/<label>/*.jpg`` where ``<split>`` is ``Training`` (or
  ``train``), ``PublicTest`` (``val``, ``valid``, ``validation``) and ``PrivateTest``
  (``test``); a missing test split is fine, a missing validation split is carved out of
  Training;
* one folder per label: ``root/<label>/*.jpg``, split deterministically by a hash of each
  file's relative path (10% validation, 10% test by default), so adding files never moves
  the others between splits.

Each image is read with :func:`affectlens.imageio.load_image` (EXIF orientation, alpha,
16-bit and grey handled), converted to grey and resized to ``size`` x ``size`` (area
interpolation). Images are taken to be tight face crops, as FER-2013's are; whole photos
must be cropped to the face first (no detection is run here). Unreadable files are skipped and reported, never
fatal; an empty label folder or no images at all is a :class:`DatasetError`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from affectlens.errors import AffectLensError, DatasetError
from affectlens.labels import EMOTIONS

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
SPLIT_ALIASES: dict[str, str] = {
    "training": "Training", "train": "Training",
    "publictest": "PublicTest", "val": "PublicTest", "valid": "PublicTest", "validation": "PublicTest",
    "privatetest": "PrivateTest", "test": "PrivateTest",
}


@dataclass(frozen=True)
class FolderSplit:
    """One split: ``images`` ``(n, size, size)`` uint8, ``labels`` ``(n,)`` int64 indices into
    the data set's labels, ``paths`` the source files (relative to the root)."""

    images: np.ndarray
    labels: np.ndarray
    paths: tuple[str, ...]


@dataclass(frozen=True)
class FolderDataset:
    """Splits ``Training`` / ``PublicTest`` / ``PrivateTest`` (the last may be empty), label
    names in output order, and the files that could not be read as ``(path, reason)``."""

    labels: tuple[str, ...]
    splits: dict[str, FolderSplit]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def order_labels(names) -> tuple[str, ...]:
    """Label folders in output order: the Ekman order of :data:`EMOTIONS` (then any others
    alphabetically) when the names are emotions, else alphabetical."""
    names = set(names)
    known = [e for e in EMOTIONS if e in names]
    return tuple(known + sorted(names - set(known)))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _bucket(rel: str) -> float:
    """A stable number in [0, 1) from a relative path."""
    return int.from_bytes(hashlib.sha1(rel.encode()).digest()[:8], "big") / 2 ** 64


def _read(path: Path, size: int) -> np.ndarray:
    from affectlens.imageio import load_image

    bgr = load_image(path)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    interp = cv2.INTER_AREA if min(gray.shape) >= size else cv2.INTER_LINEAR
    return cv2.resize(gray, (size, size), interpolation=interp)


def load_image_folder(root: str | Path, size: int = 48, labels: tuple[str, ...] | None = None,
                      val_fraction: float = 0.1, test_fraction: float = 0.1) -> FolderDataset:
    """Read a class-folder data set (see the module docstring for the layouts).

    Args:
        root: the data set folder.
        size: output side in pixels.
        labels: output label order; default: :func:`order_labels` of the folder names. Folders
            not listed are an error (a typo would otherwise silently drop a class).
        val_fraction / test_fraction: hash split of a flat layout (and of Training, for the
            validation part, when there is no validation folder).

    Raises:
        DatasetError: ``root`` missing, no label folders, a label folder without readable
            images, or labels that do not match the folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder data set not found (expected a folder of class folders)")
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise DatasetError(f"{root}: val_fraction {val_fraction} and test_fraction {test_fraction} must be in "
                           "[0, 1) and sum to less than 1")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = {SPLIT_ALIASES[p.name.lower()]: p for p in subdirs if p.name.lower() in SPLIT_ALIASES}
    # (split, label name, file) for every image
    entries: list[tuple[str, str, Path]] = []
    if split_dirs:
        if "Training" not in split_dirs:
            raise DatasetError(f"{root}: split folders {sorted(p.name for p in split_dirs.values())} but no "
                               "'train' / 'Training' folder")
        for split, folder in split_dirs.items():
            for cls in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                for f in _images_in(cls):
                    rel = str(f.relative_to(root))
                    if split == "Training" and "PublicTest" not in split_dirs and _bucket(rel) < val_fraction:
                        entries.append(("PublicTest", cls.name, f))
                    else:
                        entries.append((split, cls.name, f))
    else:
        for cls in subdirs:
            for f in _images_in(cls):
                b = _bucket(str(f.relative_to(root)))
                split = "PublicTest" if b < val_fraction else "PrivateTest" if b < val_fraction + test_fraction \
                    else "Training"
                entries.append((split, cls.name, f))
    found = {name for _, name, _ in entries}
    if not found:
        raise DatasetError(f"{root}: no images in class folders (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    labels = tuple(labels) if labels else order_labels(found)
    unknown = found - set(labels)
    if unknown:
        raise DatasetError(f"{root}: label folders {sorted(unknown)} are not among the labels {list(labels)}")
    index = {name: i for i, name in enumerate(labels)}
    per_split: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in ("Training", "PublicTest", "PrivateTest")}
    skipped: list[tuple[str, str]] = []
    readable = {name: 0 for name in found}
    for split, name, f in entries:
        try:
            img = _read(f, size)
        except (AffectLensError, OSError, cv2.error) as exc:
            skipped.append((str(f), str(exc)))
            continue
        readable[name] += 1
        imgs, labs, paths = per_split[split]
        imgs.append(img)
        labs.append(index[name])
        paths.append(str(f.relative_to(root)))
    empty = sorted(name for name, n in readable.items() if n == 0)
    if empty:
        raise DatasetError(f"{root}: no readable images for label(s) {empty}")
    if skipped:
        logger.warning("%s: skipped %d unreadable image(s), e.g. %s: %s", root, len(skipped), *skipped[0])
    splits = {s: FolderSplit(np.stack(i) if i else np.zeros((0, size, size), np.uint8),
                             np.asarray(lab, np.int64), tuple(p)) for s, (i, lab, p) in per_split.items()}
    if len(splits["Training"].labels) == 0 or len(splits["PublicTest"].labels) == 0:
        raise DatasetError(f"{root}: need images in both Training and validation (got "
                           f"{len(splits['Training'].labels)} and {len(splits['PublicTest'].labels)})")
    return FolderDataset(labels, splits, skipped)
