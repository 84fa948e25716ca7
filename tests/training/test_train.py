"""``affectlens train`` end to end on a small image-folder data set: checkpoints, resume,
export, spec and scores (needs PyTorch: the 'train' extra)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from affectlens.classifier import EmotionClassifier  # noqa: E402
from affectlens.labels import EMOTIONS  # noqa: E402
from affectlens.training.config import TrainConfig, load_config  # noqa: E402
from affectlens.training.nets import create_net  # noqa: E402
from affectlens.training.train import class_weights, init_weights, resolve_device, train  # noqa: E402
from conftest import FER2013, need, write_face_folder  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from affectlens.datasets import load_fer2013

    split = load_fer2013(need(FER2013), ("PublicTest",))["PublicTest"]
    root = tmp_path_factory.mktemp("faces")
    write_face_folder(root, split.images, split.labels, per_class=40)
    return root


def test_training_resumes_exports_and_scores(folder, tmp_path):
    cfg = TrainConfig(name="tiny", dataset="folder", data=str(folder), epochs=1, batch_size=32, lr=0.02,
                      bf16=False, threads=2, class_weights="sqrt", device="auto", out_dir=str(tmp_path / "run"))
    cfg.augment.mixup_alpha, cfg.augment.cutmix_alpha = 0.2, 1.0  # soft mixed targets with class weights
    train(cfg)
    first = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["epoch"] for r in first] == [1]
    cfg.epochs = 2
    metrics = train(cfg, resume=True)  # continues from last.pt: one more epoch, not two
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2] and history[0] == first[0]
    for f in ("best.pt", "last.pt", "config.json", "metrics.json", "tiny.onnx", "tiny.json"):
        assert (tmp_path / "run" / f).is_file(), f
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resolved["class_weights"] == "sqrt" and resolved["augment"]["cutmix_alpha"] == 1.0
    pub = metrics["folder_public_test"]
    assert pub["n"] > 0 and 0.0 <= pub["accuracy"] <= 1.0 and pub["ece"] >= 0
    spec = json.loads((tmp_path / "run" / "tiny.json").read_text())
    assert tuple(spec["labels"]) == EMOTIONS and "terms of that data apply" in spec["license"]
    clf = EmotionClassifier(str(tmp_path / "run" / "tiny.onnx"))
    probs = clf.classify_crops(np.zeros((3, 48, 48), np.uint8))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)


def test_init_from_copies_matching_weights_and_leaves_a_new_head_fresh(tmp_path):
    seven = create_net("vgg48_s", num_classes=7)
    torch.save({"model": seven.state_dict()}, tmp_path / "best.pt")
    eight = create_net("vgg48_s", num_classes=8)
    head_before = {k: v.clone() for k, v in eight.state_dict().items() if v.shape[:1] == (8,)}
    fresh = init_weights(eight, tmp_path / "best.pt")
    assert fresh and set(fresh) == set(head_before)  # only the 8-class head differs in shape
    for k, v in eight.state_dict().items():
        if k in head_before:
            assert torch.equal(v, head_before[k])
        else:
            assert torch.equal(v, seven.state_dict()[k]), k
    torch.save({"model": {"other.weight": torch.zeros(3)}}, tmp_path / "alien.pt")
    with pytest.raises(ValueError, match="alien.pt: no weight matches"):
        init_weights(eight, tmp_path / "alien.pt")


def test_class_weights_favour_rare_classes():
    labels = np.array([0] * 90 + [1] * 10)
    bal, root = class_weights(labels, 3, "balanced"), class_weights(labels, 3, "sqrt")
    assert bal[1] / bal[0] == pytest.approx(9.0) and root[1] / root[0] == pytest.approx(3.0)
    assert bal[2] == 0 and float(bal[:2].mean()) == pytest.approx(1.0)
    assert class_weights(labels, 3, "none") is None


@pytest.mark.parametrize("override, message", [
    ("class_weights=inverse", "class_weights must be one of"),
    ("dataset=affectnet", "dataset must be one of"),
    ("epochs=0", "epochs must be positive"),
    ("lr=fast", "could not convert"),
    ("colour=1", "unknown option"),
    ("augment.mix_prob=1.5", "mix_prob must be in"),
    ("augment.cutmix_alpha=-1", "cutmix_alpha must be >= 0"),
    ("device=tpu", "device must be one of"),
    ("init_from=runs/none/best.pt", "init_from: no such checkpoint"),
])
def test_bad_settings_are_refused_before_training(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_cli_reports_a_missing_data_folder_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "affectlens", "train", "--set", "dataset=folder",
                           f"data={tmp_path / 'nowhere'}", f"out_dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "nowhere" in proc.stderr and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_auto_device_is_cuda_only_where_pytorch_sees_a_gpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cli_refuses_cuda_on_a_machine_without_it_before_loading_data(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "affectlens", "train", "--set", "device=cuda",
                           f"data={tmp_path / 'nowhere'}", f"out_dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr and "device=auto" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
