"""5-point similarity alignment."""

from __future__ import annotations

import numpy as np

from affectlens.alignment import FER2013_TEMPLATE, align_faces, similarity_transform


def test_similarity_transform_recovers_a_known_transform():
    src = np.array(FER2013_TEMPLATE) * 100
    ang, scale, t = np.deg2rad(20), 1.7, np.array([13.0, -4.0])
    rot = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = src @ rot.T + t
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-6) and np.allclose(m[:, 2], t, atol=1e-6)


def test_landmarks_land_on_the_template():
    # Draw 5 bright dots at rotated, scaled positions, align, and find them at the template points.
    size = 48
    template = np.array(FER2013_TEMPLATE) * size
    ang, scale = np.deg2rad(-25), 4.0
    rot = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    pts = template @ rot.T + np.array([150.0, 90.0])
    img = np.zeros((400, 400), np.uint8)
    for x, y in pts:
        img[int(round(y)) - 4:int(round(y)) + 5, int(round(x)) - 4:int(round(x)) + 5] = 255
    crop = align_faces(img, pts[None], FER2013_TEMPLATE, (size, size))[0]
    assert crop.shape == (size, size)
    for x, y in template:
        assert crop[int(round(y)), int(round(x))] > 128


def test_no_faces_gives_an_empty_batch():
    out = align_faces(np.zeros((50, 50, 3), np.uint8), np.zeros((0, 5, 2)), FER2013_TEMPLATE, (48, 48))
    assert out.shape == (0, 48, 48, 3)
