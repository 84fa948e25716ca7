"""The in-the-wild evaluation set: real, unposed faces labelled by eye, and its scorer.

``benchmarks/wild/labels.csv`` lists faces in frames of the shared media videos and photos
(``../shared/data``) and in photos that ship inside registry packages; each row holds the
source, the frame, the face box in original pixels and the label (docs/wild-eval.md tells how
the labels were made). No pixels are stored: :func:`evaluate_wild` reads every source frame,
runs the full pipeline (detection, alignment, classification) on it, matches the detected faces
to the labelled boxes and scores the model.

Sources are named relative to the shared data folder (``media/videos/crowd_walking.mp4``) or
as ``pkg:<package>/<path inside the package>`` (``pkg:insightface/data/images/t1.jpg``).
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from affectlens.imageio import load_image
from affectlens.labels import EMOTIONS

logger = logging.getLogger(__name__)

#: The labels file shipped in the repository (``benchmarks/wild/labels.csv``).
DEFAULT_LABELS_CSV = Path(__file__).resolve().parents[2] / "benchmarks" / "wild" / "labels.csv"
#: ``../shared/data`` beside the repository.
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
#: A detected face matches a labelled box when their IoU is at least this.
MIN_MATCH_IOU = 0.5


@dataclass(frozen=True)
class WildFace:
    """One labelled face of the set.

    Attributes:
        source: shared-data-relative path or ``pkg:<package>/<path>``.
        frame_index: 0-based decoded-frame number in a video (0 for a photo).
        timestamp_ms: the frame's container time (``None`` for a photo).
        xyxy: the face box in original pixels, ``(x1, y1, x2, y2)``.
        label: one of :data:`affectlens.labels.EMOTIONS`.
        person: a person/track key; faces sharing it are the same person in nearby frames.
    """

    source: str
    frame_index: int
    timestamp_ms: float | None
    xyxy: tuple[float, float, float, float]
    label: str
    person: str


def resolve_source(source: str, data_root: str | os.PathLike | None = None) -> Path | None:
    """The file a source names, or ``None`` when it is not installed / not in the data folder.

    Args:
        source: ``media/...`` (relative to ``data_root``) or ``pkg:<package>/<path>``.
        data_root: the shared data folder (default ``../shared/data`` beside the repository).

    Example:
        >>> resolve_source("pkg:insightface/data/images/t1.jpg")
        PosixPath('.../site-packages/insightface/data/images/t1.jpg')
    """
    if source.startswith("pkg:"):
        package, _, inner = source[4:].partition("/")
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(next(iter(spec.submodule_search_locations))) / inner
    else:
        path = Path(data_root if data_root is not None else DEFAULT_DATA_ROOT) / source
    return path if path.is_file() else None


def is_video(path: str | os.PathLike) -> bool:
    """True for the video containers the set uses (by suffix)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_frames(path: str | os.PathLike, frame_indices) -> dict[int, tuple[float | None, np.ndarray]]:
    """Decode the wanted frames of a video (or the one frame of a photo).

    Videos are decoded in order, counting every decoded frame as
    :class:`affectlens.video.source.VideoSource` does, so indices agree with it.

    Args:
        path: a video or image file.
        frame_indices: the 0-based frame numbers wanted (ignored for a photo, whose frame is 0).

    Returns:
        ``{frame_index: (timestamp_ms or None, BGR uint8 image)}``; indices past the end are absent.
    """
    if not is_video(path):
        return {0: (None, load_image(path))}
    wanted = set(int(i) for i in frame_indices)
    out: dict[int, tuple[float | None, np.ndarray]] = {}
    cap = cv2.VideoCapture(str(path))
    try:
        i = 0
        while wanted and i <= max(wanted) and cap.grab():
            if i in wanted:
                ts = float(cap.get(cv2.CAP_PROP_POS_MSEC))
                ok, img = cap.retrieve()
                if ok:
                    out[i] = (ts, img)
                wanted.discard(i)
            i += 1
    finally:
        cap.release()
    return out


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` ``(n, 4)`` with every box in ``b`` ``(m, 4)`` (xyxy) → ``(n, m)``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def load_labels(labels_csv: str | os.PathLike | None = None) -> list[WildFace]:
    """Read the labels file.

    Raises:
        ValueError: a row with a label outside :data:`EMOTIONS` or a malformed box
            (the message names the file and the row).
    """
    path = Path(labels_csv) if labels_csv is not None else DEFAULT_LABELS_CSV
    faces = []
    with open(path, newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            label = row["label"].strip()
            if label not in EMOTIONS:
                raise ValueError(f"{path}:{n}: expected a label in {', '.join(EMOTIONS)}, got {label!r}")
            box = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
            if not (box[2] > box[0] and box[3] > box[1]):
                raise ValueError(f"{path}:{n}: expected x2 > x1 and y2 > y1, got box {box}")
            ts = row.get("timestamp_ms", "").strip()
            faces.append(WildFace(row["source"], int(row["frame_index"]), float(ts) if ts else None, box,
                                  label, row.get("person", "").strip() or f"{row['source']}#{n}"))
    return faces
