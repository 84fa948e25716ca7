"""Loaders for the layouts the public facial-expression data sets ship in.

Each turns a licensed copy, as distributed, into :class:`~affectlens.datasets.sources.SourceItem`
records for ``affectlens dataset prepare`` (then ``train`` / ``evaluate``). The data sets'
own label codes are mapped onto our names; their own train/test splits are not kept (the
preparation makes subject-disjoint splits where subjects are known).

| layout | what it reads |
|---|---|
| ``fer2013`` | ``fer2013.csv[.gz]`` (``emotion,pixels,Usage``), 48x48 crops |
| ``fer2013-folder`` | its image-folder copy: ``train|test/<label>/*.jpg`` |
| ``ferplus`` | ``fer2013.csv`` + ``fer2013new.csv`` (majority of the 10 votes; unknown / not-a-face dropped) |
| ``rafdb`` | ``EmoLabel/list_patition_label.txt`` + ``Image/aligned/*_aligned.jpg`` (crops) |
| ``affectnet`` | CSV of ``subDirectory_filePath, face_x, face_y, face_width, face_height, ..., expression, valence, arousal`` (8 classes; codes 8-10 dropped) |
| ``ckplus`` | ``cohn-kanade-images/S###/###/*.png`` + ``Emotion/S###/###/*_emotion.txt``: the last 3 (apex) frames of each labelled sequence, and its first frame as neutral |
| ``ckplus48`` | ``<class>/S###_###_########.png`` crops (subject from the prefix) |
| ``sfew`` | ``Train|Val/<Label>/*.png`` folders (whole frames: faces detected) |
| ``expw`` | ``label/label.lst`` + ``image/origin/*.jpg`` (face boxes given) |
"""

from __future__ import annotations

import csv
from pathlib import Path

from affectlens.datasets.sources import SourceItem, class_folder_items
from affectlens.errors import DatasetError
from affectlens.labels import EMOTIONS

RAFDB_LABELS = ("surprise", "fear", "disgust", "happy", "sad", "angry", "neutral")  # codes 1..7
AFFECTNET_LABELS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "angry", "contempt")  # 0..7
CKPLUS_LABELS = ("neutral", "angry", "contempt", "disgust", "fear", "happy", "sad", "surprise")  # 0..7
EXPW_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # 0..6


def _fer2013(p: Path) -> list[SourceItem]:
    from affectlens.datasets import load_fer2013

    items = []
    for split, s in load_fer2013(p).items():
        for img, lab, row in zip(s.images, s.labels, s.rows):
            items.append(SourceItem(EMOTIONS[int(lab)], f"fer2013-{int(row)}", f"fer2013 row {int(row)} ({split})",
                                    image=img, is_crop=True))
    return items


def _fer2013_folder(p: Path) -> list[SourceItem]:
    return class_folder_items(p, is_crop=True)


def _ferplus(p: Path) -> list[SourceItem]:
    from affectlens.datasets.ferplus import FERPLUS_EMOTIONS, load_ferplus

    items = []
    for split in ("Training", "PublicTest", "PrivateTest"):
        s = load_ferplus(p, split)
        for img, lab, row in zip(s.images, s.labels, s.rows):
            items.append(SourceItem(FERPLUS_EMOTIONS[int(lab)], f"fer2013-{int(row)}",
                                    f"ferplus row {int(row)} ({split})", image=img, is_crop=True))
    return items


def _rafdb(p: Path) -> list[SourceItem]:
    lst = p / "EmoLabel" / "list_patition_label.txt"
    if not lst.is_file():
        raise DatasetError(f"{p}: not a RAF-DB folder (expected EmoLabel/list_patition_label.txt)")
    items = []
    for i, line in enumerate(lst.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            name, code = line.split()
            label = RAFDB_LABELS[int(code) - 1]
        except (ValueError, IndexError):
            raise DatasetError(f"{lst}:{i}: expected 'train_00001.jpg <1-7>', got {line!r}") from None
        f = p / "Image" / "aligned" / f"{Path(name).stem}_aligned{Path(name).suffix}"
        items.append(SourceItem(label, Path(name).stem, str(f), path=f, is_crop=True))
    return items


def _affectnet_csv(csv_path: Path, image_root: Path) -> list[SourceItem]:
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    items = []
    for i, row in enumerate(rows, start=2):
        try:
            code = int(row["expression"])
            x, y = float(row["face_x"]), float(row["face_y"])
            w, h = float(row["face_width"]), float(row["face_height"])
        except (KeyError, ValueError) as exc:
            raise DatasetError(f"{csv_path}:{i}: malformed AffectNet row ({exc})") from None
        if not 0 <= code < len(AFFECTNET_LABELS):  # 8 none, 9 uncertain, 10 no face
            continue
        f = image_root / row["subDirectory_filePath"]
        items.append(SourceItem(AFFECTNET_LABELS[code], f.stem, str(f), path=f, box_xyxy=(x, y, x + w, y + h)))
    return items


def _affectnet(p: Path) -> list[SourceItem]:
    csvs = [p] if p.is_file() else sorted(c for c in p.glob("*.csv"))
    if not csvs:
        raise DatasetError(f"{p}: no AffectNet CSV (training.csv / validation.csv)")
    root = p.parent if p.is_file() else p
    image_root = root / "Manually_Annotated_Images" if (root / "Manually_Annotated_Images").is_dir() else root
    return [it for c in csvs for it in _affectnet_csv(c, image_root)]


def _ckplus(p: Path) -> list[SourceItem]:
    images, emotion = p / "cohn-kanade-images", p / "Emotion"
    if not images.is_dir() or not emotion.is_dir():
        raise DatasetError(f"{p}: not a CK+ folder (expected cohn-kanade-images/ and Emotion/)")
    items = []
    for label_file in sorted(emotion.glob("S*/*/*_emotion.txt")):
        try:
            code = int(float(label_file.read_text().split()[0]))
            label = CKPLUS_LABELS[code]
        except (ValueError, IndexError, OSError):
            raise DatasetError(f"{label_file}: expected one emotion code 0-7") from None
        subject, seq = label_file.parent.parent.name, label_file.parent.name
        frames = sorted((images / subject / seq).glob("*.png"))
        if not frames:
            raise DatasetError(f"{label_file}: no frames in {images / subject / seq}")
        for f in frames[-3:]:
            items.append(SourceItem(label, subject, str(f), path=f))
        items.append(SourceItem("neutral", subject, str(frames[0]), path=frames[0]))
    return items


def _expw(p: Path) -> list[SourceItem]:
    lst = p / "label" / "label.lst"
    if not lst.is_file():
        raise DatasetError(f"{p}: not an ExpW folder (expected label/label.lst)")
    items = []
    for i, line in enumerate(lst.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            name, _, top, left, right, bottom, _, code = parts[:8]
            box = (float(left), float(top), float(right), float(bottom))
            label = EXPW_LABELS[int(code)]
        except (ValueError, IndexError):
            raise DatasetError(f"{lst}:{i}: expected 'image face_id top left right bottom confidence label'") from None
        f = p / "image" / "origin" / name
        items.append(SourceItem(label, Path(name).stem, f"{f}#{parts[1]}", path=f, box_xyxy=box))
    return items


#: Layout name → loader of a path.
LAYOUTS = {
    "fer2013": _fer2013, "fer2013-folder": _fer2013_folder, "ferplus": _ferplus, "rafdb": _rafdb,
    "affectnet": _affectnet, "ckplus": _ckplus, "ckplus48": lambda p: class_folder_items(p),
    "sfew": lambda p: class_folder_items(p), "expw": _expw,
}


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [c.strip().lower() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError):
        return []


def detect_layout(p: Path) -> str:
    """The layout of a source path: a public one of :data:`LAYOUTS`, or ``csv``, ``videos``,
    ``folder`` (class folders)."""
    if p.is_file():
        if p.name.endswith(".csv.gz"):
            return "fer2013"
        head = _header(p)
        if "pixels" in head:
            return "ferplus" if (p.parent / "fer2013new.csv").is_file() else "fer2013"
        if "subdirectory_filepath" in head:
            return "affectnet"
        if "start_s" in head:
            return "videos"
        return "csv"
    if (p / "fer2013new.csv").is_file():
        return "ferplus"
    if (p / "fer2013.csv").is_file() or (p / "fer2013.csv.gz").is_file():
        return "fer2013"
    if (p / "EmoLabel" / "list_patition_label.txt").is_file():
        return "rafdb"
    if (p / "cohn-kanade-images").is_dir():
        return "ckplus"
    if (p / "label" / "label.lst").is_file():
        return "expw"
    if any("subdirectory_filepath" in _header(c) for c in p.glob("*.csv")):
        return "affectnet"
    return "folder"

