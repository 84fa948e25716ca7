"""The fine-tuning loop for custom models: small data, any label set, early stopping, resumable.

Inputs are prepared faces (:mod:`affectlens.datasets.prepare`) turned into tensors by the one
:func:`~affectlens.preprocess.to_model_input` inference uses; augmentation is
:func:`affectlens.training.augment.augment`; the loss is class-weighted cross-entropy
(inverse frequency by default); the epoch with the best validation macro-F1 is kept, and
training stops when it has not improved for ``patience`` epochs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from affectlens.metrics import classification_report
from affectlens.models.spec import InputSpec
from affectlens.training.augment import AugmentConfig, augment
from affectlens.training.train import class_weights

logger = logging.getLogger(__name__)


@dataclass
class FitOptions:
    """Options of :func:`fit`.

    Attributes:
        epochs: at most this many epochs.
        patience: stop after this many epochs without a better validation macro-F1.
        batch_size / lr / weight_decay / momentum: SGD-Nesterov, cosine decay after a one-epoch warm-up.
        label_smoothing: cross-entropy label smoothing.
        class_weights: ``"balanced"``, ``"sqrt"`` or ``"none"`` (see
            :func:`affectlens.training.train.class_weights`).
        freeze_bn: keep BatchNorm running statistics fixed (a network started from ONNX).
        tune: which weights learn: ``"all"``, ``"late"`` (the last stage of convolutions and the
            head; the earlier stages run frozen without gradients: about twice as fast, and
            less overfitting on a few hundred faces) or ``"head"`` (the linear head only).
        seed: shuffling and augmentation seed.
        augment: augmentation strengths.
    """

    epochs: int = 30
    patience: int = 8
    batch_size: int = 64
    lr: float = 0.01
    weight_decay: float = 5e-4
    momentum: float = 0.9
    label_smoothing: float = 0.1
    class_weights: str = "balanced"
    freeze_bn: bool = True
    tune: str = "all"
    seed: int = 0
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(max_rotation_deg=10.0, erase_prob=0.25))


def to_unit_tensor(images: np.ndarray, inp: InputSpec) -> torch.Tensor:
    """Crops → ``(n, c, H, W)`` float tensor in [0, 1] after the spec's colour conversion and
    scale (mean/std come after augmentation)."""
    from affectlens.preprocess import to_model_input

    unit = dataclasses.replace(inp, mean=(0.0,) * inp.channels, std=(1.0,) * inp.channels)
    return torch.from_numpy(to_model_input(images, unit))


@torch.no_grad()
def tta_logits(net: torch.nn.Module, x01: torch.Tensor, inp: InputSpec, batch_size: int = 256) -> torch.Tensor:
    """Mirror-averaged logits (what the exported graph computes before its temperature)."""
    net.eval()
    dev = next(net.parameters()).device
    mean = torch.tensor(inp.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(inp.std, dtype=torch.float32).view(1, -1, 1, 1)
    outs = []
    for i in range(0, len(x01), batch_size):
        xb = ((x01[i:i + batch_size] - mean) / std).to(dev)
        outs.append(((net(xb) + net(torch.flip(xb, dims=[3]))) / 2).float().cpu())
    return torch.cat(outs) if outs else torch.zeros((0, 0))


def split_trunk(net: torch.nn.Module, tune: str) -> tuple[torch.nn.Module | None, torch.nn.Module]:
    """``(frozen part, learning part)`` of a network with ``features`` / ``pool`` / ``head``
    (:class:`~affectlens.training.nets.VGGFace48`); ``frozen`` is ``None`` for ``tune="all"``.

    Raises:
        ValueError: unknown ``tune``, or a network without that structure.
    """
    if tune == "all":
        return None, net
    if tune not in ("late", "head") or not all(hasattr(net, a) for a in ("features", "pool", "head")):
        raise ValueError(f"tune must be all, late or head (late/head need a features/pool/head network), got {tune!r}")
    feats = net.features
    if tune == "head":
        return torch.nn.Sequential(feats, net.pool), net.head
    cut = max(i for i, m in enumerate(feats) if isinstance(m, torch.nn.MaxPool2d)) + 1
    return feats[:cut], torch.nn.Sequential(feats[cut:], net.pool, net.head)


def _lr(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def fit(net: torch.nn.Module, x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor, y_val: np.ndarray,
        inp: InputSpec, opts: FitOptions, checkpoint: Path | None = None, device: torch.device | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train ``net`` in place; at the end it holds the best validation epoch's weights.

    Args:
        net: the network (fresh, or started from a base model).
        x_train / x_val: ``(n, c, H, W)`` tensors in [0, 1] (:func:`to_unit_tensor`).
        y_train / y_val: ``(n,)`` int class indices.
        inp: the input spec (mean/std applied after augmentation).
        opts: :class:`FitOptions`.
        checkpoint: ``last.pt`` path written every epoch and resumed from when present.
        device: training device (default CPU).
        on_epoch: called with each epoch's history row (progress, ETA).

    Returns:
        ``{"history": [...], "best_epoch": int, "best_val_macro_f1": float, "epochs_run": int}``.
    """
    device = device or torch.device("cpu")
    gen = torch.Generator().manual_seed(opts.seed)
    torch.manual_seed(opts.seed)
    net.to(device)
    mean = torch.tensor(inp.mean, dtype=torch.float32).view(1, -1, 1, 1).to(device)
    std = torch.tensor(inp.std, dtype=torch.float32).view(1, -1, 1, 1).to(device)
    n_classes = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1].out_features
    weight = class_weights(np.asarray(y_train), n_classes, opts.class_weights)
    weight = None if weight is None else weight.to(device)
    frozen, learner = split_trunk(net, opts.tune)
    if frozen is not None:
        for p in frozen.parameters():
            p.requires_grad_(False)
    decay = [p for p in learner.parameters() if p.ndim > 1]
    no_decay = [p for p in learner.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": opts.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=opts.lr, momentum=opts.momentum,
                          nesterov=True)
    y_t = torch.from_numpy(np.asarray(y_train, np.int64))
    steps = max(1, math.ceil(len(y_t) / opts.batch_size))
    total, warmup = steps * opts.epochs, steps
    state = {"epoch": 0, "history": [], "best": None, "best_score": -1.0, "best_epoch": 0}
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False, map_location="cpu")
        net.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        state = saved["state"]
        logger.info("resuming %s at epoch %d", checkpoint, state["epoch"] + 1)
    t0 = time.time()
    start = state["epoch"]
    for epoch in range(start, opts.epochs):
        if epoch - state["best_epoch"] >= opts.patience and state["best"] is not None:
            logger.info("early stop: no better validation macro-F1 for %d epochs", opts.patience)
            break
        net.train()
        if opts.freeze_bn:
            from affectlens.training.onnx_init import freeze_batchnorm

            freeze_batchnorm(net)
        if frozen is not None:
            frozen.eval()
        perm = torch.randperm(len(y_t), generator=gen)
        run_loss = 0.0
        for i in range(steps):
            for g in opt.param_groups:
                g["lr"] = _lr(epoch * steps + i, total, warmup, opts.lr)
            idx = perm[i * opts.batch_size:(i + 1) * opts.batch_size]
            if len(idx) < 2 and not opts.freeze_bn:
                continue  # BatchNorm in training mode cannot take one sample
            xb = augment(x_train[idx].to(device), opts.augment, gen)
            xb = (xb - mean) / std
            if frozen is None:
                logits = net(xb)
            else:
                with torch.no_grad():
                    xb = frozen(xb)
                logits = learner(xb)
            loss = F.cross_entropy(logits, y_t[idx].to(device), weight=weight, label_smoothing=opts.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += loss.item() * len(idx)
        probs = torch.softmax(tta_logits(net, x_val, inp), 1).numpy()
        rep = classification_report(probs, np.asarray(y_val), [str(i) for i in range(n_classes)])
        score = rep["macro_f1"] + 1e-3 * rep["accuracy"]
        row = {"epoch": epoch + 1, "train_loss": round(run_loss / len(y_t), 4), "val_accuracy": round(rep["accuracy"], 4),
               "val_macro_f1": round(rep["macro_f1"], 4), "seconds": round(time.time() - t0, 1)}
        state["history"].append(row)
        if score > state["best_score"]:
            state.update(best={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
                         best_score=score, best_epoch=epoch + 1)
        state["epoch"] = epoch + 1
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            tmp = checkpoint.with_suffix(".tmp")
            torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                        "state": state}, tmp)
            tmp.replace(checkpoint)
        done = epoch + 1 - start
        row["eta_s"] = round((time.time() - t0) / done * (opts.epochs - epoch - 1), 1)
        logger.info("epoch %d/%d loss %.3f val acc %.3f macro-F1 %.3f%s  (eta at most %.0f s)", epoch + 1,
                    opts.epochs, row["train_loss"], rep["accuracy"], rep["macro_f1"],
                    " *" if state["best_epoch"] == epoch + 1 else "", row["eta_s"])
        if on_epoch:
            on_epoch(row)
    if state["best"] is not None:
        net.load_state_dict(state["best"])
    for p in net.parameters():
        p.requires_grad_(True)
    return {"history": state["history"], "best_epoch": state["best_epoch"],
            "best_val_macro_f1": round(state["best_score"], 4), "epochs_run": state["epoch"]}
