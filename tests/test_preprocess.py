"""The one preprocessing definition: every path that feeds a model goes through it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens.models import resolve_spec
from affectlens.models.spec import InputSpec
from affectlens.preprocess import fit_crops, to_model_input

GRAY = InputSpec("input", (48, 48), "gray", 1 / 255, (0.5,), (0.25,))
RGB = InputSpec("input", (32, 40), "rgb", 1 / 255, (0.1, 0.2, 0.3), (0.5, 0.5, 0.5))


def _crops(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_gray_model_input_is_scaled_and_normalised():
    crops = _crops((2, 48, 48))
    x = to_model_input(crops, GRAY)
    assert x.shape == (2, 1, 48, 48) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], (crops / 255 - 0.5) / 0.25, atol=1e-5)


def test_bgr_crops_for_a_gray_model_use_opencvs_gray():
    bgr = _crops((1, 48, 48, 3))
    gray = cv2.cvtColor(bgr[0], cv2.COLOR_BGR2GRAY)[None]
    np.testing.assert_array_equal(to_model_input(bgr, GRAY), to_model_input(gray, GRAY))


def test_rgb_model_gets_channels_swapped_and_its_size():
    bgr = _crops((3, 64, 80, 3))
    x = to_model_input(bgr, RGB)
    assert x.shape == (3, 3, 32, 40)
    fitted = fit_crops(bgr, (32, 40))
    np.testing.assert_allclose(x[:, 0], (fitted[..., 2] / 255 - 0.1) / 0.5, atol=1e-5)  # R first


@pytest.mark.parametrize("src, interp", [((96, 96), cv2.INTER_AREA), ((24, 24), cv2.INTER_LINEAR)])
def test_fit_crops_shrinks_by_area_and_enlarges_bilinearly(src, interp):
    crops = _crops((2, *src))
    expected = np.stack([cv2.resize(c, (48, 48), interpolation=interp) for c in crops])
    np.testing.assert_array_equal(fit_crops(crops, (48, 48)), expected)
    assert fit_crops(crops[:0], (48, 48)).shape[0] == 0


@pytest.mark.parametrize("shape", [(48, 48), (1, 48, 48, 4), (1, 48, 48, 1), (2, 1, 48, 48, 3)])
def test_bad_shapes_are_refused_with_the_shape(shape):
    with pytest.raises(ValueError, match=r"got shape"):
        to_model_input(np.zeros(shape, np.uint8), GRAY)


def test_shipped_specs_feed_their_models_the_same_way():
    spec = resolve_spec("fer-vgg48s")
    x = to_model_input(_crops((1, 48, 48)), spec.input)
    assert x.shape == (1, spec.input.channels, *spec.input.size_hw)
