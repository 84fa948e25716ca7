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
