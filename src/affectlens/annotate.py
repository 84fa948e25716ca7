"""Drawing faces on images: box, 5 landmarks, top label and a probability bar chart per face.

Colours come from the one palette (:mod:`affectlens.labels`, ``palette.json``). Labels are
filled tags in the emotion's colour with black or white text, whichever contrasts more, so
they read on dark and light footage alike. Tags and bar panels are laid out so that they do not
overlap each other or any face box; a bar panel that finds no free place is left out (groups).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from affectlens.faces import Faces
from affectlens.labels import EMOTION_COLORS_BGR, display_order, emotion_color

#: BGR colour per emotion (from ``palette.json``; kept under this name for existing imports).
EMOTION_COLORS = EMOTION_COLORS_BGR
_DEFAULT = emotion_color(None, "bgr")
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class AnnotatorOptions:
    """How faces are drawn.

    Attributes:
        landmarks: draw the 5 points (never on blurred faces).
        bars: draw the probability bar chart beside each face where it has room without
            covering a face or another label.
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


def text_color_for(bgr) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with ``bgr`` (WCAG relative luminance)."""
    def lin(c):
        c = c / 255.0
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    b, g, r = (float(v) for v in bgr)
    lum = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
    return (0, 0, 0) if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else (255, 255, 255)


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _free(rect, taken) -> bool:
    return not any(_overlaps(rect, t) for t in taken)


def _place(w: int, h: int, candidates, taken, img_wh) -> tuple[int, int] | None:
    """The first candidate top-left corner whose ``w x h`` rectangle fits the image and hits nothing."""
    iw, ih = img_wh
    for x, y in candidates:
        x, y = int(min(max(0, x), max(0, iw - w))), int(min(max(0, y), max(0, ih - h)))
        if _free((x, y, x + w, y + h), taken):
            return x, y
    return None


def annotate(image_bgr: np.ndarray, faces: Faces, options: AnnotatorOptions | None = None) -> np.ndarray:
    """A copy of ``image_bgr`` with every face drawn.

    Args:
        image_bgr: ``(h, w, 3)`` uint8 image the faces were found in.
        faces: :class:`Faces` in that image's pixel coordinates.
        options: :class:`AnnotatorOptions`.

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
    boxes = [tuple(int(round(v)) for v in b) for b in faces.xyxy]
    taken: list[tuple[int, int, int, int]] = list(boxes)   # faces and everything placed so far
    order = np.argsort(-faces.area) if len(faces) else []  # big (near) faces get the best places
    for i in order:
        face = faces[int(i)]
        x1, y1, x2, y2 = boxes[i]
        color = EMOTION_COLORS.get(face.emotion, _DEFAULT) if face.emotion else _DEFAULT
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
        if opts.landmarks and not opts.blur_faces:
            for (px, py) in face.landmarks:
                cv2.circle(out, (int(round(px)), int(round(py))), max(1, thick), (0, 255, 0), -1, cv2.LINE_AA)
        taken.remove(boxes[i])  # the tag may fall back to the face's own top edge
        _tag(out, _label_text(face, opts), (x1, y1, x2, y2), s, color, taken)
        taken.append(boxes[i])
        if opts.bars and face.scores:
            _bars(out, face.scores, (x1, y1, x2, y2), s, taken)
    return out


def _label_text(face, opts: AnnotatorOptions) -> str:
    text = f"{face.emotion} {face.confidence:.0%}" if face.emotion else f"face {face.det_score:.2f}"
    if opts.track_ids and face.track_id is not None:
        text = f"#{face.track_id} {text}"
    return text


def _tag(img, text: str, box, s: float, color, taken: list) -> None:
    """A filled label tag above the box (else below, else inside its top edge), not covering other faces or tags."""
    x1, y1, x2, y2 = box
    font = min(max(0.45 * s, (y2 - y1) / 260.0), 1.6 * s)
    th = max(1, round(font * 2))
    (tw, tt), base = cv2.getTextSize(text, _FONT, font, th)
    pad = max(2, int(3 * s))
    wt, ht = tw + 2 * pad, tt + base + 2 * pad
    cands = [(x1, y1 - ht), (x1, y2), (x1, y1), (x2 - wt, y1 - ht), (x2 - wt, y2)]
    cands += [(x1, y1 - ht - k * ht) for k in range(1, 4)] + [(x1, y2 + k * ht) for k in range(1, 4)]
    at = _place(wt, ht, cands, taken, (img.shape[1], img.shape[0]))
    if at is None:  # crowded: stay on the face's own top edge, overlaps allowed
        at = (int(max(0, min(x1, img.shape[1] - wt))), int(max(0, min(y1, img.shape[0] - ht))))
    x, y = at
    cv2.rectangle(img, (x, y), (x + wt, y + ht), color, -1)
    cv2.putText(img, text, (x + pad, y + pad + tt), _FONT, font, text_color_for(color), th, cv2.LINE_AA)
    taken.append((x, y, x + wt, y + ht))


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


def _bars(img, scores: dict[str, float], box, s: float, taken: list) -> None:
    """A bar chart about as tall as the face, right of the box (else left), only where it covers nothing."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = box
    face_w, face_h = x2 - x1, y2 - y1
    names = display_order(list(scores))
    row = max(6, min(face_h // max(1, len(names)), int(22 * s)))
    font = row / 40.0
    longest = max(names, key=len)[:8]
    label_w = cv2.getTextSize(longest, _FONT, font, 1)[0][0] + 4 if row >= 9 else 0
    bar_w = max(24, int(0.8 * face_w))
    total_w, total_h = label_w + bar_w + 4, row * len(names)
    gap = int(4 * s)
    at = _place(total_w, total_h, [(x2 + gap, y1), (x1 - gap - total_w, y1), (x2 + gap, y2 - total_h),
                                   (x1 - gap - total_w, y2 - total_h)], taken, (w, h))
    if at is None or total_w > w or total_h > h:
        return
    x0, y0 = at
    xe, ye = min(w, x0 + total_w), min(h, y0 + total_h)
    region = img[y0:ye, x0:xe]
    region[:] = (region.astype(np.uint16) * 35 // 100).astype(np.uint8)  # darken behind the bars
    for k, name in enumerate(names):
        y = y0 + k * row
        color = EMOTION_COLORS.get(name, _DEFAULT)
        cv2.rectangle(img, (x0 + label_w, y + 1), (x0 + label_w + int(bar_w * float(scores[name])), y + row - 2),
                      color, -1)
        if label_w:
            cv2.putText(img, name[:8], (x0 + 2, y + row - max(2, row // 5)), _FONT, font, (255, 255, 255), 1,
                        cv2.LINE_AA)
    taken.append((x0, y0, xe, ye))
