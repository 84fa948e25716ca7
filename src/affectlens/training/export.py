"""Calibrate the best checkpoint, export it to ONNX with its spec, and score it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from affectlens.metrics import classification_report, expected_calibration_error, kl_divergence
from affectlens.models.spec import AlignmentSpec, InputSpec, ModelSpec, sha256_of
from affectlens.training.config import TrainConfig
from affectlens.training.nets import create_net
from affectlens.training.train import _to_tensor, fit_temperature, predict_logits

logger = logging.getLogger(__name__)


class _Deployed(nn.Module):
    """Normalised input → mirror-averaged logits → temperature → softmax."""

    def __init__(self, net: nn.Module, temperature: float, tta: bool):
        super().__init__()
        self.net, self.tta = net, tta
        self.register_buffer("inv_t", torch.tensor(1.0 / temperature))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net(x)
        if self.tta:
            logits = (logits + self.net(torch.flip(x, dims=[3]))) * 0.5
        return torch.softmax(logits * self.inv_t, dim=1)


def export_onnx(net: nn.Module, path: Path, input_size: int, temperature: float, tta: bool) -> None:
    wrapped = _Deployed(net.eval().float(), temperature, tta).eval()
    dummy = torch.zeros(2, 1, input_size, input_size)
    torch.onnx.export(wrapped, (dummy,), str(path), input_names=["input"], output_names=["probs"],
                      dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}}, opset_version=17,
                      dynamo=False)


def finalize(cfg: TrainConfig, data=None) -> dict:
    """Load ``best.pt``, fit the temperature on PublicTest, export ONNX + spec, score PrivateTest
    with the exported file through ONNX Runtime; writes and returns ``metrics.json``."""
    from affectlens.training.data import load_training_data

    data = data or load_training_data(cfg.dataset, cfg.data, cfg.input_size)
    teacher = getattr(cfg, "teacher", "")
    best = torch.load(Path(cfg.out_dir) / "best.pt", weights_only=False, map_location="cpu")
    net = create_net(cfg.arch, num_classes=len(data.labels), dropout=cfg.dropout)
    net.load_state_dict(best["model"])
    training = {"data": (f"{data.name} Training split ({len(data.splits['Training'].labels):,} faces"
                         + (", annotator vote distributions as soft targets" if data.name == "FER+" else "")
                         + (f", distilled from {Path(teacher).name} (alpha {cfg.distill_alpha})"
                            if teacher else "")
                         + "); model selected on PublicTest"),
                "arch": cfg.arch, "epochs": cfg.epochs, "best_epoch": int(best["epoch"]) + 1,
                "command": f"affectlens train --config <config> (resolved config: {cfg.out_dir}/config.json)"}
    licence = None if cfg.dataset != "folder" else (
        f"weights trained on {cfg.data}: the terms of that data apply (AffectLens code: MIT)")
    return export_and_score(net, cfg.name, Path(cfg.out_dir), data, best["mean"], best["std"], cfg.input_size,
                            training, f"{cfg.arch} CNN on {cfg.input_size}x{cfg.input_size} grayscale aligned faces, "
                            "mirror TTA and temperature folded in.", licence)


def export_and_score(net: nn.Module, name: str, out: Path, data, mean: float, std: float, input_size: int,
                     training: dict, description: str, licence: str | None = None) -> dict:
    """Fit the temperature of ``net`` (mirror TTA) on PublicTest, export ``out/name.onnx`` with its
    spec, score the exported file on the test splits; writes and returns ``metrics.json``."""
    from affectlens.alignment import FER2013_ROLL_DEAD_BAND_DEG, FER2013_TEMPLATE, FER2013_TEMPLATE_SOURCE

    out.mkdir(parents=True, exist_ok=True)
    x_pub = _to_tensor(data.splits["PublicTest"].images, input_size)
    y_pub = torch.from_numpy(data.splits["PublicTest"].labels)
    logits_pub = predict_logits(net, x_pub, mean, std, bf16=False, tta=True)
    temperature = fit_temperature(logits_pub, y_pub)
    logger.info("temperature fitted on PublicTest: %.3f", temperature)

    onnx_path = out / f"{name}.onnx"
    export_onnx(net, onnx_path, input_size, temperature, tta=True)
    spec = ModelSpec(
        name=name, file=onnx_path.name, sha256=sha256_of(onnx_path), labels=data.labels,
        input=InputSpec(name="input", size_hw=(input_size, input_size), color="gray", scale=1 / 255,
                        mean=(mean,), std=(std,)),
        alignment=AlignmentSpec(points_norm=FER2013_TEMPLATE, source=FER2013_TEMPLATE_SOURCE,
                                roll_dead_band_deg=FER2013_ROLL_DEAD_BAND_DEG),
        temperature=temperature, tta=("hflip",), training=training,
        license=licence or "MIT (weights trained by the AffectLens authors on FER-2013; see MODEL_CARD.md for data terms)",
        description=description,
    )
    metrics = score_onnx(spec, onnx_path, data)
    metrics["ece_public_before_temperature"] = expected_calibration_error(torch.softmax(logits_pub, 1).numpy(),
                                                                          y_pub.numpy())
    spec = ModelSpec(**{**spec.to_dict(), "metrics": metrics,
                        "input": spec.input, "alignment": spec.alignment})
    spec.save(out / f"{name}.json")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    logger.info("PrivateTest accuracy %.4f (ONNX, %s)", metrics[f"{data.metric_prefix}_private_test"]["accuracy"],
                onnx_path)
    return metrics


def score_onnx(spec: ModelSpec, onnx_path: Path, data) -> dict:
    """Accuracy, macro-F1, ECE, per-class recall (and for soft targets the mean
    KL(annotators ‖ model) in nats) of the exported file, per test split."""
    import onnxruntime as ort

    from affectlens.preprocess import to_model_input

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = {}
    for split, suffix in (("PublicTest", "public_test"), ("PrivateTest", "private_test")):
        if split not in data.splits or len(data.splits[split].labels) == 0:
            continue
        s = data.splits[split]
        x = to_model_input(s.images, spec.input)
        probs = np.concatenate([sess.run([spec.output_name], {spec.input.name: x[i:i + 512]})[0]
                                for i in range(0, len(x), 512)])
        rep = classification_report(probs, s.labels, data.labels)
        row = {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "ece": expected_calibration_error(probs, s.labels),
               "per_class_recall": rep["per_class_recall"], "n": int(len(x))}
        if s.targets is not None:
            row["kl_divergence"] = kl_divergence(s.targets, probs)
        out[f"{data.metric_prefix}_{suffix}"] = row
    return out
