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
