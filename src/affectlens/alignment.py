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


def similarity_transforms(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarities (rotation, uniform scale, translation) mapping each point set
    of ``src`` onto ``dst``, all at once. In the plane this is the complex least-squares fit
    ``z_dst ≈ c · z_src + t``, which equals Umeyama's solution without reflection.

    Args:
        src: ``(n, k, 2)`` point sets (e.g. every face's 5 landmarks, pixels), ``k >= 2``.
        dst: ``(k, 2)`` target points (e.g. a template in crop pixels), or ``(n, k, 2)``.

    Returns:
        ``(n, 2, 3)`` float64 affine matrices ``M`` with ``dst ≈ M @ [x, y, 1]``.

    Raises:
        ValueError: shapes that do not match, fewer than 2 points, points that are not finite,
            or a point set whose points all coincide.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 3 or src.shape[1] < 2 or src.shape[2] != 2 or dst.shape not in (src.shape[1:], src.shape):
        raise ValueError(f"expected (n, k>=2, 2) source points and (k, 2) or (n, k, 2) targets, "
                         f"got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise ValueError("points must be finite numbers (got NaN or infinity)")
    zs, zd = src[..., 0] + 1j * src[..., 1], dst[..., 0] + 1j * dst[..., 1]
    mu_s, mu_d = zs.mean(-1), zd.mean(-1)
    s, d = zs - mu_s[:, None], zd - np.expand_dims(mu_d, -1)
    var_s = (np.abs(s) ** 2).sum(-1)
    if np.any(var_s < 1e-12 * src.shape[1]):
        raise ValueError("source points coincide; cannot estimate a similarity transform")
    c = (np.conj(s) * d).sum(-1) / var_s
    return _matrices(c, mu_d - c * mu_s)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """One point set's :func:`similarity_transforms`: ``(k, 2)`` ``src`` and ``dst`` → ``(2, 3)``.

    Raises:
        ValueError: shapes differ or fewer than 2 points, or all ``src`` points coincide.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"expected two (k>=2, 2) point arrays of one shape, got {src.shape} and {dst.shape}")
    return similarity_transforms(src[None], dst)[0]


def limit_rolls(m: np.ndarray, src: np.ndarray, dst: np.ndarray, dead_band_deg: float) -> np.ndarray:
    """Keep the roll (in-plane rotation) of fitted similarities only beyond a dead band.

    Models trained on unaligned crops (FER-2013, FER+) saw faces tilted by about ±13° as
    they come; de-rotating every face moves it away from that. With a dead band of ``b``
    degrees, a fitted rotation of ``a`` degrees becomes ``sign(a) * max(0, |a| - b)``: faces
    tilted less than ``b`` keep their tilt, more tilted ones are turned back to ``±b``. The
    fitted scale is kept and the centroid of ``src`` still lands on the centroid of ``dst``.

    Args:
        m: ``(n, 2, 3)`` similarities from :func:`similarity_transforms` (``src`` → ``dst``).
        src: the ``(n, k, 2)`` points ``m`` was fitted on (pixels); ``dst``: ``(k, 2)`` or ``(n, k, 2)``.
        dead_band_deg: the dead band in degrees; 0 (or less) returns ``m`` unchanged.

    Returns:
        ``(n, 2, 3)`` float64 similarities with the limited rotation.
    """
    if dead_band_deg <= 0:
        return m
    c = m[:, 0, 0] + 1j * m[:, 1, 0]
    angle = np.angle(c)
    kept = np.sign(angle) * np.maximum(0.0, np.abs(angle) - np.radians(dead_band_deg))
    c = np.abs(c) * np.exp(1j * kept)
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s = (src[..., 0] + 1j * src[..., 1]).mean(-1)
    mu_d = (dst[..., 0] + 1j * dst[..., 1]).mean(-1)
    return _matrices(c, mu_d - c * mu_s)


def limit_roll(m: np.ndarray, src: np.ndarray, dst: np.ndarray, dead_band_deg: float) -> np.ndarray:
    """One similarity's :func:`limit_rolls`: ``(2, 3)`` ``m`` fitted on ``(k, 2)`` ``src`` → ``dst``.

    Example:
        >>> m = similarity_transform(landmarks, template_px)      # rotates the face by 40°
        >>> limit_roll(m, landmarks, template_px, 15.0)           # rotates it by 25°
    """
    if dead_band_deg <= 0:
        return m
    return limit_rolls(np.asarray(m, np.float64)[None], np.asarray(src, np.float64)[None], dst, dead_band_deg)[0]


def _matrices(c: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``(n, 2, 3)`` affine matrices of the complex similarities ``z -> c z + t``."""
    m = np.empty((len(c), 2, 3))
    m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = c.real, -c.imag, np.real(t)
    m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = c.imag, c.real, np.imag(t)
    return m


def align_faces(image: np.ndarray, landmarks: np.ndarray, template_norm, size_hw: tuple[int, int],
                roll_dead_band_deg: float = 0.0) -> np.ndarray:
    """Warp every face to the template.

    Args:
        image: ``(h, w)`` or ``(h, w, c)`` uint8 image.
        landmarks: ``(n, 5, 2)`` pixel landmarks in ``image``.
        template_norm: five ``(x, y)`` template points as fractions of the crop size.
        size_hw: crop height and width in pixels.
        roll_dead_band_deg: roll the alignment leaves in place, in degrees (see
            :func:`limit_rolls`; the model spec's ``alignment.roll_dead_band_deg``); 0 aligns fully.

    Returns:
        ``(n, H, W[, c])`` uint8 crops (replicated borders where the face leaves the image).

    Raises:
        ValueError: landmarks that are not ``(n, k, 2)`` finite numbers, or a face whose landmarks coincide.
    """
    h, w = size_hw
    pts = np.asarray(landmarks, dtype=np.float64)
    if len(pts) == 0:
        return np.zeros((0, h, w) + image.shape[2:], dtype=np.uint8)
    dst = np.asarray(template_norm, dtype=np.float64) * np.array([w, h])
    ms = limit_rolls(similarity_transforms(pts, dst), pts, dst, roll_dead_band_deg)
    # Strong downscaling with a plain warp aliases: warp at k times the size, then area-resize.
    scales = np.hypot(ms[:, 0, 0], ms[:, 1, 0])
    ks = np.clip(np.floor(1.0 / np.maximum(scales, 1e-6)), 1, 8).astype(int)
    crops = []
    for m, k in zip(ms, ks):
        big = cv2.warpAffine(image, m * k, (w * k, h * k), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        crops.append(big if k == 1 else cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA))
    return np.stack(crops)
