"""Drawing faces on images: box, 5 landmarks, top label and a probability bar chart per face."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from affectlens.faces import Faces

#: BGR colour per emotion (colour-blind friendly, Okabe-Ito palette).
EMOTION_COLORS = {
    "angry": (0, 94, 213), "disgust": (115, 158, 0), "fear": (167, 121, 204), "happy": (66, 228, 240),
    "neutral": (170, 170, 170), "sad": (178, 114, 0), "surprise": (0, 159, 230), "contempt": (96, 96, 96),
}
_DEFAULT = (255, 255, 255)


@dataclass(frozen=True)
class AnnotatorOptions:
    """How faces are drawn.

    Attributes:
        landmarks: draw the 5 points.
        bars: draw the probability bar chart beside each face.
        track_ids: prefix labels with ``#track_id`` when tracked.
        min_scale: lower bound of the size factor derived from the image size.
        blur_faces: pixelate and blur each face box (grown by 10 %) before drawing, so annotated
            outputs do not show recognisable faces (privacy); labels and bars are still drawn.
    """

    landmarks: bool = True
    bars: bool = True
    track_ids: bool = True
    min_scale: float = 0.5
    blur_faces: bool = False


def _text(img, text, org, scale, color, thickness):
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def annotate(image_bgr: np.ndarray, faces: Faces, options: AnnotatorOptions | None = None) -> np.ndarray:
    """A copy of ``image_bgr`` with every face drawn.

    Args:
        image_bgr: ``(h, w, 3)`` uint8 image the faces were found in.
        faces: :class:`Faces` in that image's pixel coordinates.

    Returns:
        New ``(h, w, 3)`` uint8 image.
    """
    opts = options or AnnotatorOptions()
    out = image_bgr.copy()
    h, w = out.shape[:2]
    s = max(opts.min_scale, max(h, w) / 1000.0)
    thick = max(1, round(2 * s))
    if opts.blur_faces:
        for face in faces:  # all faces first, so no drawing is blurred by an overlapping face
            blur_region(out, face.bbox)
    for i, face in enumerate(faces):
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox)
        label = face.emotion
        color = EMOTION_COLORS.get(label, _DEFAULT)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
        if opts.landmarks:
            for (px, py) in face.landmarks:
                cv2.circle(out, (int(round(px)), int(round(py))), max(1, thick), (0, 255, 0), -1, cv2.LINE_AA)
        text = f"{label} {face.confidence:.0%}" if label else f"face {face.det_score:.2f}"
        if opts.track_ids and face.track_id is not None:
            text = f"#{face.track_id} {text}"
        font = max(0.6 * s, (y2 - y1) / 450.0)
        _text(out, text, (x1, max(int(24 * font), y1 - int(6 * s))), font, color, thick)
        if opts.bars and face.scores:
            _bars(out, face.scores, (x2 + int(4 * s), y1), s, x2 - x1, y2 - y1)
    return out


def blur_region(img: np.ndarray, bbox, grow: float = 0.1, cells: int = 8) -> None:
    """Irreversibly obscure ``bbox`` (x1, y1, x2, y2) of ``img`` in place.

    The box, grown by ``grow`` of its size on each side and clipped to the image, is pixelated to
    at most ``cells`` blocks across, then smoothed with a Gaussian blur as wide as one block.
    """
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox)
    gx, gy = grow * (x2 - x1), grow * (y2 - y1)
    x1, y1 = max(0, int(np.floor(x1 - gx))), max(0, int(np.floor(y1 - gy)))
    x2, y2 = min(w, int(np.ceil(x2 + gx))), min(h, int(np.ceil(y2 + gy)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    region = img[y1:y2, x1:x2]
    rh, rw = region.shape[:2]
    n = max(1, min(cells, rw, rh))
    small = cv2.resize(region, (n, max(1, round(n * rh / rw))), interpolation=cv2.INTER_AREA)
    blocky = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
    k = max(3, (max(rw, rh) // n) | 1)
    region[:] = cv2.GaussianBlur(blocky, (k, k), 0)


def _bars(img, scores: dict[str, float], origin, s: float, face_w: int, face_h: int) -> None:
    """A bar chart as tall as the face, right of the box (left when there is no room)."""
    h, w = img.shape[:2]
    row = max(6, min(face_h // max(1, len(scores)), int(22 * s)))
    font = row / 40.0
    longest = max(scores, key=len)[:8]
    label_w = cv2.getTextSize(longest, cv2.FONT_HERSHEY_SIMPLEX, font, 1)[0][0] + 4 if row >= 9 else 0
    bar_w = max(24, int(0.8 * face_w))
    total_w = label_w + bar_w + 4
    x0, y0 = origin
    if x0 + total_w > w:
        x0 = max(0, origin[0] - face_w - total_w - 8)
    y0 = min(max(0, y0), max(0, h - row * len(scores)))
    x1, y1 = min(w, x0 + total_w), min(h, y0 + row * len(scores))
    region = img[y0:y1, x0:x1]
    region[:] = (region.astype(np.uint16) * 45 // 100).astype(np.uint8)  # darken behind the bars
    for k, (name, p) in enumerate(scores.items()):
        y = y0 + k * row
        color = EMOTION_COLORS.get(name, _DEFAULT)
        cv2.rectangle(img, (x0 + label_w, y + 1), (x0 + label_w + int(bar_w * float(p)), y + row - 2), color, -1)
        if label_w:
            cv2.putText(img, name[:8], (x0 + 2, y + row - max(2, row // 5)), cv2.FONT_HERSHEY_SIMPLEX, font,
                        (255, 255, 255), 1, cv2.LINE_AA)
