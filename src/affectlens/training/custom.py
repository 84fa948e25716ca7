"""``affectlens train --data DATASET --base default --out MODEL_DIR``: a custom model from a
prepared data set, with subject-disjoint splits, in a model folder every part of AffectLens loads.

Steps: read the prepared faces (:func:`~affectlens.datasets.prepare.load_prepared`); split by
subject into train / validation / test (and, with ``folds``, also run a grouped k-fold
cross-validation with the base model's zero-shot scores on the same folds); start the network
from the base model's ONNX weights (:func:`~affectlens.training.onnx_init.init_from_onnx`) or
from scratch; fine-tune with early stopping (:func:`~affectlens.training.finetune.fit`); fit
the calibration temperature on the validation subjects; export ONNX + spec + model card
(:mod:`affectlens.training.model_folder`); score the exported file on the test subjects through
the same :class:`~affectlens.classifier.EmotionClassifier` inference uses.

Every run is resumable: each epoch writes ``MODEL_DIR/.work/<run>/last.pt``, finished folds
keep their scores, and ``resume=True`` continues where an interrupted run stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from affectlens.datasets.prepare import PreparedDataset, load_prepared, resolve_base
from affectlens.errors import DatasetError
from affectlens.metrics import classification_report, expected_calibration_error
from affectlens.models.registry import resolve_spec
from affectlens.models.spec import ModelSpec
from affectlens.training.finetune import FitOptions, fit, tta_logits, to_unit_tensor
from affectlens.training.splits import check_disjoint, grouped_folds, subject_split

logger = logging.getLogger(__name__)


@dataclass
class CustomTrainOptions:
    """Options of :func:`train_custom`.

    Attributes:
        base: ``"default"`` (``ferplus-vgg48s``), a shipped model name or path of the
            ``vgg48_s`` family, or ``"none"`` (from scratch).
        labels: output labels in order (a subset of the data's; default: all of them).
        epochs / patience / lr / batch_size / class_weights / seed: see
            :class:`~affectlens.training.finetune.FitOptions` (``lr`` ``None``: 0.01 when
            fine-tuning, 0.05 from scratch).
        val_fraction / test_fraction: shares of the subjects held out for early stopping and
            calibration, and for the final test.
        tune: ``"all"`` (default), ``"late"`` (last convolution stage and head only) or ``"head"``
            (see :class:`~affectlens.training.finetune.FitOptions`); from scratch always ``"all"``.
        folds: also run a subject-disjoint k-fold cross-validation (0 = off, ``"auto"`` = 5
            folds when the test split would hold fewer than 150 faces).
        device: ``"auto"`` (a GPU when present), ``"cpu"`` or ``"cuda"``.
        threads: torch threads (0 = torch's default).
        name: model name written in the spec.
    """

    base: str = "default"
    labels: tuple[str, ...] | None = None
    epochs: int = 30
    patience: int = 8
    lr: float | None = None
    batch_size: int = 64
    class_weights: str = "balanced"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    folds: int | str = 0
    tune: str = "all"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    name: str = ""


@dataclass
class TrainingSet:
    """Faces ready for training: unit tensors, class indices, subjects, ids."""

    data: PreparedDataset
    labels: tuple[str, ...]
    x: torch.Tensor
    y: np.ndarray
    subjects: np.ndarray
    ids: np.ndarray
    images: np.ndarray


def base_spec_of(opts: CustomTrainOptions, data: PreparedDataset) -> tuple[ModelSpec, bool]:
    """The spec whose input and alignment the model uses, and whether weights come from it.

    Raises:
        DatasetError: the data set was cut to another crop size, template or roll dead band than the base expects.
    """
    scratch = str(opts.base).lower() in ("none", "scratch")
    spec = resolve_spec(resolve_base(data.meta.get("base") if scratch else opts.base))
    _check_prepared_alike(data, spec, opts.base)
    return spec, not scratch


def _check_prepared_alike(data: PreparedDataset, spec: ModelSpec, base) -> None:
    """Crop size, template and roll dead band of the data set's preparation against ``spec``'s.

    Raises:
        DatasetError: they differ (the fix: prepare again with that base).
    """
    again = f"prepare again with 'affectlens dataset prepare SRC --out {data.root} --base {base} --overwrite'"
    want_size = list(spec.input.size_hw)
    want_pts = [list(p) for p in spec.alignment.points_norm]
    got = data.meta.get("alignment", {})
    if data.meta.get("crop_size_hw") != want_size or not np.allclose(np.asarray(got.get("points_norm"), float),
                                                                     want_pts, atol=1e-4):
        raise DatasetError(
            f"{data.root}: prepared for base {data.meta.get('base')!r} ({data.meta.get('crop_size_hw')} crops), "
            f"but --base {base} expects {want_size} crops on its own alignment template; {again}")
    got_band = float(got.get("roll_dead_band_deg", 0.0))  # data sets prepared before the field: full alignment
    if abs(got_band - spec.alignment.roll_dead_band_deg) > 1e-6:
        raise DatasetError(
            f"{data.root}: faces aligned with a roll dead band of {got_band:g}°, but --base {base} aligns with "
            f"{spec.alignment.roll_dead_band_deg:g}° (alignment.roll_dead_band_deg), so the model would see faces "
            f"turned otherwise at run time than in training; {again}")


def training_set(data: PreparedDataset, spec: ModelSpec, labels: tuple[str, ...] | None) -> TrainingSet:
    """Select and index the faces of ``labels``.

    Raises:
        DatasetError: fewer than two classes, labels the data lacks, or too few subjects to split.
    """
    present = data.label_names
    labels = tuple(labels) if labels else present
    missing = [lab for lab in labels if lab not in present]
    if missing:
        raise DatasetError(f"{data.root}: no faces labelled {missing}; the data set has {list(present)}")
    if len(labels) < 2:
        raise DatasetError(f"{data.root}: only one class ({labels[0] if labels else 'none'}); a classifier needs at "
                           "least two: add faces of another class and prepare again")
    keep = np.isin(data.labels, labels)
    index = {lab: i for i, lab in enumerate(labels)}
    y = np.array([index[lab] for lab in data.labels[keep]], np.int64)
    images = data.images[keep]
    return TrainingSet(data, labels, to_unit_tensor(images, spec.input), y, data.subjects[keep], data.ids[keep], images)


def _input_spec(spec: ModelSpec, x_train: torch.Tensor, pretrained: bool):
    if pretrained:
        return spec.input
    c = x_train.shape[1]
    mean = tuple(float(v) for v in x_train.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in x_train.std(dim=(0, 2, 3)).clamp_min(1e-3))
    return dataclasses.replace(spec.input, mean=mean[:c], std=std[:c])


def make_net(spec: ModelSpec, labels: tuple[str, ...], pretrained: bool) -> tuple[torch.nn.Module, list[str]]:
    """The network: the base's architecture, started from its ONNX weights when ``pretrained``."""
    from affectlens.training.nets import create_net
    from affectlens.training.onnx_init import init_from_onnx

    net = create_net(spec.training.get("arch", "vgg48_s"), num_classes=len(labels), in_chans=spec.input.channels)
    fresh = init_from_onnx(net, spec, labels) if pretrained else list(labels)
    return net, fresh


def fit_temperature_np(logits: torch.Tensor, y: np.ndarray) -> float:
    """Calibration temperature on held-out logits (1.0 when there are too few)."""
    from affectlens.training.train import fit_temperature

    if len(y) < 5:
        return 1.0
    return float(np.clip(fit_temperature(logits, torch.from_numpy(np.asarray(y, np.int64))), 0.05, 20.0))


def train_split(ts: TrainingSet, spec: ModelSpec, pretrained: bool, train_idx: np.ndarray, val_idx: np.ndarray,
                opts: CustomTrainOptions, work: Path, on_epoch=None) -> tuple[torch.nn.Module, object, float, dict]:
    """Fine-tune on ``train_idx``, select and calibrate on ``val_idx``; returns
    ``(net, input spec, temperature, fit summary)``."""
    from affectlens.training.train import resolve_device

    net, fresh = make_net(spec, ts.labels, pretrained)
    if pretrained:
        logger.info("started from %s; new head rows for: %s", spec.name, ", ".join(fresh) or "none")
    inp = _input_spec(spec, ts.x[train_idx], pretrained)
    fo = FitOptions(epochs=opts.epochs, patience=opts.patience, batch_size=opts.batch_size,
                    lr=opts.lr or (0.01 if pretrained else 0.05), class_weights=opts.class_weights,
                    freeze_bn=pretrained, tune=opts.tune if pretrained else "all", seed=opts.seed)
    summary = fit(net, ts.x[train_idx], ts.y[train_idx], ts.x[val_idx], ts.y[val_idx], inp, fo,
                  checkpoint=work / "last.pt", device=resolve_device(opts.device), on_epoch=on_epoch)
    net.cpu().eval()
    temperature = fit_temperature_np(tta_logits(net, ts.x[val_idx], inp), ts.y[val_idx])
    return net, inp, temperature, summary


def scores(probs: np.ndarray, y: np.ndarray, labels) -> dict:
    """Accuracy, macro-F1, ECE, per-class precision/recall and n."""
    rep = classification_report(probs, y, labels)
    return {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "ece": expected_calibration_error(probs, y),
            "per_class_recall": rep["per_class_recall"], "per_class_precision": rep["per_class_precision"],
            "n": rep["n"]}


def base_zero_shot(base_clf, images: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> dict | None:
    """The base model, untrained on these faces, on the classes it shares with ``labels`` (faces
    of other classes left out, its other outputs dropped and the rest renormalised)."""
    shared = [lab for lab in labels if lab in base_clf.labels]
    if len(shared) < 2:
        return None
    keep = np.isin(np.asarray(labels)[y], shared)
    probs = base_clf.classify_crops(images[keep])[:, [base_clf.labels.index(s) for s in shared]]
    probs = probs / probs.sum(1, keepdims=True)
    yy = np.array([shared.index(labels[i]) for i in y[keep]])
    out = scores(probs, yy, shared)
    out["classes"] = shared
    return out


def _splits(ts: TrainingSet, opts: CustomTrainOptions) -> dict[str, np.ndarray]:
    parts = subject_split(ts.subjects, ts.y, {"train": 1 - opts.val_fraction - opts.test_fraction,
                                               "val": opts.val_fraction, "test": opts.test_fraction}, opts.seed)
    check_disjoint(ts.subjects, parts)
    for name in ("train", "val", "test"):
        if len(parts[name]) == 0:
            raise DatasetError(f"{ts.data.root}: {len(set(ts.subjects.tolist()))} subject(s) are too few for a "
                               f"subject-disjoint {name} split; add faces of more people (or give each photo its own "
                               "subject when they are all different people)")
    return parts


def _val_within(ts: TrainingSet, idx: np.ndarray, opts: CustomTrainOptions) -> tuple[np.ndarray, np.ndarray]:
    share = opts.val_fraction / max(1e-9, 1 - opts.test_fraction)
    p = subject_split(ts.subjects[idx], ts.y[idx], {"train": 1 - share, "val": share}, opts.seed + 1)
    return idx[p["train"]], idx[p["val"]]


def cross_validate(ts: TrainingSet, spec: ModelSpec, pretrained: bool, k: int, opts: CustomTrainOptions,
                   work: Path, base_clf=None, on_epoch=None, only: list[int] | None = None) -> dict:
    """Subject-disjoint k-fold: per fold, fine-tune on the other folds (validation subjects
    carved out of them), score the held-out fold through the exported ONNX graph's maths, and
    the base model zero-shot on the same faces. Finished folds are kept in ``work``, so a run
    resumes, and separate processes can share the folds (``only``: the folds this one runs)."""
    from affectlens.training.model_folder import onnx_probs

    fold = grouped_folds(ts.subjects, ts.y, k, opts.seed)
    for f in (range(k) if only is None else only):
        done = work / f"fold{f}.json"
        if done.is_file():
            continue
        test_idx = np.flatnonzero(fold == f)
        tr, va = _val_within(ts, np.flatnonzero(fold != f), opts)
        check_disjoint(ts.subjects, {"train": tr, "val": va, "test": test_idx})
        t0 = time.time()
        net, inp, temperature, summary = train_split(ts, spec, pretrained, tr, va, opts, work / f"fold{f}", on_epoch)
        probs = onnx_probs(net, inp, temperature, ts.images[test_idx], work / f"fold{f}")
        row = {"fold": f, "test_faces": int(len(test_idx)), "test_subjects": len(set(ts.subjects[test_idx].tolist())),
               **{k_: v for k_, v in scores(probs, ts.y[test_idx], ts.labels).items() if k_ in ("accuracy", "macro_f1", "ece", "n")},
               "best_epoch": summary["best_epoch"], "seconds": round(time.time() - t0, 1)}
        if base_clf is not None:
            b = base_zero_shot(base_clf, ts.images[test_idx], ts.y[test_idx], ts.labels)
            if b:
                row["base"] = {"accuracy": b["accuracy"], "macro_f1": b["macro_f1"], "n": b["n"], "classes": b["classes"]}
        done.write_text(json.dumps(row))
        logger.info("fold %d/%d: accuracy %.4f (base %s)", f + 1, k, row["accuracy"],
                    f"{row['base']['accuracy']:.4f}" if "base" in row else "n/a")
    rows = [json.loads((work / f"fold{f}.json").read_text()) for f in range(k) if (work / f"fold{f}.json").is_file()]
    if len(rows) < k:
        return {"folds": k, "finished": len(rows), "per_fold": rows}
    acc = np.array([r["accuracy"] for r in rows])
    out = {"folds": k, "accuracy_mean": float(acc.mean()), "accuracy_sd": float(acc.std(ddof=1)),
           "macro_f1_mean": float(np.mean([r["macro_f1"] for r in rows])), "per_fold": rows}
    if all("base" in r for r in rows):
        b = np.array([r["base"]["accuracy"] for r in rows])
        out.update(base_accuracy_mean=float(b.mean()), base_accuracy_sd=float(b.std(ddof=1)),
                   base_classes=rows[0]["base"]["classes"])
    return out


def _n_folds(opts: CustomTrainOptions, n: int) -> int:
    if opts.folds == "auto":
        return 5 if n * opts.test_fraction < 150 else 0
    return int(opts.folds)


def train_custom(data: str | Path, out: str | Path, opts: CustomTrainOptions | None = None, resume: bool = False,
                 overwrite: bool = False, progress: Callable[[dict], None] | None = None) -> dict:
    """Train a custom model on a prepared data set and write its model folder.

    Args:
        data: a folder from ``affectlens dataset prepare``.
        out: the model folder to write (see :mod:`affectlens.training.model_folder`).
        opts: :class:`CustomTrainOptions`.
        resume: continue an interrupted run in ``out``.
        overwrite: replace an existing model in ``out``.
        progress: called with each epoch's history row (plus ``run``).

    Returns:
        The metrics written to ``out/metrics.json``.

    Raises:
        DatasetError: not a prepared data set, one class only, too few subjects, a data set
            prepared for another base.
        ModelLoadError: the base model cannot be loaded or is another architecture.

    Example:
        >>> train_custom("data/mine", "models/mine", CustomTrainOptions(base="default", epochs=20))
    """
    from affectlens.classifier import EmotionClassifier
    from affectlens.training.model_folder import write_model_folder

    opts = opts or CustomTrainOptions()
    out = Path(out)
    if (out / "model.json").exists() and not (resume or overwrite):
        raise DatasetError(f"{out}: holds a model already; pass --overwrite to replace it, or choose another --out")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    t0 = time.time()
    ds = load_prepared(data)
    spec, pretrained = base_spec_of(opts, ds)
    ts = training_set(ds, spec, opts.labels)
    work = out / ".work"
    if overwrite and not resume:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    base_clf = EmotionClassifier(spec)
    k = _n_folds(opts, len(ts.y))
    logger.info("%d faces, %d subjects, labels %s; base %s%s", len(ts.y), len(set(ts.subjects.tolist())),
                list(ts.labels), spec.name if pretrained else "none (from scratch)", f"; {k}-fold CV" if k else "")

    def tagged(run):
        return (lambda row: progress({**row, "run": run})) if progress else None

    cv = cross_validate(ts, spec, pretrained, k, opts, work / "cv", base_clf, tagged("cv")) if k else None
    parts = _splits(ts, opts)
    net, inp, temperature, summary = train_split(ts, spec, pretrained, parts["train"], parts["val"], opts,
                                                 work / "final", tagged("final"))
    metrics = write_model_folder(out, net, inp, temperature, ts, parts, spec, pretrained, opts, summary, cv,
                                 base_clf, seconds=time.time() - t0)
    return metrics
