"""5-point similarity alignment of faces to a model's crop template."""

from __future__ import annotations

import cv2
import numpy as np

#: Where FER-2013's face registration puts our detector's 5 landmarks, as fractions of
#: the 48x48 crop (image-left eye, image-right eye, nose tip, image-left and image-right
#: mouth corner). Estimated by ``tools/estimate_fer_template.py`` from 2,920 of 3,000
#: random FER-2013 training faces (per-point median; median absolute deviation 0.03-0.04).
FER2013_TEMPLATE: tuple[tuple[float, float], ...] = (
    (0.3210, 0.3865), (0.6841, 0.3881), (0.5013, 0.6041), (0.3596, 0.7641), (0.6475, 0.7641),
)
FER2013_TEMPLATE_SOURCE = (
    "median landmarks of RetinaFace-MobileNet0.25 on 2,920 FER-2013 training faces "
    "(tools/estimate_fer_template.py)"
)
#: Roll (degrees) that models trained on unaligned FER-2013 / FER+ crops keep (see
#: :func:`limit_roll`): those crops come tilted by about 13° (standard deviation, as our
#: detector reads it), so fully de-rotating faces moves them away from what the model saw.
FER2013_ROLL_DEAD_BAND_DEG = 15.0


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto
    ``dst`` (Umeyama, without reflection).

    Args:
        src, dst: ``(k, 2)`` corresponding points, ``k >= 2``.

    Returns:
        ``(2, 3)`` float64 affine matrix ``M`` with ``dst ≈ M @ [x, y, 1]``.

    Raises:
        ValueError: shapes differ or fewer than 2 points, or all ``src`` points coincide.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"expected two (k>=2, 2) point arrays of one shape, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s ** 2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("source points coincide; cannot estimate a similarity transform")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def limit_roll(m: np.ndarray, src: np.ndarray, dst: np.ndarray, dead_band_deg: float) -> np.ndarray:
    """Keep the roll (in-plane rotation) of a fitted similarity only beyond a dead band.

    Models trained on unaligned crops (FER-2013, FER+) saw faces tilted by about ±13° as
    they come; de-rotating every face moves it away from that. With a dead band of ``b``
    degrees, a fitted rotation of ``a`` degrees becomes ``sign(a) * max(0, |a| - b)``: faces
    tilted less than ``b`` keep their tilt, more tilted ones are turned back to ``±b``. The
    fitted scale is kept and the centroid of ``src`` still lands on the centroid of ``dst``.

    Args:
        m: ``(2, 3)`` similarity from :func:`similarity_transform` (``src`` → ``dst``).
        src, dst: the ``(k, 2)`` points ``m`` was fitted on (pixels).
        dead_band_deg: the dead band in degrees, in [0, 90); 0 returns ``m`` unchanged.

    Returns:
        ``(2, 3)`` float64 similarity with the limited rotation.

    Example:
        >>> m = similarity_transform(landmarks, template_px)      # rotates the face by 40°
        >>> limit_roll(m, landmarks, template_px, 15.0)           # rotates it by 25°
    """
    if dead_band_deg <= 0:
        return m
    angle_deg = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    kept_rad = np.radians(np.sign(angle_deg) * max(0.0, abs(angle_deg) - dead_band_deg))
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    rot = scale * np.array([[np.cos(kept_rad), -np.sin(kept_rad)], [np.sin(kept_rad), np.cos(kept_rad)]])
    out = np.zeros((2, 3))
    out[:, :2] = rot
    out[:, 2] = np.asarray(dst, np.float64).mean(0) - rot @ np.asarray(src, np.float64).mean(0)
    return out


def align_faces(image: np.ndarray, landmarks: np.ndarray, template_norm, size_hw: tuple[int, int],
                roll_dead_band_deg: float = 0.0) -> np.ndarray:
    """Warp every face to the template.

    Args:
        image: ``(h, w)`` or ``(h, w, c)`` uint8 image.
        landmarks: ``(n, 5, 2)`` pixel landmarks in ``image``.
        template_norm: five ``(x, y)`` template points as fractions of the crop size.
        size_hw: crop height and width in pixels.
        roll_dead_band_deg: roll the alignment leaves in place, in degrees (see
            :func:`limit_roll`; the model spec's ``alignment.roll_dead_band_deg``); 0 aligns fully.

    Returns:
        ``(n, H, W[, c])`` uint8 crops (replicated borders where the face leaves the image).
    """
    h, w = size_hw
    dst = np.asarray(template_norm, dtype=np.float64) * np.array([w, h])
    crops = []
    for pts in np.asarray(landmarks, dtype=np.float64):
        m = limit_roll(similarity_transform(pts, dst), pts, dst, roll_dead_band_deg)
        # Strong downscaling with a plain warp aliases: warp at k times the size, then area-resize.
        k = int(min(8, max(1, np.floor(1.0 / max(_scale_of(m), 1e-6)))))
        big = cv2.warpAffine(image, m * k, (w * k, h * k), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        crops.append(big if k == 1 else cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA))
    if not crops:
        return np.zeros((0, h, w) + image.shape[2:], dtype=np.uint8)
    return np.stack(crops)


def _scale_of(m: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
