"""Scoring: the shipped models reach the figures their specs state (whole PrivateTest split);
reports, plots and face-folder evaluation."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from affectlens.evaluate import evaluate_fer2013, format_report
from affectlens.labels import EMOTIONS
from conftest import FER2013, need


#: The model trained to FER-2013's own labels, kept by name for benchmark comparison.
FER2013_MODEL = "fer-vgg48s-ens-zoom-int8"


@pytest.fixture(scope="module")
def fer_classifier():
    from affectlens.classifier import EmotionClassifier

    return EmotionClassifier(FER2013_MODEL)


@pytest.fixture(scope="module")
def private_report():
    return _scored(FER2013_MODEL, "fer2013")  # the same evaluation the shipped-model checks use, run once


def test_fer2013_model_reaches_its_stated_accuracy(private_report, fer_classifier):
    stated = fer_classifier.spec.metrics["fer2013_private_test"]["accuracy"]
    assert private_report["n"] == 3589
    assert private_report["accuracy"] >= stated - 1e-3
    assert private_report["accuracy"] >= 0.731  # the fine-tuned EfficientNet-B0 (issue 3's target)
    assert private_report["macro_f1"] >= 0.70 and private_report["ece"] <= 0.03


def test_report_contents(private_report):
    r = private_report
    assert set(r["per_class_recall"]) == set(EMOTIONS)
    assert sum(map(sum, r["confusion_matrix"])) == 3589
    assert [sum(row) for row in r["confusion_matrix"]] == [491, 55, 528, 879, 626, 594, 416]
    assert 0 < r["macro_f1"] <= r["accuracy"] + 0.1
    assert 0 <= r["ece"] <= 0.03  # the calibration target, after the folded-in temperature
    assert r["ece_before_temperature"] >= 0 and r["temperature"] == r["temperature"] > 0
    ours = [row for row in r["comparison"] if row["ours"]]
    assert len(ours) == 1 and ours[0]["accuracy_pct"] == round(100 * r["accuracy"], 2)
    accs = [row["accuracy_pct"] for row in r["comparison"]]
    assert accs == sorted(accs, reverse=True) and len(accs) >= 6
    text = format_report(r)
    assert "PrivateTest" in text and "disgust" in text
    assert "against published FER-2013 results" in text and "Residual Masking Network" in text
    assert "before temperature" in text


def test_uncalibrated_undoes_a_folded_temperature_exactly():
    from affectlens.evaluate import uncalibrated

    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (50, 7))

    def softmax(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    for t in (0.5, 1.0, 1.7):
        np.testing.assert_allclose(uncalibrated(softmax(z / t), t), softmax(z), atol=1e-5)  # log clamp at 1e-12
    assert not np.allclose(uncalibrated(softmax(z / 1.7), 1.0), softmax(z))


def test_ferplus_report():
    from affectlens.classifier import EmotionClassifier
    from affectlens.evaluate import evaluate_ferplus

    # a 7-class model scored on FER+ (the fast single network: the report is what is tested here)
    r = evaluate_ferplus(EmotionClassifier("fer-vgg48s-int8"), need(FER2013), "PrivateTest")
    assert "7 of 8 classes" in r["protocol"] and "contempt" in r["protocol"]
    assert r["accuracy"] > 0.65 and 0 < r["kl_divergence"] < 2
    assert r["comparison"][0]["accuracy_pct"] >= r["comparison"][-1]["accuracy_pct"]
    assert any("Barsoum" in row["model"] for row in r["comparison"])
    ours = next(row for row in r["comparison"] if row["ours"])
    assert ours["like_for_like"] is False and "not like for like" in ours["model"]


def test_comparison_is_like_for_like_only_on_all_eight_fer_plus_classes():
    from affectlens.evaluate import comparison_rows

    report = {"dataset": "FER+", "model": "m", "accuracy": 0.9}
    eight = next(r for r in comparison_rows({**report, "labels": list("abcdefgh")}) if r["ours"])
    seven = next(r for r in comparison_rows({**report, "labels": list("abcdefg")}) if r["ours"])
    assert eight["like_for_like"] and eight["model"] == "m (this run)"
    assert not seven["like_for_like"] and "7 of 8 classes" in seven["model"]
    fer = next(r for r in comparison_rows({**report, "dataset": "FER-2013", "labels": list("abcdefg")}) if r["ours"])
    assert fer["like_for_like"]


def test_plots_are_written(private_report, tmp_path):
    import cv2

    from affectlens.evaluate import public, write_plots

    files = write_plots(private_report, tmp_path)
    for path in files.values():
        img = cv2.imread(path)
        assert img is not None and img.shape[0] > 300
    assert not any(k.startswith("_") for k in public(private_report))


SHIPPED = __import__("affectlens.models", fromlist=["available_models"]).available_models()


#: Faces the fp32 reference of an int8 ensemble is scored on in the default run (about 50 s each on
#: 2 cores for the whole split; its full-split figures are checked with AFFECTLENS_FULL_EVAL=1):
#: the int8 files, the ones that run by default on x86, and single networks use the whole split.
REFERENCE_FACES = 1200
FULL_EVAL = os.environ.get("AFFECTLENS_FULL_EVAL") == "1"


def _scored(name: str, dataset: str, limit: int | None = None) -> dict:
    """A shipped model's report on the test split (``fer2013`` or ``ferplus``; the first ``limit``
    faces, or all), once per run."""
    return _scored_once(name, dataset, limit)


@functools.lru_cache(maxsize=None)
def _scored_once(name: str, dataset: str, limit: int | None) -> dict:
    from affectlens.classifier import EmotionClassifier
    from affectlens.evaluate import evaluate_ferplus

    evaluate = evaluate_ferplus if dataset == "ferplus" else evaluate_fer2013
    return evaluate(EmotionClassifier(name), need(FER2013), "PrivateTest", limit=limit)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_reaches_the_figures_its_spec_states(name):
    """No later change (weights, preprocessing, alignment of crops) can silently lower them."""
    from affectlens.models import resolve_spec

    if f"{name}-int8" in SHIPPED and "-ens" in name and not FULL_EVAL:
        pytest.skip(f"{name}: fp32 reference of {name}-int8, scored on {REFERENCE_FACES} faces by the int8 "
                    "agreement test; its full-split figures with AFFECTLENS_FULL_EVAL=1")
    metrics = resolve_spec(name).metrics
    assert metrics, f"{name}: spec states no metrics"
    if "fer2013_private_test" in metrics:
        r = _scored(name, "fer2013")
        assert r["accuracy"] >= metrics["fer2013_private_test"]["accuracy"] - 1e-3
    if "ferplus_private_test" in metrics:
        r = _scored(name, "ferplus")
        assert r["n"] == metrics["ferplus_private_test"]["n"]
        assert r["accuracy"] >= metrics["ferplus_private_test"]["accuracy"] - 1e-3
        if name.startswith("ferplus-vgg48s-ens-zoom"):  # the FER+ models meant to meet issue 3's FER+ target
            assert r["accuracy"] >= 0.89 and r["ece"] <= 0.03 and r["kl_divergence"] <= 0.42


@pytest.mark.parametrize("name", [n for n in SHIPPED if n.endswith("-int8")])
def test_int8_model_agrees_with_its_fp32_model_on_this_cpu(name):
    """Issue 15: int8 files made for one CPU lost 4.7 points on CPUs without VNNI. On whatever
    CPU runs this test, each int8 file must give its fp32 model's top label on >= 99% of the
    test faces (for ensembles the first REFERENCE_FACES of the split, all with AFFECTLENS_FULL_EVAL=1) and stay
    within 0.3 points of its accuracy there."""
    from affectlens.cpu import cpu_info
    from affectlens.models import resolve_spec

    dataset = "ferplus" if "contempt" in resolve_spec(name).labels else "fer2013"
    limit = None if FULL_EVAL or "-ens" not in name else REFERENCE_FACES  # single networks: whole split
    q, ref = _scored(name, dataset), _scored(name.removesuffix("-int8"), dataset, limit)
    n = len(ref["_true"])  # the int8 file's whole-split run, cut to the faces its reference saw
    assert np.array_equal(q["_true"][:n], ref["_true"])
    q_top = q["_probs"][:n].argmax(1)
    agreement = float((q_top == ref["_probs"].argmax(1)).mean())
    q_acc = float((q_top == q["_true"][:n]).mean())
    where = cpu_info().describe()
    assert agreement >= 0.99, f"{name}: {agreement:.2%} top-1 agreement with fp32 on {n} faces, {where}"
    assert abs(q_acc - ref["accuracy"]) <= 0.003, f"{name}: {q_acc:.2%} vs {ref['accuracy']:.2%} on {n} faces, {where}"


def test_int8_models_are_shipped_with_their_fp32_reference():
    int8 = [n for n in SHIPPED if n.endswith("-int8")]
    assert int8 and all(n.removesuffix("-int8") in SHIPPED for n in int8)


def test_folder_scores_match_the_same_faces_scored_as_fer2013(classifier, tmp_path):
    from affectlens.datasets import load_fer2013
    from affectlens.evaluate import evaluate_folder, fer2013_probs
    from conftest import write_face_folder

    split = load_fer2013(need(FER2013), ("PrivateTest",))["PrivateTest"]
    written = write_face_folder(tmp_path, split.images, split.labels, per_class=25)
    report = evaluate_folder(classifier, str(tmp_path), "all")
    assert report["n"] == len(written) == 7 * 25 and report["skipped_files"] == []
    images = np.stack([img for img, _ in written.values()])
    true = np.array([EMOTIONS.index(name) for _, name in written.values()])
    expected = float((fer2013_probs(classifier, images).argmax(1) == true).mean())
    assert report["accuracy"] == pytest.approx(expected, abs=1e-9)
    assert 0.45 < report["accuracy"] < 0.95
    assert report["comparison"] == [] and "against published" not in format_report(report)


def test_cli_evaluates_a_folder_and_refuses_labels_the_model_lacks(tmp_path):
    import json
    import subprocess
    import sys

    from affectlens.datasets import load_fer2013
    from conftest import write_face_folder

    split = load_fer2013(need(FER2013), ("PublicTest",))["PublicTest"]
    write_face_folder(tmp_path / "ok", split.images, split.labels, per_class=6)
    cmd = [sys.executable, "-m", "affectlens", "evaluate"]
    proc = subprocess.run(cmd + ["--folder", str(tmp_path / "ok"), "--split", "all", "--json", "-"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n"] == 42
    (tmp_path / "ok" / "yawn").mkdir()
    (tmp_path / "ok" / "yawn" / "a.png").write_bytes((tmp_path / "ok" / "happy").glob("*.png").__next__().read_bytes())
    proc = subprocess.run(cmd + ["--folder", str(tmp_path / "ok"), "--split", "all"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "['yawn'] are not among" in proc.stderr and "Traceback" not in proc.stderr


def test_faces_in_photos_lays_faces_into_grey_cells():
    from affectlens.evaluate import faces_in_photos

    faces = np.stack([np.full((48, 48), 10 * k, np.uint8) for k in range(17)])
    laid = list(faces_in_photos(faces, face_px=96, cell_px=128, grid=4))
    assert [len(where) for _, where in laid] == [16, 1]
    photo, where = laid[0]
    assert photo.shape == (512, 512, 3) and photo[0, 0, 0] == 128
    i, x, y = where[5]  # row 1, column 1
    assert (i, x, y) == (5, 128 + 64, 128 + 64) and photo[int(y), int(x), 0] == 50
