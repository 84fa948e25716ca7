"""How far a face's emotion reading can be trusted: a quality score per face.

Four signals, each mapped to [0, 1] (1 = no concern), and the face's quality is the lowest of
them, so the result names what is wrong (``quality_reason``):

- ``size``: the box's short side; ``(px - MIN_FACE_PX) / (GOOD_FACE_PX - MIN_FACE_PX)``
  clipped: below 24 px a face is unreadable, from 56 px on it is fine (the model reads 48 px).
- ``sharpness``: variance of the Laplacian of the aligned gray crop the model sees, divided by
  ``GOOD_SHARPNESS`` (motion blur, defocus, heavy compression, upscaled tiny faces score low).
- ``pose``: frontal attention from the 5 landmarks (:func:`~affectlens.video.aggregate.
  attention_from_pose` with a tolerance of 0.6 and a limit of 1.05): three-quarter views pass,
  full profiles (nose at the eye line's end) score low.
- ``detection``: the detector's score, ``(s - 0.5) / 0.4`` clipped (false positives such as
  a plate of food tend to score low).

A face whose quality is below ``min_quality`` is marked unreliable: its ``emotion`` reads
``"unreliable"`` (its probabilities are still there), and reports and aggregates leave it out
or mark it. The thresholds were set by looking at the shared media (MODEL_CARD.md); they are
a starting point, configurable through :class:`~affectlens.RecognizerOptions`.
"""

from __future__ import annotations

import cv2
import numpy as np

from affectlens.faces import UNRELIABLE, Faces

__all__ = ["UNRELIABLE", "DEFAULT_MIN_QUALITY", "SIGNALS", "assess", "quality_signals"]
MIN_FACE_PX = 24.0
GOOD_FACE_PX = 56.0
GOOD_SHARPNESS = 150.0
POSE_TOLERANCE = 0.6
POSE_LIMIT = 1.05
#: Default ``min_quality``: a face below it is reported as unreliable.
DEFAULT_MIN_QUALITY = 0.3
SIGNALS = ("size", "sharpness", "pose", "detection")


def quality_signals(faces: Faces, crops: np.ndarray) -> dict[str, np.ndarray]:
    """Per-face signals in [0, 1], each ``(n,)`` float32, keyed by :data:`SIGNALS`.

    Args:
        faces: detected faces (boxes, landmarks, scores).
        crops: the aligned crops the classifier saw, ``(n, H, W[, 3])`` uint8.

    Raises:
        ValueError: ``crops`` does not have one row per face.
    """
    from affectlens.video.aggregate import attention_from_pose, head_pose_from_landmarks

    n = len(faces)
    if len(crops) != n:
        raise ValueError(f"crops: expected {n} rows (one per face), got {len(crops)}")
    if n == 0:
        return {k: np.zeros(0, np.float32) for k in SIGNALS}
    wh = faces.xyxy[:, 2:] - faces.xyxy[:, :2]
    size = np.clip((wh.min(1) - MIN_FACE_PX) / (GOOD_FACE_PX - MIN_FACE_PX), 0, 1)
    gray = [c if c.ndim == 2 else cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops]
    lap = np.array([cv2.Laplacian(g, cv2.CV_64F).var() for g in gray])
    sharp = np.clip(lap / GOOD_SHARPNESS, 0, 1)
    pose = head_pose_from_landmarks(faces.landmarks)
    frontal = attention_from_pose(pose[:, 0], pose[:, 1], tolerance=POSE_TOLERANCE, limit=POSE_LIMIT)
    det = np.clip((faces.det_score - 0.5) / 0.4, 0, 1)
    return {k: np.asarray(v, np.float32) for k, v in zip(SIGNALS, (size, sharp, frontal, det))}


def assess(faces: Faces, crops: np.ndarray, min_quality: float = DEFAULT_MIN_QUALITY) -> Faces:
    """``faces`` with data columns ``quality`` (the lowest signal), ``quality_reason`` (its name)
    and ``reliable`` (``quality >= min_quality``).

    Raises:
        ValueError: ``min_quality`` outside [0, 1], or crops not one per face.
    """
    if not 0.0 <= min_quality <= 1.0:
        raise ValueError(f"min_quality must be in [0, 1], got {min_quality}")
    sig = quality_signals(faces, crops)
    stack = np.stack([sig[k] for k in SIGNALS], 1) if len(faces) else np.zeros((0, len(SIGNALS)), np.float32)
    quality = stack.min(1) if len(faces) else np.zeros(0, np.float32)
    reason = np.array([SIGNALS[i] for i in stack.argmin(1)] if len(faces) else [], dtype=object)
    return faces.with_data(quality=quality.astype(np.float32), quality_reason=reason,
                           reliable=quality >= min_quality)
