"""5-point similarity alignment."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens.alignment import (FER2013_TEMPLATE, align_faces, limit_roll, limit_rolls, similarity_transform,
                                  similarity_transforms)


def test_similarity_transform_recovers_a_known_transform():
    src = np.array(FER2013_TEMPLATE) * 100
    ang, scale, t = np.deg2rad(20), 1.7, np.array([13.0, -4.0])
    rot = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = src @ rot.T + t
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-6) and np.allclose(m[:, 2], t, atol=1e-6)


def test_batched_transforms_equal_one_face_at_a_time_and_match_umeyama():
    # The batched complex fit must give what the SVD (Umeyama) solution gives, face by face,
    # including noisy, reflected-looking point sets where the reflection must be refused.
    rng = np.random.default_rng(3)
    dst = np.array(FER2013_TEMPLATE) * 48
    src = rng.uniform(0, 400, (40, 5, 2))
    src[:20] = (dst - 24) @ np.array([[2.0, -1.0], [1.0, 2.0]]).T + rng.uniform(50, 300, (20, 1, 2)) \
        + rng.normal(0, 3, (20, 5, 2))
    batched = limit_rolls(similarity_transforms(src, dst), src, dst, 15.0)
    for pts, m in zip(src, batched):
        mu_s, mu_d = pts.mean(0), dst.mean(0)
        u, sig, vt = np.linalg.svd((dst - mu_d).T @ (pts - mu_s))
        sign = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
        rot = u @ np.diag(sign) @ vt * (sig * sign).sum() / ((pts - mu_s) ** 2).sum()
        umeyama = np.hstack([rot, (mu_d - rot @ mu_s)[:, None]])
        assert np.allclose(similarity_transform(pts, dst), umeyama, atol=1e-9)
        assert np.allclose(limit_roll(umeyama, pts, dst, 15.0), m, atol=1e-9)


def test_coinciding_landmarks_are_refused():
    pts = np.full((2, 5, 2), 10.0)
    pts[0] = np.array(FER2013_TEMPLATE) * 100
    with pytest.raises(ValueError, match="coincide"):
        similarity_transforms(pts, np.array(FER2013_TEMPLATE) * 48)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_landmarks_that_are_not_numbers_are_refused(bad):
    pts = np.array(FER2013_TEMPLATE)[None] * 100
    pts[0, 2, 0] = bad
    with pytest.raises(ValueError, match="finite"):
        align_faces(np.zeros((200, 200, 3), np.uint8), pts, FER2013_TEMPLATE, (48, 48), 15.0)
    with pytest.raises(ValueError, match="expected"):
        similarity_transforms(np.ones((5, 5, 2)), np.ones((3, 5, 2)))


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


def _rotation(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _tilted_face(roll_deg: float, size: int = 96):
    """A textured image and five landmarks: the template (``size`` px crop) tilted by ``roll_deg``
    (positive = clockwise on screen, image y down) about its centroid and shifted; returns
    ``(image, landmarks, template_px)``."""
    rng = np.random.default_rng(7)
    img = cv2.GaussianBlur(rng.integers(0, 256, (240, 260, 3), dtype=np.uint8), (5, 5), 1.5)
    tpl = np.array(FER2013_TEMPLATE) * size
    centre = tpl.mean(0)
    pts = (tpl - centre) @ _rotation(roll_deg).T + np.array([131.0, 117.0])
    return img, pts, tpl


def _warp_expected(img, turn_back_deg: float, pts, tpl, size: int) -> np.ndarray:
    """The crop a transform that turns the face back by ``turn_back_deg`` (scale 1, landmark
    centroid onto template centroid) gives, built from the known geometry."""
    rot = _rotation(-turn_back_deg)
    m = np.hstack([rot, (tpl.mean(0) - rot @ pts.mean(0))[:, None]])
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _max_diff(a, b) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def test_a_face_tilted_within_the_dead_band_keeps_its_tilt():
    img, pts, tpl = _tilted_face(10.0)
    crop = align_faces(img, pts[None], FER2013_TEMPLATE, (96, 96), roll_dead_band_deg=15)[0]
    assert _max_diff(crop, _warp_expected(img, 0.0, pts, tpl, 96)) <= 1      # scale and shift only
    assert _max_diff(crop, _warp_expected(img, 10.0, pts, tpl, 96)) > 30     # not de-rotated


@pytest.mark.parametrize("roll_deg", [40.0, -40.0])
def test_a_face_tilted_beyond_the_dead_band_is_turned_back_by_the_excess(roll_deg):
    img, pts, tpl = _tilted_face(roll_deg)
    crop = align_faces(img, pts[None], FER2013_TEMPLATE, (96, 96), roll_dead_band_deg=15)[0]
    excess = np.sign(roll_deg) * 25.0
    assert _max_diff(crop, _warp_expected(img, excess, pts, tpl, 96)) <= 1
    assert _max_diff(crop, _warp_expected(img, roll_deg, pts, tpl, 96)) > 30


def test_a_zero_dead_band_aligns_fully_as_before():
    img, pts, tpl = _tilted_face(10.0)
    full = align_faces(img, pts[None], FER2013_TEMPLATE, (96, 96))[0]
    assert np.array_equal(align_faces(img, pts[None], FER2013_TEMPLATE, (96, 96), roll_dead_band_deg=0)[0], full)
    assert _max_diff(full, _warp_expected(img, 10.0, pts, tpl, 96)) <= 1
    m = similarity_transform(pts, tpl)
    assert limit_roll(m, pts, tpl, 0.0) is m


@pytest.mark.parametrize("roll_deg, band, kept_deg", [(40, 15, 25), (-40, 15, -25), (10, 15, 0), (-14.9, 15, 0),
                                                      (20, 0, 20), (30, 29.5, 0.5)])
def test_limit_roll_keeps_scale_and_centroid(roll_deg, band, kept_deg):
    src = np.array(FER2013_TEMPLATE) * 37.0 + 5.0
    dst = (src - src.mean(0)) @ (2.5 * _rotation(roll_deg)).T + np.array([300.0, 80.0])
    m = limit_roll(similarity_transform(src, dst), src, dst, band)
    assert np.degrees(np.arctan2(m[1, 0], m[0, 0])) == pytest.approx(kept_deg, abs=1e-6)
    assert np.hypot(m[0, 0], m[1, 0]) == pytest.approx(2.5)
    assert m[:, :2] @ src.mean(0) + m[:, 2] == pytest.approx(dst.mean(0))
