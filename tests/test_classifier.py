"""The ONNX emotion classifier driven by its spec."""

from __future__ import annotations

import numpy as np
import pytest

from affectlens.classifier import EmotionClassifier
from affectlens.preprocess import fit_crops
from affectlens.detection import RetinaFaceDetector
from affectlens.imageio import load_image
from affectlens.labels import EMOTIONS
from conftest import IMAGES, need


def test_labels_and_crop_size(classifier):
    assert set(EMOTIONS) <= set(classifier.labels) and classifier.labels[:7] == EMOTIONS
    assert classifier.crop_size_hw == tuple(classifier.spec.input.size_hw)


def test_probabilities_sum_to_one_and_batching_is_consistent(classifier):
    img = load_image(need(IMAGES / "multi_face.jpg"))
    lm = RetinaFaceDetector().detect(img).landmarks
    probs = classifier.classify(img, lm)
    assert probs.shape == (len(lm), len(classifier.labels)) and probs.dtype == np.float32
    assert np.allclose(probs.sum(1), 1, atol=1e-5) and (probs >= 0).all()
    one_by_one = np.concatenate([classifier.classify(img, lm[i:i + 1]) for i in range(len(lm))])
    assert np.allclose(one_by_one, probs, atol=1e-5)


def test_happy_face_is_happy(classifier):
    img = load_image(need(IMAGES / "single_face.jpg"))
    probs = classifier.classify(img, RetinaFaceDetector().detect(img).landmarks)
    assert EMOTIONS[int(probs[0].argmax())] == "happy"


def test_gray_and_bgr_crops_agree(classifier):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    bgr = np.repeat(gray[..., None], 3, axis=3)
    assert np.allclose(classifier.classify_crops(gray), classifier.classify_crops(bgr), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 48, 48, 2), (1, 48, 48, 4), (48, 48), (1, 1, 48, 48, 3)])
def test_wrong_crop_shape_is_refused(classifier, shape):
    with pytest.raises(ValueError, match="crops"):
        classifier.preprocess(np.zeros(shape, np.uint8))


def test_other_crop_sizes_are_fitted_by_the_one_preprocessing(classifier):
    big = np.random.default_rng(2).integers(0, 256, (2, 96, 96), dtype=np.uint8)
    fitted = fit_crops(big, classifier.crop_size_hw)
    assert fitted.shape == (2, 48, 48)
    assert np.array_equal(classifier.preprocess(big), classifier.preprocess(fitted))


def test_empty_batch(classifier):
    assert classifier.classify_crops(np.zeros((0, 48, 48, 3), np.uint8)).shape == (0, len(classifier.labels))


def test_batch_larger_than_batch_size(classifier):
    small = EmotionClassifier(classifier.spec, batch_size=4)
    crops = np.random.default_rng(1).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    assert np.allclose(small.classify_crops(crops), classifier.classify_crops(crops), atol=1e-5)


def test_align_leaves_the_specs_roll_dead_band(classifier):
    """A real face turned 30°: the crop is turned back by 30 − 15 = 15° only, as the spec says."""
    import cv2

    from affectlens.alignment import align_faces

    img = load_image(need(IMAGES / "single_face.jpg"))
    lm = RetinaFaceDetector().detect(img).landmarks[:1]
    centre = tuple(float(v) for v in lm[0].mean(0))
    turned = cv2.warpAffine(img, cv2.getRotationMatrix2D(centre, 30, 1.0), img.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    lm = RetinaFaceDetector().detect(turned).landmarks[:1]
    ali = classifier.spec.alignment
    assert ali.roll_dead_band_deg == 15
    crops = {band: align_faces(turned, lm, ali.points_norm, classifier.crop_size_hw, band) for band in (0, 15)}
    got = classifier.align(turned, lm)
    assert np.array_equal(got, crops[15])
    assert np.abs(got.astype(int) - crops[0].astype(int)).mean() > 10
