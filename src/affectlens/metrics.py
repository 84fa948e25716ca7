"""Classification and calibration metrics (numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[t, p]`` = number of samples of true class ``t`` predicted as ``p``."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(true), np.asarray(pred)), 1)
    return cm


def classification_report(probs: np.ndarray, true: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix.

    Args:
        probs: ``(n, C)`` scores (any monotone scores work; argmax is used).
        true: ``(n,)`` class indices.
        labels: ``C`` class names.

    Raises:
        ValueError: shapes disagree.
    """
    probs, true = np.asarray(probs), np.asarray(true)
    if probs.ndim != 2 or probs.shape[0] != true.shape[0] or probs.shape[1] != len(labels):
        raise ValueError(f"expected probs (n, {len(labels)}) and true (n,), got {probs.shape} and {true.shape}")
    pred = probs.argmax(1)
    cm = confusion_matrix(pred, true, len(labels))
    tp = np.diag(cm).astype(float)
    support = cm.sum(1).astype(float)
    predicted = cm.sum(0).astype(float)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return {
        "n": int(true.shape[0]),
        "accuracy": float(tp.sum() / max(1, true.shape[0])),
        "macro_f1": float(f1.mean()),
        "per_class_recall": {name: float(v) for name, v in zip(labels, recall)},
        "per_class_precision": {name: float(v) for name, v in zip(labels, precision)},
        "per_class_f1": {name: float(v) for name, v in zip(labels, f1)},
        "support": {name: int(v) for name, v in zip(labels, support)},
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
    }


def expected_calibration_error(probs: np.ndarray, true: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 confidence over ``bins`` equal-width bins (0 = perfectly calibrated)."""
    probs, true = np.asarray(probs), np.asarray(true)
    conf = probs.max(1)
    correct = (probs.argmax(1) == true).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def kl_divergence(target: np.ndarray, probs: np.ndarray) -> float:
    """Mean KL(target ‖ probs) in nats over rows of ``(n, C)`` distributions (e.g. annotator vote
    shares against model probabilities); classes with zero target mass contribute nothing, and
    model probabilities are floored at 1e-12 so a confident miss is large but finite."""
    t, p = np.asarray(target, np.float64), np.asarray(probs, np.float64)
    terms = np.where(t > 0, t * (np.log(np.maximum(t, 1e-12)) - np.log(np.maximum(p, 1e-12))), 0.0)
    return float(terms.sum(1).mean())


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of two sets of ``xyxy`` boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def match_detections(pred: np.ndarray, truth: np.ndarray, iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """Greedy one-to-one matching by IoU → ``(true positives, false positives, false negatives)``."""
    iou = box_iou(pred, truth)
    matched_truth: set[int] = set()
    tp = 0
    for i in range(iou.shape[0]):
        order = np.argsort(-iou[i])
        for j in order:
            if iou[i, j] < iou_threshold:
                break
            if int(j) not in matched_truth:
                matched_truth.add(int(j))
                tp += 1
                break
    return tp, iou.shape[0] - tp, iou.shape[1] - tp
