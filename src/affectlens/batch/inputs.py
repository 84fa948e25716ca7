"""Batch inputs: files, folders, globs and manifest CSVs expanded into :class:`BatchItem` s.

A manifest CSV has a header with at least ``path``; ``subject``, ``session`` and
``consent_ref`` are optional and copied into every output row. Relative paths in it are read
from the CSV's own folder.

Example:
    >>> items, problems = collect_items(["recordings/", "extra/*.mp4", "study.csv"])
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from affectlens.imageio import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".ts", ".mts", ".3gp", ".ogv"})
MANIFEST_COLUMNS = ("path", "subject", "session", "consent_ref")
_GLOB_CHARS = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch.

    Attributes:
        path: absolute path of the file (symlinks kept, not resolved).
        kind: ``"image"`` or ``"video"`` (by suffix; unknown suffixes are tried as video).
        item_id: stable, file-system-safe name: the file stem and 10 hex digits of the path's hash.
        subject / session / consent_ref: from a manifest CSV ("" when not given).
    """

    path: str
    kind: str
    item_id: str
    subject: str = ""
    session: str = ""
    consent_ref: str = ""


def item_kind(path: str | Path) -> str:
    """``"image"`` for image suffixes, else ``"video"``."""
    return "image" if Path(path).suffix.lower() in IMAGE_SUFFIXES else "video"


def make_item(path: str | Path, subject: str = "", session: str = "", consent_ref: str = "") -> BatchItem:
    """A :class:`BatchItem` for ``path`` (made absolute; its id depends on that absolute path only)."""
    abspath = os.path.abspath(os.fspath(path))
    stem = _UNSAFE.sub("_", Path(abspath).stem)[:60].strip("._") or "item"
    digest = hashlib.sha1(abspath.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return BatchItem(abspath, item_kind(abspath), f"{stem}-{digest}", subject, session, consent_ref)


def _media_in_folder(folder: Path) -> list[Path]:
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)


def read_manifest_csv(path: str | Path) -> tuple[list[BatchItem], list[tuple[str, str]]]:
    """Items of a manifest CSV (``path[,subject,session,consent_ref]``) and its problems.

    Raises:
        ValueError: the CSV has no ``path`` column (names the file and the expected header).
    """
    path = Path(path)
    base = path.parent
    items, problems = [], []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
            raise ValueError(f"{path}: expected a CSV header with a 'path' column "
                             f"(path[,subject,session,consent_ref]), got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            raw = row.get("path", "")
            if not raw:
                problems.append((f"{path}:{line}", f"{path}:{line}: empty path"))
                continue
            p = Path(raw) if Path(raw).is_absolute() else base / raw
            items.append(make_item(p, row.get("subject", ""), row.get("session", ""), row.get("consent_ref", "")))
    return items, problems


def collect_items(inputs) -> tuple[list[BatchItem], list[tuple[str, str]]]:
    """Expand files, folders (recursive, known image/video suffixes), globs and manifest CSVs.

    A file given by name is kept whatever its suffix (it is reported if it cannot be read);
    the same path listed twice is kept once (the first listing's subject/session win).

    Returns:
        ``(items, problems)``: items in input order (sorted within a folder or glob), and
        ``(input, message)`` for inputs that match nothing.

    Raises:
        ValueError: a manifest CSV without a ``path`` column.
    """
    items: list[BatchItem] = []
    problems: list[tuple[str, str]] = []
    for raw in map(str, inputs):
        p = Path(raw)
        if p.is_file() and p.suffix.lower() == ".csv":
            found, bad = read_manifest_csv(p)
            items.extend(found)
            problems.extend(bad)
        elif p.is_dir():
            media = _media_in_folder(p)
            if not media:
                problems.append((raw, f"{p}: folder holds no image or video files"))
            items.extend(make_item(f) for f in media)
        elif p.exists() or (not _GLOB_CHARS.search(raw) and p.is_symlink()):
            items.append(make_item(p))
        elif _GLOB_CHARS.search(raw):
            matched = sorted(Path(m) for m in glob.glob(raw, recursive=True))
            files = [m for m in matched if m.is_file()]
            if not files:
                problems.append((raw, f"{raw}: the pattern matches no file"))
            items.extend(make_item(f) for f in files)
        else:
            items.append(make_item(p))  # reported as missing by the worker, like any unreadable item
    seen: set[str] = set()
    unique = []
    for it in items:
        if it.path not in seen:
            seen.add(it.path)
            unique.append(it)
    return unique, problems
