"""Finding and loading models: names, paths, and every way a model file can be bad."""

from __future__ import annotations

import json
import shutil

import pytest

from affectlens.classifier import EmotionClassifier
from affectlens.errors import ModelLoadError
from affectlens.cpu import cpu_info
from affectlens.labels import EMOTIONS
from affectlens.models import DEFAULT_MODEL, WEIGHTS_DIR, available_models, load_spec, resolve_spec, select_variant


@pytest.fixture
def model_copy(tmp_path):
    for ext in (".onnx", ".json"):
        shutil.copy(WEIGHTS_DIR / f"{DEFAULT_MODEL}{ext}", tmp_path / f"{DEFAULT_MODEL}{ext}")
    return tmp_path


def test_default_model_is_shipped_with_its_spec():
    assert DEFAULT_MODEL in available_models() and f"{DEFAULT_MODEL}-int8" in available_models()
    spec = resolve_spec()
    assert spec.name == select_variant()[0] and spec.model_path.is_file()
    assert spec.model_path.stat().st_size < 30 * 2**20
    assert set(EMOTIONS) <= set(spec.labels)


def test_default_variant_follows_this_cpus_int8_path():
    name, reason = select_variant()
    x86_int8 = cpu_info().int8_path in ("avx2", "vnni", "amx")
    assert name == (f"{DEFAULT_MODEL}-int8" if x86_int8 else DEFAULT_MODEL)
    assert cpu_info().int8_path in reason


@pytest.mark.parametrize("name, precision, expected", [
    (None, "fp32", DEFAULT_MODEL),
    (None, "int8", f"{DEFAULT_MODEL}-int8"),
    ("fer-vgg48s", "auto", "fer-vgg48s"),
    ("fer-vgg48s", "int8", "fer-vgg48s-int8"),
    ("fer-vgg48s-int8", "fp32", "fer-vgg48s"),
    ("fer-vgg48s-int8", "auto", "fer-vgg48s-int8"),
])
def test_select_variant_table(name, precision, expected):
    assert select_variant(name, precision)[0] == expected


@pytest.mark.parametrize("name, precision, message", [
    (None, "bf16", "precision must be one of auto, int8, fp32"),
    ("ferplus-vgg48s", "int8", "ferplus-vgg48s: has no shipped int8 variant"),
])
def test_select_variant_refuses(name, precision, message):
    with pytest.raises(ValueError, match=message):
        select_variant(name, precision)


def test_spec_onnx_and_folder_paths_resolve(model_copy):
    for ref in (model_copy / f"{DEFAULT_MODEL}.json", model_copy / f"{DEFAULT_MODEL}.onnx", model_copy):
        spec = resolve_spec(ref)
        assert spec.root == model_copy
        assert spec.spec_path == model_copy / f"{DEFAULT_MODEL}.json"
        assert "spec_path" not in spec.to_dict() and "root" not in spec.to_dict()


def test_unknown_name_lists_the_shipped_models():
    with pytest.raises(ModelLoadError, match=f"no-such-model: unknown model; shipped models: .*{DEFAULT_MODEL}"):
        resolve_spec("no-such-model")


def test_wrong_sha256_names_the_file(model_copy):
    onnx = model_copy / f"{DEFAULT_MODEL}.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=rf"{onnx.name}: sha256 mismatch"):
        EmotionClassifier(model_copy / f"{DEFAULT_MODEL}.json")


def test_unreadable_model_with_matching_sha_names_the_file(model_copy):
    onnx = model_copy / f"{DEFAULT_MODEL}.onnx"
    onnx.write_bytes(b"this is not an onnx model")
    spec_path = model_copy / f"{DEFAULT_MODEL}.json"
    raw = json.loads(spec_path.read_text())
    from affectlens.models import sha256_of
    raw["sha256"] = sha256_of(onnx)
    spec_path.write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=rf"{onnx.name}: ONNX Runtime cannot load the model"):
        EmotionClassifier(spec_path)


def test_missing_model_file(model_copy):
    (model_copy / f"{DEFAULT_MODEL}.onnx").unlink()
    with pytest.raises(ModelLoadError, match="model file not found"):
        EmotionClassifier(model_copy / f"{DEFAULT_MODEL}.json")


def test_onnx_without_spec_is_refused(model_copy):
    (model_copy / f"{DEFAULT_MODEL}.json").unlink()
    with pytest.raises(ModelLoadError, match="no spec JSON beside the model"):
        resolve_spec(model_copy / f"{DEFAULT_MODEL}.onnx")


@pytest.mark.parametrize("content, message", [
    ("{not json", "unreadable model spec"),
    ("[1, 2]", "expected a JSON object"),
    ('{"name": "x"}', "lacks the field 'input'"),
])
def test_malformed_specs(tmp_path, content, message):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(ModelLoadError, match=message):
        load_spec(p)


@pytest.mark.parametrize("value, expected", [
    (None, 0.0), (0, 0.0), (15, 15.0), (12.5, 12.5), (89.9, 89.9),
    ("15", "must be a number of degrees in \\[0, 90\\), got '15'"), (-1, "got -1"), (90, "got 90"),
    (True, "got True"), ([15], r"got \[15\]"), (float("nan"), "got nan"),
])
def test_roll_dead_band_is_read_and_checked(model_copy, value, expected):
    spec_path = model_copy / f"{DEFAULT_MODEL}.json"
    raw = json.loads(spec_path.read_text())
    raw["alignment"].pop("roll_dead_band_deg", None)
    if value is not None:
        raw["alignment"]["roll_dead_band_deg"] = value
    spec_path.write_text(json.dumps(raw))
    if isinstance(expected, float):
        assert load_spec(spec_path).alignment.roll_dead_band_deg == expected
    else:
        with pytest.raises(ModelLoadError, match=rf"{spec_path.name}: alignment.roll_dead_band_deg .*{expected}.*align fully"):
            load_spec(spec_path)


@pytest.mark.parametrize("band", [-1, 90, float("nan"), "15", True])
def test_an_alignment_built_in_code_is_checked_too(band):
    from affectlens.models.spec import AlignmentSpec

    with pytest.raises(ValueError, match="roll_dead_band_deg must be a number of degrees in"):
        AlignmentSpec(points_norm=((0.3, 0.4),) * 5, roll_dead_band_deg=band)


def test_shipped_classifiers_keep_15_degrees_of_roll():
    """All were trained on unaligned FER-2013 / FER+ crops (see docs/wild-eval.md)."""
    names = available_models()
    assert len(names) == 7
    assert {n: load_spec(WEIGHTS_DIR / f"{n}.json").alignment.roll_dead_band_deg for n in names} == dict.fromkeys(names, 15.0)


def test_spec_that_disagrees_with_the_graph(model_copy):
    spec_path = model_copy / f"{DEFAULT_MODEL}.json"
    raw = json.loads(spec_path.read_text())
    n_out = len(raw["labels"])
    raw["labels"] = raw["labels"][:6]
    spec_path.write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=f"outputs {n_out} classes, the spec lists 6"):
        EmotionClassifier(spec_path)


def _model_folder(tmp_path):
    """A folder laid out as `affectlens train --data` writes one: model.json/.onnx and model-int8.json/.onnx
    (here the shipped fer-vgg48s pair, renamed)."""
    folder = tmp_path / "my-model"
    folder.mkdir()
    for src, dst in (("fer-vgg48s", "model"), ("fer-vgg48s-int8", "model-int8")):
        spec = json.loads((WEIGHTS_DIR / f"{src}.json").read_text())
        shutil.copyfile(WEIGHTS_DIR / spec["file"], folder / f"{dst}.onnx")
        spec["file"] = f"{dst}.onnx"
        (folder / f"{dst}.json").write_text(json.dumps(spec))
    return folder


def test_a_model_folder_takes_int8_and_fp32_and_clear_errors(tmp_path):
    folder = _model_folder(tmp_path)
    assert select_variant(str(folder), "int8")[0] == str(folder / "model-int8.json")
    assert select_variant(str(folder), "fp32")[0] == str(folder / "model.json")
    assert select_variant(str(folder), "auto")[0] == str(folder)
    assert resolve_spec(select_variant(str(folder), "int8")[0]).name == "fer-vgg48s-int8"
    (folder / "model-int8.json").unlink()
    with pytest.raises(ValueError, match="no int8 file"):
        select_variant(str(folder), "int8")
    with pytest.raises(ModelLoadError, match="no such file or folder"):
        resolve_spec(str(tmp_path / "nosuch_dir"))
    data = tmp_path / "prepared"
    data.mkdir()
    (data / "dataset.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="a prepared data set, not a model.*affectlens train --data"):
        resolve_spec(str(data))
