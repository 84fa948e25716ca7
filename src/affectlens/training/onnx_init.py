"""Start a torch network from a shipped ONNX model (only ONNX files ship; no checkpoints).

The export folds each BatchNorm into the convolution before it, so a convolution's ONNX
weight and bias go into the torch convolution, and its BatchNorm becomes the identity
(γ = 1, β = bias, running mean 0, running variance 1 − ε). Fine-tuning then keeps those
running statistics frozen (:func:`freeze_batchnorm`) and learns γ and β. Head rows are
copied for the labels the base model shares with the new label set; new labels start fresh.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from affectlens.errors import ModelLoadError
from affectlens.models.spec import ModelSpec

logger = logging.getLogger(__name__)


def _onnx_convs_and_head(path) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray] | None]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    alias = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity"}

    def value(name):
        while name in alias and name not in init:
            name = alias[name]
        return init.get(name)

    convs, seen, head = [], set(), None
    for node in model.graph.node:
        if node.op_type == "Conv":
            key = node.input[1]
            while key in alias and key not in init:
                key = alias[key]
            if key in seen or key not in init:
                continue  # the mirror branch reuses the same weights
            seen.add(key)
            w = init[key]
            b = value(node.input[2]) if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            convs.append((w, b))
        elif node.op_type == "Gemm" and head is None:
            w, b = value(node.input[1]), value(node.input[2])
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            head = (w if trans_b else w.T, b)
    return convs, head


def init_from_onnx(net: nn.Module, spec: ModelSpec, labels: tuple[str, ...]) -> list[str]:
    """Copy a shipped model's weights into ``net`` (an architecture of
    :mod:`affectlens.training.nets` with conv-BN blocks and a linear head).

    Args:
        net: the fresh network.
        spec: the base model's spec (its ONNX file is read).
        labels: the new network's output labels, in order.

    Returns:
        The labels whose head rows start fresh (not among the base model's labels).

    Raises:
        ModelLoadError: the ONNX convolutions do not match the network's (another architecture).
    """
    from affectlens.models.spec import verify_model_file

    path = verify_model_file(spec)
    convs, head = _onnx_convs_and_head(path)
    blocks = [(m[0], m[1]) for m in net.modules()
              if isinstance(m, nn.Sequential) and len(m) >= 2 and isinstance(m[0], nn.Conv2d)
              and isinstance(m[1], nn.BatchNorm2d)]
    if len(blocks) != len(convs) or any(tuple(c.weight.shape) != w.shape for (c, _), (w, _) in zip(blocks, convs)):
        raise ModelLoadError(f"{path}: its {len(convs)} convolutions do not match the network's {len(blocks)} "
                             "(another architecture); choose a base of the vgg48_s family or --base none")
    with torch.no_grad():
        for (conv, bn), (w, b) in zip(blocks, convs):
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(np.array(b)))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        linear = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
        fresh = []
        if head is not None and head[0].shape[1] == linear.in_features:
            for i, name in enumerate(labels):
                if name in spec.labels:
                    j = spec.labels.index(name)
                    linear.weight[i].copy_(torch.from_numpy(np.array(head[0][j])))
                    linear.bias[i] = float(head[1][j])
                else:
                    fresh.append(name)
        else:
            fresh = list(labels)
    return fresh


def freeze_batchnorm(net: nn.Module) -> None:
    """Put every BatchNorm in eval mode (running statistics frozen; γ and β still learn). Call
    after each ``net.train()`` when fine-tuning a network started by :func:`init_from_onnx`."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
