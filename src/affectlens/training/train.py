"""The training loop: FER-2013 Training split, model selection on PublicTest, resumable.

Run it through the CLI (``affectlens train --config configs/fer-vgg48s.toml``) or
:func:`train`. Every epoch writes ``last.pt`` (model, optimiser, epoch, RNG state, best
score) so an interrupted run continues with ``--resume``; the best PublicTest epoch is
kept as ``best.pt``. At the end the best weights are calibrated (temperature on
PublicTest), exported to ONNX with a spec JSON, and scored on PrivateTest.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from affectlens.training.data import load_training_data
from affectlens.training.augment import augment, mix_batch
from affectlens.training.config import TrainConfig, save_config
from affectlens.training.nets import create_net, load_imagenet_weights

logger = logging.getLogger(__name__)


def _to_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(images).float().div_(255.0).unsqueeze(1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, mean: float, std: float, bf16: bool,
                   tta: bool = True, batch_size: int = 512) -> torch.Tensor:
    """Logits (on the CPU) for normalised-on-the-fly images in [0, 1], run on the model's
    device; with ``tta`` the mean of the logits of the image and its mirror image."""
    model.eval()
    dev = next(model.parameters()).device
    outs = []
    for i in range(0, x.shape[0], batch_size):
        xb = (x[i:i + batch_size].to(dev) - mean) / std
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(xb).float()
            if tta:
                logits = (logits + model(torch.flip(xb, dims=[3])).float()) / 2
        outs.append(logits.cpu())
    return torch.cat(outs)


def resolve_device(name: str) -> torch.device:
    """The training device for ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).

    Raises:
        ValueError: ``"cuda"`` asked for but this PyTorch build or machine has no CUDA device, or
            an unknown name.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device 'cuda' asked for, but PyTorch {torch.__version__} sees no CUDA device "
                         "(a CPU build, or no GPU); use device=cpu or device=auto")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or auto; got {name!r}")
    return torch.device(name)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Temperature minimising the NLL of ``softmax(logits / T)`` (LBFGS on log T)."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    """Per-class loss weights, mean 1 over the classes present: ``"none"`` → ``None``,
    ``"balanced"`` → inverse frequency, ``"sqrt"`` → its square root. Absent classes get 0.

    Raises:
        ValueError: unknown ``mode``.
    """
    if mode == "none":
        return None
    if mode not in ("balanced", "sqrt"):
        raise ValueError(f"class_weights must be 'none', 'balanced' or 'sqrt', got {mode!r}")
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
    if mode == "sqrt":
        w = np.sqrt(w)
    w = w / w[counts > 0].mean()
    return torch.tensor(w, dtype=torch.float32)


def init_weights(model: torch.nn.Module, checkpoint: str | Path) -> list[str]:
    """Copy ``checkpoint``'s weights (a training run's ``.pt``) into ``model`` wherever names and
    shapes match; returns the names left at their fresh initialisation (e.g. a head for another
    class count).

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: the checkpoint shares no weights with ``model`` (another architecture).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: init_from checkpoint not found")
    state = torch.load(path, weights_only=False, map_location="cpu")
    source = state.get("model", state)
    own = model.state_dict()
    matched = {k: v for k, v in source.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not matched:
        raise ValueError(f"{path}: no weight matches this network by name and shape (another arch?)")
    model.load_state_dict({**own, **matched})
    return sorted(set(own) - set(matched))


def exported_spec(path: str | Path):
    """The spec JSON beside an exported ``.onnx`` model (``init_from``), read once.

    Raises:
        FileNotFoundError: the spec JSON is missing.
        ModelLoadError: it is unreadable.
    """
    from affectlens.models.spec import load_spec

    spec_path = Path(path).with_suffix(".json")
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: init_from {path} needs its spec JSON beside it")
    return load_spec(spec_path)


def init_from_exported(model: torch.nn.Module, spec, labels: tuple[str, ...]) -> list[str]:
    """Copy an exported model's weights into ``model`` (see
    :func:`affectlens.training.onnx_init.init_from_onnx`); returns the labels whose head rows
    start fresh.

    Args:
        spec: a :class:`~affectlens.models.spec.ModelSpec`, or the ``.onnx`` path (spec JSON beside it).

    Raises:
        FileNotFoundError: the spec JSON is missing.
        ModelLoadError: another architecture.
    """
    from affectlens.models.spec import ModelSpec
    from affectlens.training.onnx_init import init_from_onnx

    return init_from_onnx(model, spec if isinstance(spec, ModelSpec) else exported_spec(spec), labels)


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Train, calibrate, export; returns the metrics dict also written to ``metrics.json``."""
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.json")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    data = load_training_data(cfg.dataset, cfg.data, cfg.input_size, cfg.fer2013_mix)
    train_split = data.splits["Training"]
    x_train = _to_tensor(train_split.images, cfg.input_size)
    y_train = torch.from_numpy(train_split.labels)
    t_train = None if train_split.targets is None else torch.from_numpy(train_split.targets)
    if cfg.teacher:
        from affectlens.training.distill import distillation_targets, teacher_probabilities

        probs = teacher_probabilities(cfg.teacher, train_split.images, data.labels, out)
        t_train = torch.from_numpy(distillation_targets(probs, train_split.labels, train_split.targets,
                                                        cfg.distill_alpha))
        logger.info("distilling from %s (alpha %.2f; teacher agrees with the labels on %.1f%% of Training)",
                    cfg.teacher, cfg.distill_alpha, 100 * float((probs.argmax(1) == train_split.labels).mean()))
    x_val = _to_tensor(data.splits["PublicTest"].images, cfg.input_size)
    y_val = torch.from_numpy(data.splits["PublicTest"].labels)
    mean, std = float(x_train.mean()), float(x_train.std())
    weight = class_weights(train_split.labels, len(data.labels), cfg.class_weights)
    if weight is not None:
        weight = weight.to(device)
        logger.info("class weights (%s): %s", cfg.class_weights,
                    ", ".join(f"{n} {w:.2f}" for n, w in zip(data.labels, weight.tolist())))

    model = create_net(cfg.arch, num_classes=len(data.labels), dropout=cfg.dropout)
    base = exported_spec(cfg.init_from) if cfg.init_from.endswith(".onnx") else None
    frozen_bn = base is not None
    if base is not None:
        mean, std = float(base.input.mean[0]), float(base.input.std[0])  # the base model's normalisation
    if cfg.init_from and not (resume and (out / "last.pt").is_file()):
        if base is not None:
            fresh = init_from_exported(model, base, data.labels)
        elif cfg.init_from == "imagenet":
            fresh = load_imagenet_weights(model)
        else:
            fresh = init_weights(model, cfg.init_from)
        logger.info("initialised from %s; fresh: %s", cfg.init_from, ", ".join(fresh) or "none")
    model = model.to(device)
    logger.info("training %s on %s", cfg.arch, device)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    steps_per_epoch = math.ceil(len(y_train) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup_epochs * steps_per_epoch)

    start_epoch, best_acc, history = 0, -1.0, []
    last = out / "last.pt"
    if resume and last.is_file():
        state = torch.load(last, weights_only=False, map_location="cpu")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best_acc, history = state["epoch"] + 1, state["best_acc"], state["history"]
        logger.info("resuming %s at epoch %d (best PublicTest %.4f)", last, start_epoch + 1, best_acc)

    t_start = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        if frozen_bn:
            from affectlens.training.onnx_init import freeze_batchnorm

            freeze_batchnorm(model)
        perm = torch.randperm(len(y_train), generator=gen)
        run_loss, seen, correct = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, mininterval=5)
        for i in bar:
            step = epoch * steps_per_epoch + i
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total_steps, warmup, cfg.lr)
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            xb = augment(x_train[idx].to(device), cfg.augment, gen)
            yb = y_train[idx].to(device)
            target = yb if t_train is None else t_train[idx].to(device)  # soft targets: votes and/or a teacher
            if cfg.augment.mixes:
                xb, target, _ = mix_batch(xb, target, len(data.labels), cfg.augment, gen)
            xb = (xb - mean) / std
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), target, weight=weight, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += loss.item() * len(idx)
            seen += len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            bar.set_postfix(loss=f"{run_loss / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
        val_logits = predict_logits(model, x_val, mean, std, cfg.bf16, tta=True)
        val_acc = float((val_logits.argmax(1) == y_val).float().mean())
        row = {"epoch": epoch + 1, "train_loss": run_loss / seen, "train_acc": correct / seen,
               "public_acc_tta": val_acc, "elapsed_s": round(time.time() - t_start, 1)}
        history.append(row)
        improved = val_acc > best_acc
        if improved:
            best_acc = val_acc
            torch.save({"model": model.state_dict(), "epoch": epoch, "mean": mean, "std": std}, out / "best.pt")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                    "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                    "best_acc": best_acc, "history": history}, last)
        done = epoch + 1 - start_epoch
        eta = (time.time() - t_start) / done * (cfg.epochs - epoch - 1)
        logger.info("epoch %d/%d loss %.3f train %.3f public(tta) %.4f%s  eta %.0f min", epoch + 1, cfg.epochs,
                    row["train_loss"], row["train_acc"], val_acc, " *" if improved else "", eta / 60)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    from affectlens.training.export import finalize
    return finalize(cfg, data)
