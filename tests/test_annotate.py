"""Drawing results."""

from __future__ import annotations

import numpy as np

from affectlens.annotate import annotate
from affectlens.faces import Faces
from conftest import IMAGES, need
from affectlens.imageio import load_image


def test_annotation_draws_on_a_copy(recognizer):
    img = load_image(need(IMAGES / "multi_face.jpg"))
    faces = recognizer.predict(img)
    out = annotate(img, faces)
    assert out.shape == img.shape and out is not img
    changed = np.any(out != img, axis=2)
    x1, y1, x2, y2 = (int(v) for v in faces.xyxy[0])
    assert changed[y1 - 1:y1 + 2, x1:x2].mean() > 0.5, "box edge drawn"
    assert changed.mean() < 0.5


def test_no_faces_leaves_the_image_unchanged():
    img = np.full((60, 80, 3), 127, np.uint8)
    assert np.array_equal(annotate(img, Faces.empty()), img)


def test_blur_faces_obscures_the_face_and_leaves_the_rest(recognizer):
    import cv2

    from affectlens.annotate import AnnotatorOptions

    img = load_image(need(IMAGES / "single_face.jpg"))
    faces = recognizer.predict(img)
    assert len(faces) >= 1
    plain = annotate(img, faces, AnnotatorOptions(landmarks=False, bars=False))
    blurred = annotate(img, faces, AnnotatorOptions(landmarks=False, bars=False, blur_faces=True))
    assert blurred.shape == img.shape
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in faces.xyxy[0])
    bw, bh = x2 - x1, y2 - y1
    # inside the box (away from its drawn edge): detail is gone and pixels differ strongly
    ix1, iy1, ix2, iy2 = int(x1 + 0.15 * bw), int(y1 + 0.15 * bh), int(x2 - 0.15 * bw), int(y2 - 0.15 * bh)
    orig_face = cv2.cvtColor(img[iy1:iy2, ix1:ix2], cv2.COLOR_BGR2GRAY)
    blur_face = cv2.cvtColor(blurred[iy1:iy2, ix1:ix2], cv2.COLOR_BGR2GRAY)
    detail = lambda g: cv2.Laplacian(g, cv2.CV_64F).var()  # noqa: E731
    assert detail(blur_face) < 0.05 * detail(orig_face)
    assert np.abs(blur_face.astype(float) - orig_face.astype(float)).mean() > 5
    # outside the grown box (10 %) plus a margin for drawings: identical to the unblurred annotation
    outside = np.ones((h, w), bool)
    m = 0.1
    outside[max(0, int(y1 - m * bh) - 1):int(y2 + m * bh) + 2, max(0, int(x1 - m * bw) - 1):int(x2 + m * bw) + 2] = False
    assert np.array_equal(blurred[outside], plain[outside])
    # and the unblurred annotation differs from the original only near the box and its label
    assert np.mean(np.any(plain != img, axis=2)) < 0.2
