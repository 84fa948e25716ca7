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


def _group_photo():
    import os

    insightface = __import__("pytest").importorskip("insightface")
    path = os.path.join(os.path.dirname(insightface.__file__), "data", "images", "t1.jpg")
    return load_image(need(__import__("pathlib").Path(path)))


def test_tags_and_bars_do_not_cover_other_faces_on_a_group_photo(recognizer):
    from affectlens.annotate import AnnotatorOptions

    img = _group_photo()
    faces = recognizer.predict(img)
    assert len(faces) >= 5
    out = annotate(img, faces, AnnotatorOptions(landmarks=False))
    for x1, y1, x2, y2 in faces.xyxy:
        bw, bh = x2 - x1, y2 - y1
        # the inner face (away from its own box edge and its own tag, which may sit on its top edge)
        ix1, iy1, ix2, iy2 = int(x1 + 0.1 * bw), int(y1 + 0.3 * bh), int(x2 - 0.1 * bw), int(y2 - 0.1 * bh)
        assert np.array_equal(out[iy1:iy2, ix1:ix2], img[iy1:iy2, ix1:ix2]), "a label or bar panel covers a face"
    assert np.mean(np.any(out != img, axis=2)) > 0.03, "bars were drawn somewhere"


def test_no_landmarks_on_blurred_faces(recognizer):
    from affectlens.annotate import AnnotatorOptions

    img = load_image(need(IMAGES / "single_face.jpg"))
    faces = recognizer.predict(img)
    with_lm = annotate(img, faces, AnnotatorOptions(bars=False, blur_faces=True, landmarks=True))
    without = annotate(img, faces, AnnotatorOptions(bars=False, blur_faces=True, landmarks=False))
    assert np.array_equal(with_lm, without)


def test_tag_text_contrasts_with_every_palette_colour():
    from affectlens.annotate import text_color_for
    from affectlens.labels import EMOTION_COLORS_BGR

    def lum(bgr):
        c = [v / 255 for v in bgr[::-1]]
        c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    for name, bgr in EMOTION_COLORS_BGR.items():
        a, b = lum(bgr), lum(text_color_for(bgr))
        ratio = (max(a, b) + 0.05) / (min(a, b) + 0.05)
        assert ratio >= 4.5, f"{name}: contrast {ratio:.1f} below WCAG AA"


@__import__("pytest").mark.parametrize("level", [20, 235])
def test_tag_is_legible_on_dark_and_light_footage(recognizer, level):
    """The tag is a filled box in the emotion colour: its text contrasts with it whatever the frame's brightness."""
    from affectlens.annotate import AnnotatorOptions

    img = load_image(need(IMAGES / "single_face.jpg"))
    faces = recognizer.predict(img)
    flat = np.full_like(img, level)
    out = annotate(flat, faces, AnnotatorOptions(bars=False, landmarks=False))
    x1, y1 = (int(v) for v in faces.xyxy[0][:2])
    tag = out[max(0, y1 - 60):y1, x1:x1 + 200].reshape(-1, 3).astype(int)
    colours = {tuple(c) for c in tag}
    from affectlens.labels import EMOTION_COLORS_BGR
    assert EMOTION_COLORS_BGR[faces[0].emotion] in colours
    assert (0, 0, 0) in colours or (255, 255, 255) in colours
