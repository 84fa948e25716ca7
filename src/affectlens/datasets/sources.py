"""What ``affectlens dataset prepare`` reads: labelled inputs found in a source.

A source is a class-folder tree (``label/*.jpg``, optionally under ``train``/``test``
folders), a CSV (``path,label[,subject]``), videos with an interval file
(``video,start_s,end_s,label[,subject]``), or one of the public data set layouts in
:mod:`affectlens.datasets.layouts`. Each becomes a list of :class:`SourceItem`; labels go
through :func:`affectlens.labels.canonical_label` (``anger`` → ``angry``). Nothing is decoded
here, so finding the items of a large data set is quick.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectlens.errors import DatasetError
from affectlens.imageio import IMAGE_SUFFIXES
from affectlens.labels import canonical_label

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
SPLIT_FOLDERS = frozenset({"train", "training", "val", "valid", "validation", "test", "publictest",
                           "privatetest"})
#: File names of CK+ (``S010_004_00000017.png``): the subject is the ``S###`` prefix.
CKPLUS_SUBJECT = re.compile(r"^(S\d{3})_")


@dataclass(frozen=True)
class SourceItem:
    """One labelled input.

    Attributes:
        label: our label name (after synonyms).
        subject: who the face belongs to; faces of one subject never straddle a split.
        source: what to report (file path, ``video.mp4@12.50s``, ``fer2013.csv:row 17``).
        path: image or video file (``None`` when ``image`` holds the pixels).
        image: pixels already in memory, ``(h, w)`` or ``(h, w, 3)`` uint8 (e.g. a CSV row).
        start_s / end_s: for videos, the labelled interval.
        is_crop: ``True`` the input is already a face crop, ``False`` detect, ``None`` decide
            by size.
        box_xyxy: a face box the data set provides (the detected face closest to it is used).
    """

    label: str
    subject: str
    source: str
    path: Path | None = None
    image: np.ndarray | None = None
    start_s: float | None = None
    end_s: float | None = None
    is_crop: bool | None = None
    box_xyxy: tuple[float, float, float, float] | None = None


def subject_of(path: Path, pattern: re.Pattern | None = None) -> str:
    """The subject of a file: the first group of ``pattern`` (default: the CK+ ``S###`` prefix)
    when it matches its name, else the file itself (each photo its own subject)."""
    m = (pattern or CKPLUS_SUBJECT).search(path.name)
    return m.group(1) if m else path.stem


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folder_items(root: Path, pattern: re.Pattern | None = None, is_crop: bool | None = None) -> list[SourceItem]:
    """Items of ``root/<label>/**/*`` (or ``root/<split>/<label>/**/*``, splits merged: the
    preparation makes its own subject-disjoint splits later).

    Raises:
        DatasetError: no class folders, or a class folder without images (names it).
    """
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs and all(p.name.lower() in SPLIT_FOLDERS for p in subdirs):
        class_dirs = [c for s in subdirs for c in sorted(s.iterdir()) if c.is_dir() and not c.name.startswith(".")]
    else:
        class_dirs = subdirs
    if not class_dirs:
        raise DatasetError(f"{root}: no class folders (expected {root}/<label>/*.jpg, e.g. {root}/happy/1.jpg)")
    items = []
    for folder in class_dirs:
        files = _images_in(folder)
        if not files:
            raise DatasetError(f"{folder}: class folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                               "add images or remove the folder")
        label = canonical_label(folder.name)
        items += [SourceItem(label, subject_of(f, pattern), str(f), path=f, is_crop=is_crop) for f in files]
    return items


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            return [c.strip().lower() for c in (reader.fieldnames or [])], rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: unreadable CSV ({exc})") from None


def _column(fields: list[str], path: Path, *names: str, required: bool = True) -> str | None:
    for n in names:
        if n in fields:
            return n
    if required:
        raise DatasetError(f"{path}: expected a column {' or '.join(repr(n) for n in names)}; "
                           f"the header has {fields}")
    return None


def csv_items(path: Path, pattern: re.Pattern | None = None, is_crop: bool | None = None) -> list[SourceItem]:
    """Items of a ``path,label[,subject]`` CSV (header row; paths relative to the CSV's folder).
    Files it names that do not exist are kept as items and reported missing by the preparation.

    Raises:
        DatasetError: unreadable CSV, missing columns, no rows.
    """
    fields, rows = _read_csv(path)
    pcol = _column(fields, path, "path", "file", "image", "filename")
    lcol = _column(fields, path, "label", "emotion", "expression", "class")
    scol = _column(fields, path, "subject", "person", "participant", required=False)
    if not rows:
        raise DatasetError(f"{path}: the labels file has no rows")
    items = []
    for i, raw in enumerate(rows, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        f = Path(row[pcol])
        f = f if f.is_absolute() else path.parent / f
        subject = row.get(scol) if scol else ""
        items.append(SourceItem(canonical_label(row[lcol]), subject or subject_of(f, pattern),
                                f"{path.name}:{i} {f}", path=f, is_crop=is_crop))
    return items


def video_items(path: Path) -> list[SourceItem]:
    """Items of a ``video,start_s,end_s,label[,subject]`` interval file (one item per interval;
    the preparation samples its frames). The subject defaults to the video file.

    Raises:
        DatasetError: unreadable file, missing columns, an interval that is not a number or
            ends before it starts (names the line).
    """
    fields, rows = _read_csv(path)
    vcol = _column(fields, path, "video", "path", "file")
    lcol = _column(fields, path, "label", "emotion")
    scol = _column(fields, path, "subject", "person", required=False)
    s_col = _column(fields, path, "start_s", "start")
    e_col = _column(fields, path, "end_s", "end")
    if not rows:
        raise DatasetError(f"{path}: the interval file has no rows")
    items = []
    for i, raw in enumerate(rows, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        try:
            start, end = float(row[s_col]), float(row[e_col])
        except ValueError:
            raise DatasetError(f"{path}:{i}: start_s/end_s must be seconds, got {row[s_col]!r}, {row[e_col]!r}") from None
        if end <= start:
            raise DatasetError(f"{path}:{i}: the interval ends ({end}) before it starts ({start})")
        f = Path(row[vcol])
        f = f if f.is_absolute() else path.parent / f
        items.append(SourceItem(canonical_label(row[lcol]), (row.get(scol) if scol else "") or f.stem,
                                f"{path.name}:{i} {f}", path=f, start_s=start, end_s=end))
    return items


def find_items(src: str | Path, layout: str = "auto", subject_pattern: str | None = None,
               crops: bool = False) -> list[SourceItem]:
    """The labelled inputs of ``src``.

    Args:
        src: a class-folder tree, a ``.csv`` of ``path,label[,subject]``, an interval ``.csv``
            with ``video,start_s,end_s,label`` columns, or a public data set's folder/file.
        layout: ``"auto"`` (from the files), or a public layout name (see
            :data:`affectlens.datasets.layouts.LAYOUTS`).
        subject_pattern: a regular expression whose first group is the subject in a file
            name (default: the CK+ ``S###`` prefix; else each file is its own subject).
        crops: the inputs are already face crops (no detection).

    Raises:
        DatasetError: source missing, unknown layout, malformed files.
    """
    from affectlens.datasets import layouts

    p = Path(src)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    pattern = re.compile(subject_pattern) if subject_pattern else None
    is_crop = True if crops else None
    if layout == "auto":
        layout = layouts.detect_layout(p)
    if layout in layouts.LAYOUTS:
        return layouts.LAYOUTS[layout](p)
    if layout == "videos" or (layout == "csv" and p.suffix.lower() == ".csv" and "start_s" in _read_csv(p)[0]):
        return video_items(p)
    if layout == "csv":
        return csv_items(p, pattern, is_crop)
    if layout == "folder":
        return class_folder_items(p, pattern, is_crop)
    raise DatasetError(f"{p}: unknown layout {layout!r}; expected auto, folder, csv, videos or one of "
                       f"{', '.join(sorted(layouts.LAYOUTS))}")
