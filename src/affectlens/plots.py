"""Evaluation plots drawn with OpenCV (no plotting library needed): confusion matrix and
reliability diagram as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _put(img, text, org, scale=0.45, color=(30, 30, 30), thickness=1):
    cv2.putText(img, text, org, _FONT, scale, color, thickness, cv2.LINE_AA)


def confusion_png(path: str | Path, confusion: Sequence[Sequence[int]], labels: Sequence[str], title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: true, columns: predicted) with counts."""
    cm = np.asarray(confusion, float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n, cell, left, top = len(labels), 70, 100, 90
    img = np.full((top + n * cell + 60, left + n * cell + 20, 3), 255, np.uint8)
    _put(img, title, (10, 22), 0.55)
    _put(img, "predicted", (left + n * cell // 2 - 35, top - 40), 0.5)
    for i in range(n):
        _put(img, labels[i][:8], (8, top + i * cell + cell // 2 + 5))
        _put(img, labels[i][:7], (left + i * cell + 4, top - 10), 0.42)
        for j in range(n):
            v = norm[i, j]
            shade = int(255 - 200 * v)
            x, y = left + j * cell, top + i * cell
            cv2.rectangle(img, (x, y), (x + cell - 2, y + cell - 2), (shade, shade - 20 if shade > 20 else 0, 60 + shade // 2 if i != j else shade // 3), -1)
            color = (255, 255, 255) if v > 0.5 else (20, 20, 20)
            _put(img, f"{v:.2f}", (x + 12, y + 30), 0.5, color)
            _put(img, f"{int(cm[i, j])}", (x + 12, y + 52), 0.4, color)
    _put(img, "rows: true class (share of its faces); small numbers: counts", (10, img.shape[0] - 20), 0.42)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


def reliability_png(path: str | Path, probs: np.ndarray, true: np.ndarray, bins: int = 15, title: str = "") -> Path:
    """Reliability diagram: accuracy vs confidence per bin, with the diagonal of perfect calibration
    and bar shading by the share of faces in the bin."""
    conf = probs.max(1)
    correct = probs.argmax(1) == true
    edges = np.linspace(0, 1, bins + 1)
    size, pad = 420, 60
    img = np.full((size + 2 * pad, size + 2 * pad, 3), 255, np.uint8)
    x0, y0 = pad, pad + size
    cv2.rectangle(img, (x0, pad), (x0 + size, y0), (0, 0, 0), 1)
    cv2.line(img, (x0, y0), (x0 + size, pad), (150, 150, 150), 1, cv2.LINE_AA)
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if not m.any():
            continue
        acc, share = correct[m].mean(), m.mean()
        xa, xb = x0 + int(lo * size), x0 + int(hi * size) - 1
        ya = y0 - int(acc * size)
        blue = int(255 - min(1.0, share * 5) * 200)
        cv2.rectangle(img, (xa, ya), (xb, y0), (200, blue, 40), -1)
        cv2.rectangle(img, (xa, ya), (xb, y0), (80, 60, 20), 1)
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        _put(img, f"{t:.2f}", (x0 + int(t * size) - 14, y0 + 18), 0.4)
        _put(img, f"{t:.2f}", (8, y0 - int(t * size) + 4), 0.4)
    _put(img, "confidence (top probability)", (x0 + size // 2 - 110, y0 + 40), 0.45)
    _put(img, "accuracy", (4, pad - 10), 0.45)
    _put(img, title, (x0, 24), 0.5)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path
