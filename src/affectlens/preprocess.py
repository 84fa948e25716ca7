"""The one definition of how face crops become a model's input tensor.

Every runtime path (the classifier, evaluation, int8 calibration, ensemble building,
distillation, export scoring) calls :func:`to_model_input`; the spec's ``input`` section
(size, colour, scale, mean/std) is its only configuration. The web and mobile SDKs implement
the same steps from the same spec fields: fit to size (area when shrinking, bilinear when
enlarging), colour (BGR → gray with ITU-R BT.601 weights, as OpenCV), ``x * scale``, then
``(x - mean) / std`` per channel.
"""

from __future__ import annotations

import cv2
import numpy as np

from affectlens.models.spec import InputSpec


def fit_crops(crops: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize ``(n, h, w[, 3])`` uint8 crops to ``size_hw`` (no-op when already that size):
    area interpolation when shrinking, bilinear when enlarging."""
    crops = np.asarray(crops)
    h, w = size_hw
    if crops.ndim < 3 or crops.shape[1:3] == (h, w) or len(crops) == 0:
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > h else cv2.INTER_LINEAR
    return np.stack([cv2.resize(c, (w, h), interpolation=interp) for c in crops])


def to_model_input(crops: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Crops → the model's float32 NCHW input, as the spec says.

    Args:
        crops: ``(n, H, W, 3)`` uint8 BGR, or ``(n, H, W)`` uint8 grayscale (e.g. FER-2013
            faces), any size (fitted by :func:`fit_crops`).
        spec: the model spec's ``input`` section.

    Returns:
        ``(n, C, H, W)`` float32, C = 1 for ``gray`` models, 3 otherwise.

    Raises:
        ValueError: not a stack of grayscale or 3-channel crops.

    Example:
        >>> to_model_input(np.zeros((2, 48, 48), np.uint8), spec.input).shape
        (2, 1, 48, 48)
    """
    crops = np.asarray(crops)
    if crops.ndim not in (3, 4) or (crops.ndim == 4 and crops.shape[3] != 3):
        raise ValueError(f"expected (n, H, W) gray or (n, H, W, 3) BGR crops, got shape {crops.shape}")
    h, w = spec.size_hw
    crops = fit_crops(crops, (h, w))
    if crops.ndim == 3:  # grayscale
        x = crops[:, None] if spec.color == "gray" else np.repeat(crops[:, None], 3, axis=1)
    elif spec.color == "gray":
        x = (np.stack([cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) for c in crops])[:, None] if len(crops)
             else np.zeros((0, 1, h, w), np.uint8))
    else:
        x = (crops[..., ::-1] if spec.color == "rgb" else crops).transpose(0, 3, 1, 2)
    mean = np.asarray(spec.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(1, -1, 1, 1)
    x = x.astype(np.float32) * np.float32(spec.scale)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)
