"""int8 export: the classifier heads and everything after them stay in float."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

onnx = pytest.importorskip("onnx")  # the dev extra installs it

from affectlens.errors import ModelLoadError  # noqa: E402
from affectlens.models.registry import WEIGHTS_DIR  # noqa: E402
from affectlens.training.quantize import float_tail  # noqa: E402

INT8 = sorted(WEIGHTS_DIR.glob("*-int8.onnx"))


def test_float_tail_is_the_heads_and_what_follows_them():
    model = onnx.load(str(WEIGHTS_DIR / "fer-vgg48s.onnx"))
    ops = {n.name: n.op_type for n in model.graph.node}
    tail = float_tail(model)
    assert sorted({ops[name] for name in tail}) == ["Add", "Gemm", "Mul", "Softmax"]
    assert sum(ops[name] == "Gemm" for name in tail) == 2  # the face and its mirror image
    assert not any(ops[name] == "Conv" for name in tail)


def test_float_tail_needs_a_head():
    model = onnx.load(str(WEIGHTS_DIR / "fer-vgg48s.onnx"))
    for node in [n for n in model.graph.node if n.op_type == "Gemm"]:
        node.op_type = "MatMul"
    with pytest.raises(ModelLoadError, match="Gemm"):
        float_tail(model)


def test_int8_models_are_shipped():
    assert INT8, "no int8 model shipped"  # else the parametrised test below would run no case


@pytest.mark.parametrize("path", INT8, ids=lambda p: p.stem)
def test_shipped_int8_models_keep_float_probabilities(path):
    """Quantised after the head, probabilities came in steps of 1/255 that summed to 0.996."""
    model = onnx.load(str(path))
    ops = {n.name: n.op_type for n in model.graph.node}
    quantised = [name for name in float_tail(model) if ops[name] == "QuantizeLinear"]
    x = np.random.default_rng(0).normal(0, 1, (8, 1, 48, 48)).astype(np.float32)
    probs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    steps = probs * 255
    assert np.abs(steps - np.round(steps)).max() > 0.01  # not on the 8-bit grid
    assert quantised == []
