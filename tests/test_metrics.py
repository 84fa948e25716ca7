"""Metrics used by evaluation and training reports, on small hand-checked inputs."""

from __future__ import annotations

import numpy as np
import pytest

from affectlens.metrics import classification_report, expected_calibration_error, kl_divergence


def test_kl_divergence_matches_the_definition_and_ignores_empty_classes():
    votes = np.array([[0.6, 0.4, 0.0], [1.0, 0.0, 0.0]])
    probs = np.array([[0.5, 0.25, 0.25], [0.8, 0.1, 0.1]])
    expected = (0.6 * np.log(0.6 / 0.5) + 0.4 * np.log(0.4 / 0.25) + np.log(1 / 0.8)) / 2
    assert kl_divergence(votes, probs) == pytest.approx(expected)
    assert kl_divergence(probs, probs) == pytest.approx(0.0, abs=1e-12)


def test_kl_divergence_of_a_confident_miss_is_large_but_finite():
    value = kl_divergence(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    assert np.isfinite(value) and value == pytest.approx(-np.log(1e-12))


def test_ece_is_zero_when_confidence_equals_accuracy_and_grows_with_overconfidence():
    true = np.array([0, 0, 0, 1])  # 3 of 4 right at confidence 0.75
    calibrated = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(calibrated, true) == pytest.approx(0.0)
    overconfident = np.array([[0.95, 0.05]] * 4)
    assert expected_calibration_error(overconfident, true) == pytest.approx(0.20)


def test_classification_report_counts_per_class():
    probs = np.eye(3)[[0, 0, 1, 2, 2, 2]]
    true = np.array([0, 1, 1, 2, 2, 0])
    rep = classification_report(probs, true, ("a", "b", "c"))
    assert rep["accuracy"] == pytest.approx(4 / 6)
    assert rep["per_class_recall"]["b"] == pytest.approx(0.5)
    assert rep["per_class_recall"]["c"] == pytest.approx(1.0)
