"""Combining exported models into one ensemble ONNX (ONNX + ONNX Runtime only, no torch)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("onnx")  # the dev extra installs it; without it the graph cannot be built

from affectlens.errors import ModelLoadError  # noqa: E402
from affectlens.models.registry import WEIGHTS_DIR  # noqa: E402
from affectlens.training.combine import (combine_graph, fit_temperature_np, load_member,  # noqa: E402
                                         search_weights, zoom_images, zoom_matrix)

VGG = WEIGHTS_DIR / "fer-vgg48s.onnx"


def _run(model, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["probs"], {"input": x})[0]


def _member_probs(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["probs"], {"input": x})[0]


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(0, 1, (16, 1, 48, 48)).astype(np.float32)


def test_a_model_combined_with_itself_gives_its_own_probabilities(x):
    member = load_member(VGG)
    model = combine_graph([member, member], [1.0, 1.0], temperature=1.0)
    got = _run(model, x)
    np.testing.assert_allclose(got, _member_probs(VGG, x), atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_temperature_and_weights_change_the_output_as_stated(x):
    fp32, int8 = load_member(VGG), load_member(WEIGHTS_DIR / "fer-vgg48s-int8.onnx")
    p_a, p_b = _member_probs(VGG, x), _member_probs(WEIGHTS_DIR / "fer-vgg48s-int8.onnx", x)
    logits = 0.25 * np.log(p_a) + 0.75 * np.log(p_b)
    z = logits / 2.0
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = _run(combine_graph([fp32, int8], [1.0, 3.0], temperature=2.0), x)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_members_with_other_normalisation_get_the_input_renormalised(tmp_path, x):
    """A member whose spec says mean 0, std 1 must see raw [0, 1] pixels, computed in-graph from
    the first member's normalised input."""
    other = tmp_path / "raw-input.onnx"
    shutil.copy(VGG, other)
    spec = json.loads(VGG.with_suffix(".json").read_text())
    ref_mean, ref_std = spec["input"]["mean"][0], spec["input"]["std"][0]
    spec.update(name="raw-input", file=other.name)
    spec["input"].update(mean=[0.0], std=[1.0])
    other.with_suffix(".json").write_text(json.dumps(spec))
    model = combine_graph([load_member(VGG), load_member(other)], [0.0, 1.0])
    raw = x * ref_std + ref_mean
    np.testing.assert_allclose(_run(model, x), _member_probs(VGG, raw), atol=1e-5)


def test_zoom_view_matches_opencv_and_keeps_the_centre():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (48, 48)).astype(np.float32)
    ref = cv2.warpAffine(img, cv2.getRotationMatrix2D((23.5, 23.5), 0, 1.1), (48, 48), flags=cv2.INTER_LINEAR)
    np.testing.assert_allclose(zoom_images(img, 1.1), ref, atol=0.01)
    np.testing.assert_allclose(zoom_matrix(48, 1.25).sum(1), 1.0, atol=1e-6)  # interpolation, no gain
    np.testing.assert_allclose(zoom_images(img, 1.0), img)
    with pytest.raises(ValueError, match="zoom"):
        zoom_matrix(48, 0.9)


def test_zoom_views_average_the_members_log_probabilities(x):
    """With zoom 1.1 the graph returns softmax(mean(log p(x), log p(zoom(x)))) for one member:
    both views run as one batch inside the graph and are regrouped per face."""
    got = _run(combine_graph([load_member(VGG)], [1.0], temperature=1.0, zooms=(1.1,)), x)
    z = (np.log(_member_probs(VGG, x)) + np.log(_member_probs(VGG, zoom_images(x, 1.1)))) / 2
    expected = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(got, expected / expected.sum(1, keepdims=True), atol=1e-5)
    assert not np.allclose(got, _member_probs(VGG, x), atol=1e-3)  # the view changed something


def test_incompatible_or_damaged_members_are_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="labels"):
        combine_graph([load_member(VGG), load_member(WEIGHTS_DIR / "ferplus-vgg48s.onnx")], [1, 1])
    damaged = tmp_path / "fer-vgg48s.onnx"
    damaged.write_bytes(VGG.read_bytes()[:-10])
    shutil.copy(VGG.with_suffix(".json"), damaged.with_suffix(".json"))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_member(damaged)
    with pytest.raises(ValueError, match="weight"):
        combine_graph([load_member(VGG)], [1.0, 2.0])


def test_fit_temperature_recovers_the_generating_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (20000, 7))
    z = logits / 2.5
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in p])
    assert fit_temperature_np(logits, labels) == pytest.approx(2.5, rel=0.08)


def test_search_weights_prefers_the_informative_member():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 7, 2000)
    good = np.log(np.full((2000, 7), 0.05))
    good[np.arange(2000), labels] = np.log(0.7)
    good[:600] = rng.normal(0, 1, (600, 7))  # right on 70% of rows only
    noise = rng.normal(0, 1, (2000, 7))
    w = search_weights([noise, good], labels)
    assert w[1] > w[0] and sum(w) == pytest.approx(1.0)
