"""Static int8 (QDQ) quantisation of an emotion model that holds its accuracy on every x86 CPU.

Static QDQ keeps convolutions in int8 end to end; dynamic quantisation is slower than fp32 for
CNNs, so it is not offered. Weights are quantised to 7 bits (``reduce_range``): on CPUs without
VNNI, ONNX Runtime's u8×s8 kernels add pairs of products in int16 (``VPMADDUBSW``), which
saturates for weights spanning ±127 and cost our first int8 default 4.7 points on AVX2-only
machines; with 7-bit weights the pairwise sums stay in range on AVX2, AVX-512, VNNI and AMX
alike. The classifier heads and everything after them stay in float (:func:`float_tail`).

:func:`quantize_model` quantises any ONNX classifier from calibration inputs you give it
(custom models use it with their own faces); :func:`quantize_int8` is the FER-2013/FER+
front end that also scores the result and writes its spec.

Usage:
    python -m affectlens.training.quantize --model fer-vgg48s --data ../shared/data/fer2013
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from affectlens.classifier import EmotionClassifier
from affectlens.cpu import cpu_info
from affectlens.datasets import load_fer2013
from affectlens.errors import ModelLoadError
from affectlens.evaluate import evaluate_fer2013, evaluate_ferplus, split_key
from affectlens.models.registry import resolve_spec
from affectlens.models.spec import ModelSpec, sha256_of


class _Batches:
    """ONNX Runtime calibration reader over preprocessed input batches."""

    def __init__(self, batches: list[np.ndarray], input_name: str):
        self._batches = batches
        self._name = input_name
        self._i = 0

    def get_next(self):
        if self._i >= len(self._batches):
            return None
        self._i += 1
        return {self._name: self._batches[self._i - 1]}

    def rewind(self):
        self._i = 0


def float_tail(model) -> list[str]:
    """Names of the classifier heads (``Gemm``) and every node downstream of them: mirror
    averaging, temperature, softmax and any ensemble or view averaging. Quantised, they would
    round the logits and the output probabilities to 8-bit steps (probabilities that no longer
    sum to 1), so they stay in float; they cost next to nothing.

    Raises:
        ModelLoadError: the graph has no ``Gemm`` head to anchor on.
    """
    heads = [n for n in model.graph.node if n.op_type == "Gemm"]
    if not heads:
        raise ModelLoadError(f"{model.graph.name}: no Gemm classifier head found; cannot place the float tail")
    tensors = {o for n in heads for o in n.output}
    tail = [n.name for n in heads]
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if any(i in tensors for i in node.input):
            tail.append(node.name)
            tensors.update(node.output)
    return tail


def quantize_model(src: str | Path, dst: str | Path, calibration: Iterable[np.ndarray], input_name: str,
                   reduce_range: bool = True) -> Path:
    """Write a static int8 QDQ copy of the ONNX classifier ``src`` to ``dst``.

    Args:
        src: fp32 ONNX model with a ``Gemm`` classifier head.
        dst: output path (its folder is created).
        calibration: preprocessed input batches, float32 ``(n, C, H, W)`` exactly as the model is
            fed (e.g. ``EmotionClassifier.preprocess(crops)``); a few hundred to a thousand faces
            of the deployment domain.
        input_name: the model's input name (``spec.input.name``).
        reduce_range: 7-bit weights, the portable setting (see the module docstring). ``False``
            gives 8-bit weights, accurate only on VNNI/AMX CPUs.

    Returns:
        ``dst`` as a :class:`~pathlib.Path`.

    Raises:
        ModelLoadError: the graph has no ``Gemm`` head.
        ValueError: no calibration batch.

    Example:
        >>> quantize_model("runs/acme/acme.onnx", "runs/acme/acme-int8.onnx",
        ...                [clf.preprocess(crops)], clf.spec.input.name)
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = [np.ascontiguousarray(b, dtype=np.float32) for b in calibration if len(b)]
    if not batches:
        raise ValueError(f"{src}: no calibration faces given; int8 calibration needs a few hundred faces")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre))
        for i, node in enumerate(graph.graph.node):  # exclusion works by name: name them all
            node.name = node.name or f"{node.op_type}_{i}"
        onnx.save(graph, str(pre))
        quantize_static(str(pre), str(dst), _Batches(batches, input_name), quant_format=QuantFormat.QDQ,
                        nodes_to_exclude=float_tail(graph), reduce_range=reduce_range,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax)
    return dst


def quantize_spec(spec: ModelSpec, faces: np.ndarray, dst: str | Path, max_faces: int, seed: int = 0,
                  note: str = "") -> ModelSpec:
    """Quantise ``spec``'s model to ``dst`` (:func:`quantize_model`), calibrated on at most
    ``max_faces`` of ``faces`` drawn at random with ``seed``; returns the int8 spec (named
    ``<name>-int8``, empty metrics, not saved) with ``note`` and the number of calibration faces
    added to its description.

    Args:
        faces: ``(n, H, W[, C])`` uint8 aligned crops in the model's input size.
    """
    dst = Path(dst)
    clf = EmotionClassifier(spec)
    rng = np.random.default_rng(seed)
    chosen = faces[np.sort(rng.choice(len(faces), size=min(max_faces, len(faces)), replace=False))]
    quantize_model(spec.model_path, dst, [clf.preprocess(chosen[i:i + 64]) for i in range(0, len(chosen), 64)],
                   spec.input.name)
    return dataclasses.replace(spec, name=f"{spec.name}-int8", file=dst.name, sha256=sha256_of(dst), root=dst.parent,
                               spec_path=None, metrics={},
                               description=f"{spec.description}{note.format(n=len(chosen))}")


def quantize_int8(model: str | Path | ModelSpec, data: str | Path, out_dir: str | Path | None = None,
                  calib_faces: int = 1024, seed: int = 0) -> ModelSpec:
    """Write ``<name>-int8.onnx`` and its spec next to the fp32 model (or in ``out_dir``) and
    score it on PublicTest/PrivateTest (FER+ Valid/test for a model with a ``contempt`` output);
    returns the int8 spec.

    Raises:
        ModelLoadError / DatasetError: as for loading and evaluation.
    """
    spec = resolve_spec(model)
    train = load_fer2013(data, ("Training",))["Training"]
    out = Path(out_dir) if out_dir else spec.model_path.parent
    out.mkdir(parents=True, exist_ok=True)
    name = f"{spec.name}-int8"
    int8 = quantize_spec(spec, train.images, out / f"{name}.onnx", calib_faces, seed,
                         note=" Static int8 QDQ quantisation (per-channel 7-bit weights, portable to CPUs without "
                         "VNNI; MinMax activations calibrated on {n} FER-2013 training faces; from the logits on, float).")
    int8 = dataclasses.replace(int8, training={**spec.training, "quantize_command": "python -m affectlens.training"
                               f".quantize --model {spec.name} --calib-faces {calib_faces}"})
    metrics = {}
    ferplus = "contempt" in spec.labels
    evaluate, prefix = (evaluate_ferplus, "ferplus") if ferplus else (evaluate_fer2013, "fer2013")
    keys = ("accuracy", "macro_f1", "ece", "per_class_recall", "n") + (("kl_divergence",) if ferplus else ())
    for split in ("PublicTest", "PrivateTest"):
        r = evaluate(EmotionClassifier(int8), data, split)
        metrics[f"{prefix}_{split_key(split)}"] = {k: r[k] for k in keys}
    test = load_fer2013(data, ("PrivateTest",))["PrivateTest"].images
    metrics["fp32_agreement_private_test"] = top1_agreement(EmotionClassifier(spec), EmotionClassifier(int8), test)
    metrics["measured_on"] = cpu_info().to_dict()
    int8 = dataclasses.replace(int8, metrics=metrics)
    int8.save(out / f"{name}.json")
    return int8


def top1_agreement(reference: EmotionClassifier, candidate: EmotionClassifier, crops: np.ndarray) -> float:
    """Share of ``crops`` on which both classifiers give the same top label (1.0 = all)."""
    a = reference.classify_crops(crops).argmax(1)
    b = candidate.classify_crops(crops).argmax(1)
    return float((a == b).mean()) if len(a) else 1.0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="int8 static QDQ quantisation of an emotion model")
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default="../shared/data/fer2013")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--calib-faces", type=int, default=1024)
    args = ap.parse_args(argv)
    spec = quantize_int8(args.model, args.data, args.out_dir, args.calib_faces)
    print(json.dumps({"model": spec.name, "file": str(spec.model_path), **spec.metrics}, indent=2))


if __name__ == "__main__":
    main()
