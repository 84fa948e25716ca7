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

from affectlens.assignment import linear_assignment
from affectlens.faces import FrameInfo
from affectlens.imageio import load_image
from affectlens.labels import EMOTIONS
from affectlens.metrics import box_iou
from affectlens.video.source import VIDEO_SUFFIXES

logger = logging.getLogger(__name__)

#: The labels file shipped in the repository (``benchmarks/wild/labels.csv``).
DEFAULT_LABELS_CSV = Path(__file__).resolve().parents[2] / "benchmarks" / "wild" / "labels.csv"
#: ``../shared/data`` beside the repository.
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data"
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
    """True for a video container (by suffix, as :mod:`affectlens.video.source` knows them)."""
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


def match_faces(labelled_xyxy: np.ndarray, detected_xyxy: np.ndarray,
                min_iou: float = MIN_MATCH_IOU) -> dict[int, int]:
    """One-to-one matching of labelled boxes to detected boxes (Hungarian on ``1 - IoU``).

    Returns:
        ``{labelled row: detected row}`` for the pairs whose IoU is at least ``min_iou``.
    """
    if len(labelled_xyxy) == 0 or len(detected_xyxy) == 0:
        return {}
    iou = box_iou(labelled_xyxy, detected_xyxy)
    return {i: j for i, j in linear_assignment(1.0 - iou) if iou[i, j] >= min_iou}


def _score(faces: list[WildFace], preds: list[str | None], model_labels: tuple[str, ...]) -> dict:
    """Accuracy, per-class recall, confusion matrix and neutral→sad rate of matched faces."""
    true_idx, pred_idx, people_hits = [], [], {}
    for face, pred in zip(faces, preds):
        if pred is None:
            continue
        true_idx.append(EMOTIONS.index(face.label))
        pred_idx.append(model_labels.index(pred))
        people_hits.setdefault(face.person, []).append(pred == face.label)
    cm = np.zeros((len(EMOTIONS), len(model_labels)), np.int64)
    np.add.at(cm, (np.asarray(true_idx, np.int64), np.asarray(pred_idx, np.int64)), 1)
    support = cm.sum(1)
    correct = sum(int(cm[t, model_labels.index(name)]) for t, name in enumerate(EMOTIONS) if name in model_labels)
    n = int(cm.sum())
    recall = {name: (float(cm[t, model_labels.index(name)] / support[t]) if name in model_labels else 0.0)
              for t, name in enumerate(EMOTIONS) if support[t]}
    neutral = EMOTIONS.index("neutral")
    n_neutral = int(support[neutral])
    neutral_as_sad = int(cm[neutral, model_labels.index("sad")]) if "sad" in model_labels else 0
    return {
        "n_faces": n,
        "n_people": len(people_hits),
        "accuracy": correct / n if n else None,
        "person_mean_accuracy": float(np.mean([np.mean(h) for h in people_hits.values()])) if people_hits else None,
        "per_class_recall": recall,
        "support": {name: int(support[t]) for t, name in enumerate(EMOTIONS) if support[t]},
        "confusion": cm.tolist(),
        "confusion_rows": list(EMOTIONS),
        "confusion_cols": list(model_labels),
        "neutral_as_sad": neutral_as_sad,
        "neutral_to_sad_rate": neutral_as_sad / n_neutral if n_neutral else None,
    }


def evaluate_wild(model=None, labels_csv: str | os.PathLike | None = None,
                  data_root: str | os.PathLike | None = None, *, recognizer=None,
                  sources: list[str] | None = None, threads: int = 0) -> dict:
    """Score an emotion model, through the full pipeline, on the in-the-wild set.

    Each labelled frame is decoded and passed to :class:`~affectlens.EmotionRecognizer`
    (default detector options); detected faces are matched one-to-one to labelled boxes at
    IoU >= 0.5. A face's prediction is the argmax over *all* the model's labels, so a face read
    as ``contempt`` by an 8-label model counts as wrong. Labelled faces with no matching
    detection are misses, reported apart from the accuracy.

    Args:
        model: model name, spec/ONNX path or :class:`ModelSpec` (``None`` = the default).
        labels_csv: the labels file (default ``benchmarks/wild/labels.csv``).
        data_root: the shared data folder (default ``../shared/data`` beside the repository).
        recognizer: an :class:`~affectlens.EmotionRecognizer` to use instead of building one.
        sources: score only these sources (default all).
        threads: ONNX Runtime threads when the recognizer is built here (0 = its default).

    Returns:
        ``model``, ``labels``, ``n_labelled``, ``n_faces`` (matched and scored), ``n_missed`` and
        ``missed`` (labelled faces the detector did not find), ``n_people`` (distinct person/track
        keys among scored faces), ``accuracy``, ``person_mean_accuracy`` (accuracy averaged per
        person, so one long track does not dominate), ``per_class_recall``, ``support``,
        ``confusion`` (rows: true labels in ``confusion_rows``; columns: model labels in
        ``confusion_cols``), ``neutral_as_sad``, ``neutral_to_sad_rate``, ``per_source`` (``n_faces`` and
        ``n_correct`` per source) and ``skipped_sources`` (sources whose file is absent).

    Raises:
        ModelLoadError: the model cannot be loaded.
        ValueError: a malformed labels file.

    Example:
        >>> r = evaluate_wild("fer-vgg48s")
        >>> round(r["accuracy"], 3), r["neutral_to_sad_rate"], r["n_people"]
    """
    from affectlens.recognizer import EmotionRecognizer

    faces = load_labels(labels_csv)
    if sources is not None:
        faces = [f for f in faces if f.source in set(sources)]
    rec = recognizer if recognizer is not None else EmotionRecognizer(model=model, threads=threads)
    by_source: dict[str, list[int]] = {}
    for k, f in enumerate(faces):
        by_source.setdefault(f.source, []).append(k)
    preds: list[str | None] = [None] * len(faces)
    present = [False] * len(faces)
    skipped = []
    for source, rows in by_source.items():
        path = resolve_source(source, data_root)
        if path is None:
            skipped.append(source)
            logger.info("wild: %s is absent, skipped", source)
            continue
        frames = read_frames(path, {faces[k].frame_index for k in rows})
        for fi, (ts, img) in frames.items():
            here = [k for k in rows if faces[k].frame_index == fi]
            found = rec.predict_bgr(img, FrameInfo(source, fi, ts, img.shape[:2]))
            boxes = np.array([faces[k].xyxy for k in here], np.float64)
            for i, j in match_faces(boxes, found.xyxy).items():
                preds[here[i]] = rec.labels[int(np.argmax(found.probs[j]))]
            for k in here:
                present[k] = True
    scored = [f for f, ok in zip(faces, present) if ok]
    scored_preds = [p for p, ok in zip(preds, present) if ok]
    missed = [{"source": f.source, "frame_index": f.frame_index, "xyxy": list(f.xyxy), "label": f.label}
              for f, p in zip(scored, scored_preds) if p is None]
    per_source: dict[str, dict] = {}
    for f, p in zip(scored, scored_preds):
        if p is not None:
            d = per_source.setdefault(f.source, {"n_faces": 0, "n_correct": 0})
            d["n_faces"] += 1
            d["n_correct"] += int(p == f.label)
    return {
        "model": rec.classifier.spec.name,
        "labels": list(rec.labels),
        "n_labelled": len(scored),
        "n_missed": len(missed),
        "missed": missed,
        "skipped_sources": skipped,
        **_score(scored, scored_preds, tuple(rec.labels)),
        "per_source": per_source,
    }


def format_wild_report(report: dict) -> str:
    """A short text report of :func:`evaluate_wild`: accuracy, recall per class, confusion."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines = [f"model {report['model']}: {report['n_faces']} faces of {report['n_people']} people "
             f"(missed by the detector: {report['n_missed']} of {report['n_labelled']})",
             f"accuracy {pct(report['accuracy'])}, per-person mean {pct(report['person_mean_accuracy'])}, "
             f"neutral read as sad {report['neutral_as_sad']} of {report['support'].get('neutral', 0)} "
             f"({pct(report['neutral_to_sad_rate'])})",
             "recall: " + ", ".join(f"{k} {pct(v)} (n={report['support'][k]})"
                                    for k, v in report["per_class_recall"].items())]
    cols = report["confusion_cols"]
    lines.append("confusion (rows: labelled, columns: model)")
    lines.append(f"{'':>9} " + " ".join(f"{c[:8]:>8}" for c in cols))
    for name, row in zip(report["confusion_rows"], report["confusion"]):
        if sum(row):
            lines.append(f"{name:>9} " + " ".join(f"{v:>8}" for v in row))
    if report["skipped_sources"]:
        lines.append("skipped (file absent): " + ", ".join(report["skipped_sources"]))
    return "\n".join(lines)
