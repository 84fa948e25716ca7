"""Training for real faces: FER-2013 labels mixed into FER+ votes, fine-tuning from a shipped
ONNX model with frozen BatchNorm (needs PyTorch: the 'train' extra, and the shared FER data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from affectlens.classifier import EmotionClassifier  # noqa: E402
from affectlens.models.registry import WEIGHTS_DIR  # noqa: E402
from affectlens.training.config import TrainConfig, load_config  # noqa: E402
from affectlens.training.data import load_training_data, mix_fer2013_labels  # noqa: E402
from affectlens.training.nets import create_net  # noqa: E402
from affectlens.training.train import init_from_exported, train  # noqa: E402
from conftest import FER2013, need, write_face_folder  # noqa: E402

BASE = WEIGHTS_DIR / "ferplus-vgg48s.onnx"


def test_mixing_moves_a_share_of_each_target_to_the_fer2013_label():
    votes = np.array([[0, 0, 0, 0, 1.0, 0, 0, 0], [0, 0, 0, 0.5, 0.5, 0, 0, 0]], np.float32)
    out = mix_fer2013_labels(votes, np.array([5, 3]), 0.25)
    assert np.allclose(out.sum(1), 1.0)
    assert out[0, 4] == pytest.approx(0.75) and out[0, 5] == pytest.approx(0.25)
    assert out[1, 3] == pytest.approx(0.625) and out[1, 4] == pytest.approx(0.375)


def test_ferplus_training_targets_carry_the_fer2013_label_and_test_splits_stay_votes():
    data = need(FER2013)
    pure = load_training_data("ferplus", str(data))
    mixed = load_training_data("ferplus", str(data), fer2013_mix=0.3)
    tp, tm = pure.splits["Training"].targets, mixed.splits["Training"].targets
    assert tp.shape == tm.shape and np.allclose(tm.sum(1), 1.0, atol=1e-5)
    delta = tm - 0.7 * tp  # 0.3 on exactly one class: FER-2013's label for that face
    assert np.allclose(delta.max(1), 0.3, atol=1e-5) and np.allclose(delta.sum(1), 0.3, atol=1e-5)
    # FER-2013 and FER+ disagree on a good share of faces (the reason for mixing at all)
    disagree = float((delta.argmax(1) != pure.splits["Training"].labels).mean())
    assert 0.1 < disagree < 0.5
    assert np.array_equal(mixed.splits["PublicTest"].targets, pure.splits["PublicTest"].targets)


def test_fer2013_mix_needs_ferplus_and_a_weight_in_range():
    with pytest.raises(ValueError, match="ferplus"):
        load_config(None, ["fer2013_mix=0.2"])
    with pytest.raises(ValueError, match="fer2013_mix"):
        load_config(None, ["dataset=ferplus", "fer2013_mix=1.5"])
    assert load_config(None, ["dataset=ferplus", "fer2013_mix=0.2"]).fer2013_mix == 0.2


def test_a_network_started_from_the_shipped_onnx_reads_faces_as_that_model_does():
    from affectlens.datasets.ferplus import load_ferplus
    from affectlens.training.data import FERPLUS_MODEL_LABELS
    from affectlens.training.finetune import tta_logits, to_unit_tensor

    faces = load_ferplus(need(FER2013), "PublicTest").images[:200]
    clf = EmotionClassifier(str(BASE), threads=1)
    net = create_net("vgg48_s", num_classes=8)
    assert init_from_exported(net, BASE, FERPLUS_MODEL_LABELS) == []
    logits = tta_logits(net, to_unit_tensor(faces, clf.spec.input), clf.spec.input)
    agree = float((logits.argmax(1).numpy() == clf.classify_crops(faces).argmax(1)).mean())
    assert agree > 0.97


def test_fine_tuning_from_onnx_keeps_batchnorm_statistics_frozen(tmp_path):
    from affectlens.datasets import load_fer2013

    split = load_fer2013(need(FER2013), ("PublicTest",))["PublicTest"]
    write_face_folder(tmp_path / "faces", split.images, split.labels, per_class=16)
    cfg = TrainConfig(name="ft", dataset="folder", data=str(tmp_path / "faces"), epochs=1, batch_size=32, lr=0.001,
                      bf16=False, threads=2, init_from=str(BASE), out_dir=str(tmp_path / "run"))
    cfg.augment.lowres_prob, cfg.augment.jpeg_prob, cfg.augment.blur_prob = 0.5, 0.5, 0.5
    train(cfg)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    means = [v for k, v in best["model"].items() if k.endswith("running_mean")]
    assert means and all(float(m.abs().max()) == 0.0 for m in means)  # never updated
    spec = json.loads((tmp_path / "run" / "ft.json").read_text())
    base = json.loads(BASE.with_suffix(".json").read_text())
    assert spec["input"]["mean"] == pytest.approx(base["input"]["mean"])  # the base model's normalisation
