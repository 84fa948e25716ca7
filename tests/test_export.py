"""``affectlens export``: bundles for on-device apps, run as a real subprocess and checked file by file."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import onnxruntime as ort
import pytest

from affectlens.export import portable_default
from affectlens.models.registry import DEFAULT_MODEL, available_models, resolve_spec
from conftest import IMAGES, need


def run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "affectlens", "export", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def check_bundle(out, fmt):
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == fmt
    for name, info in manifest["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == info["sha256"], name
    spec = json.loads((out / manifest["spec"]).read_text())
    assert spec["file"] == manifest["emotion_model"] and spec["labels"] == manifest["labels"]
    assert (out / "labels.txt").read_text().split() == spec["labels"]
    # every runtime must align as the source model does: its roll dead band travels with it
    source = resolve_spec(manifest["source_model"]["path"])
    assert spec["alignment"].get("roll_dead_band_deg", 0) == source.alignment.roll_dead_band_deg
    v = manifest["verification"]
    assert v["passed"] and v["agreement"] >= 0.99 and v["photo_faces"] >= 1, v
    # the exported emotion model runs in ONNX Runtime with the spec's input name and label count
    sess = ort.InferenceSession(str(out / manifest["emotion_model"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [spec["input"]["name"]]
    assert sess.get_outputs()[0].shape[-1] == len(spec["labels"])
    return manifest


def test_phone_bundles_default_to_the_fp32_file_select_variant_runs_on_arm():
    fp32 = DEFAULT_MODEL.removesuffix("-int8")
    want = fp32 if fp32 in available_models() else DEFAULT_MODEL
    assert portable_default() == want
    assert resolve_spec(want).labels == resolve_spec(DEFAULT_MODEL).labels
    assert not resolve_spec(want).name.endswith("-int8")


def test_onnx_bundle_is_complete_and_verified(tmp_path):
    need(IMAGES)
    r = run("--format", "onnx", "--out", tmp_path, "--model", "fer-vgg48s", "--verify-faces", "200")
    assert r.returncode == 0, r.stderr
    m = check_bundle(tmp_path, "onnx")
    assert m["model"] == "fer-vgg48s" and m["verification"]["fer2013_crops"] in (0, 200)
    assert "agreement 100.00%" in r.stdout


@pytest.mark.slow
def test_ort_bundle_has_the_operator_list_and_agrees(tmp_path):
    need(IMAGES)
    r = run("--format", "ort", "--out", tmp_path, "--model", "ferplus-vgg48s", "--verify-faces", "0")
    assert r.returncode == 0, r.stderr
    m = check_bundle(tmp_path, "ort")
    assert m["emotion_model"].endswith(".ort") and m["detector"].endswith(".ort")
    ops = (tmp_path / "required_operators.config").read_text()
    assert "ai.onnx;" in ops and "Conv" in ops and "/tmp" not in ops
    assert len(m["labels"]) == 8  # FER+: the label count comes from the spec


@pytest.mark.parametrize("args, code, message", [
    (("--format", "tflite"), 1, "tflite"),
    (("--format", "onnx", "--model", "no-such-model"), 2, "unknown model"),
])
def test_refused_exports_say_why(tmp_path, args, code, message):
    r = run(*args, "--out", tmp_path / "b")
    assert r.returncode == code and message in r.stderr, r.stderr


# ----- a customer's model folder (labels of its own) -------------------------------------------
OWN_LABELS = ["angry", "boredom", "fear", "happy", "confusion", "sad", "surprise"]


def _customer_folder(root, layout="NCHW", onnx_bytes=None):
    """``root/model.onnx`` + ``model.json`` as `affectlens train --out` writes them: the shipped
    `fer-vgg48s` graph (a real network, 7 outputs) under a spec with labels of a customer's own."""
    src = resolve_spec("fer-vgg48s")
    root.mkdir(parents=True)
    (root / "model.onnx").write_bytes(onnx_bytes or src.model_path.read_bytes())
    d = json.loads((src.root / "fer-vgg48s.json").read_text())
    d.update(name="mine", file="model.onnx", labels=OWN_LABELS,
             sha256=hashlib.sha256((root / "model.onnx").read_bytes()).hexdigest())
    d["input"]["layout"] = layout
    (root / "model.json").write_text(json.dumps(d))
    return root


def test_a_model_folder_with_its_own_labels_exports_to_a_bundle_every_runtime_reads(tmp_path):
    need(IMAGES)
    model = _customer_folder(tmp_path / "mine")
    out = tmp_path / "bundle"
    r = run("--format", "onnx", "--model", model, "--out", out, "--verify-faces", "0")
    assert r.returncode == 0, r.stderr
    assert "agreement 100.00%" in r.stdout
    m = check_bundle(out, "onnx")
    assert m["kind"] == "affectlens-bundle" and m["model"] == "mine" and m["labels"] == OWN_LABELS
    assert m["source_model"]["sha256"] == json.loads((model / "model.json").read_text())["sha256"]
    assert m["quality"]["default_min_quality"] == 0.3 and "not inner state" in m["notice"]
    spec = json.loads((out / m["spec"]).read_text())
    assert spec["input"]["channels"] == 1 and spec["input"]["layout"] == "NCHW"
    assert spec["thresholds"] == {"min_quality": 0.3, "detector": {"min_score": 0.6, "nms_iou": 0.4,
                                                                   "max_side_px": 1280, "coarse_side_px": 320}}
    # one colour per label: the palette's, and a deterministic one for the customer's own labels
    # (pinned in sdk/web/test/custom.test.mjs too: Python and the SDK compute the same colour)
    assert spec["palette"]["happy"] == "#fbc02d" and spec["palette"]["boredom"] == "#2eb843"
    assert spec["palette"]["confusion"] == "#b82ea8"
    # the bundle is a model folder for Python as well
    img = subprocess.run([sys.executable, "-m", "affectlens", "image", str(IMAGES / "single_face.jpg"), "--model",
                          str(out), "--json", str(tmp_path / "faces.json")], capture_output=True, text=True, timeout=300)
    assert img.returncode == 0, img.stderr
    assert json.loads((tmp_path / "faces.json").read_text())["labels"] == OWN_LABELS


def _nhwc_graph() -> bytes:
    """A small float32 NHWC classifier (N, 48, 48, 1) → 7 probabilities."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((48 * 48, 7), 1e-3, np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 48 * 48], np.int64), "shape")
    g = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=-1)], "nhwc",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 48, 48, 1])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 7])], [w, shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _no_spec(root):
    root.mkdir()
    (root / "model.onnx").write_bytes(resolve_spec("fer-vgg48s").model_path.read_bytes())
    return root


def _sha_mismatch(root):
    _customer_folder(root)
    (root / "model.onnx").write_bytes(resolve_spec("ferplus-vgg48s").model_path.read_bytes())
    return root


@pytest.mark.parametrize("make, code, message", [
    (_no_spec, 2, "no model spec (model.json) in this folder"),
    (_sha_mismatch, 2, "sha256 mismatch"),
    (lambda root: _customer_folder(root, layout="NHWC"), 1, "unsupported input layout 'NHWC'"),
    (lambda root: _customer_folder(root, onnx_bytes=_nhwc_graph()), 1, "unsupported input tensor(float) ['N', 48, 48, 1]"),
], ids=["folder-without-spec", "spec-onnx-sha-mismatch", "nhwc-in-spec", "nhwc-graph"])
def test_a_model_folder_that_cannot_be_exported_is_refused_naming_the_fix(tmp_path, make, code, message):
    model = make(tmp_path / "mine")
    r = run("--format", "onnx", "--model", model, "--out", tmp_path / "bundle")
    assert r.returncode == code and message in r.stderr, r.stderr
    assert not (tmp_path / "bundle").exists(), "nothing is written for a refused export"
