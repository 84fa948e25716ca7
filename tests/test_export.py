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
    v = manifest["verification"]
    assert v["passed"] and v["agreement"] >= 0.99 and v["photo_faces"] >= 1, v
    # the exported emotion model runs in ONNX Runtime with the spec's input name and label count
    sess = ort.InferenceSession(str(out / manifest["emotion_model"]), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [spec["input"]["name"]]
    assert sess.get_outputs()[0].shape[-1] == len(spec["labels"])
    return manifest


def test_portable_default_is_the_fp32_reference_of_an_int8_default():
    fp32 = DEFAULT_MODEL.removesuffix("-int8")
    want = fp32 if fp32 in available_models() else DEFAULT_MODEL
    assert portable_default() == want
    assert resolve_spec(want).labels == resolve_spec(DEFAULT_MODEL).labels


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
