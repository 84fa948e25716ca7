"""Distillation targets from an exported teacher (runs without torch: ONNX Runtime only)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from affectlens.classifier import EmotionClassifier
from affectlens.errors import ModelLoadError
from affectlens.labels import EMOTIONS
from affectlens.models.registry import WEIGHTS_DIR
from affectlens.training.distill import distillation_targets, teacher_probabilities
from conftest import FER2013, need


@pytest.fixture(scope="module")
def faces():
    from affectlens.datasets import load_fer2013

    split = load_fer2013(need(FER2013), ("PublicTest",))["PublicTest"]
    return split.images[:300], split.labels[:300]


def test_teacher_probabilities_match_the_classifier_and_are_cached(faces, tmp_path):
    images, labels = faces
    teacher = WEIGHTS_DIR / "fer-vgg48s.onnx"
    probs = teacher_probabilities(teacher, images, EMOTIONS, tmp_path)
    assert probs.shape == (len(images), 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    expected = EmotionClassifier("fer-vgg48s").classify_crops(images)
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    assert (probs.argmax(1) == labels).mean() > 0.55  # a real teacher, not noise
    cache = tmp_path / "teacher_probs.npz"
    assert cache.is_file()
    # the cache is used when the teacher is unchanged: tamper with it and see it come back
    with np.load(cache) as z:
        np.savez(cache, probs=np.full_like(z["probs"], 1 / 7), sha256=z["sha256"])
    assert np.allclose(teacher_probabilities(teacher, images, EMOTIONS, tmp_path), 1 / 7)


def test_a_different_teacher_invalidates_the_cache(faces, tmp_path):
    images, _ = faces
    a = teacher_probabilities(WEIGHTS_DIR / "fer-vgg48s.onnx", images, EMOTIONS, tmp_path)
    b = teacher_probabilities(WEIGHTS_DIR / "fer-vgg48s-int8.onnx", images, EMOTIONS, tmp_path)
    assert not np.array_equal(a, b)
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.9


def test_teacher_errors_name_the_file(faces, tmp_path):
    images, _ = faces
    with pytest.raises(ModelLoadError, match="labels"):
        teacher_probabilities(WEIGHTS_DIR / "ferplus-vgg48s.onnx", images, EMOTIONS, tmp_path)
    bad = tmp_path / "fer-vgg48s.onnx"
    bad.write_bytes((WEIGHTS_DIR / "fer-vgg48s.onnx").read_bytes()[:-10] + bytes(10))
    shutil.copy(WEIGHTS_DIR / "fer-vgg48s.json", tmp_path / "fer-vgg48s.json")
    with pytest.raises(ModelLoadError, match="fer-vgg48s.onnx.*sha256"):
        teacher_probabilities(bad, images, EMOTIONS, tmp_path)
    with pytest.raises(ModelLoadError, match="not found"):
        teacher_probabilities(tmp_path / "absent.onnx", images, EMOTIONS, tmp_path)


def test_distillation_targets_mix_teacher_and_labels():
    teacher = np.array([[0.6, 0.4, 0.0], [0.1, 0.1, 0.8]], np.float32)
    t = distillation_targets(teacher, np.array([1, 2]), None, 0.75)
    np.testing.assert_allclose(t, [[0.45, 0.55, 0.0], [0.075, 0.075, 0.85]], atol=1e-6)
    votes = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], np.float32)
    np.testing.assert_allclose(distillation_targets(teacher, np.array([0, 2]), votes, 0.5).sum(1), 1.0)
    np.testing.assert_allclose(distillation_targets(teacher, np.array([0, 2]), votes, 0.0), votes)
    with pytest.raises(ValueError, match="distill_alpha"):
        distillation_targets(teacher, np.array([0, 2]), None, 1.5)
