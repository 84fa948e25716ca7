"""Static int8 (QDQ) quantisation of an emotion model, calibrated on FER-2013 training faces
(the same images FER+ relabels, so FER+ models are calibrated on them too).

Static QDQ keeps convolutions in int8 end to end and is 1.4–3.7× faster than fp32 on CPUs
with VNNI/AMX; dynamic quantisation is slower than fp32 for CNNs, so it is not offered.

Usage:
    python -m affectlens.training.quantize --model fer-vgg48s --data ../shared/data/fer2013
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np

from affectlens.classifier import EmotionClassifier
from affectlens.datasets import load_fer2013
from affectlens.errors import ModelLoadError
from affectlens.evaluate import evaluate_fer2013, evaluate_ferplus, split_key
from affectlens.models.registry import resolve_spec
from affectlens.models.spec import ModelSpec, sha256_of


class _FerCalibration:
    """ONNX Runtime calibration reader: batches of preprocessed FER-2013 training faces."""

    def __init__(self, classifier: EmotionClassifier, images: np.ndarray, batch: int = 64):
        self._batches = [classifier.preprocess(images[i:i + batch]) for i in range(0, len(images), batch)]
        self._name = classifier.spec.input.name
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


def quantize_int8(model: str | Path | ModelSpec, data: str | Path, out_dir: str | Path | None = None,
                  calib_faces: int = 1024, seed: int = 0) -> ModelSpec:
    """Write ``<name>-int8.onnx`` and its spec next to the fp32 model (or in ``out_dir``) and
    score it on PublicTest/PrivateTest (FER+ Valid/test for a model with a ``contempt`` output);
    returns the int8 spec.

    Raises:
        ModelLoadError / DatasetError: as for loading and evaluation.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    spec = resolve_spec(model)
    clf = EmotionClassifier(spec)
    h, w = clf.crop_size_hw
    train = load_fer2013(data, ("Training",))["Training"]
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(train), size=min(calib_faces, len(train)), replace=False)
    images = train.images[idx]
    if images.shape[1:] != (h, w):
        import cv2
        images = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR) for im in images])
    out = Path(out_dir) if out_dir else spec.model_path.parent
    out.mkdir(parents=True, exist_ok=True)
    name = f"{spec.name}-int8"
    dst = out / f"{name}.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(spec.model_path), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre))
        for i, node in enumerate(graph.graph.node):  # exclusion works by name: name them all
            node.name = node.name or f"{node.op_type}_{i}"
        onnx.save(graph, str(pre))
        quantize_static(str(pre), str(dst), _FerCalibration(clf, images), quant_format=QuantFormat.QDQ,
                        nodes_to_exclude=float_tail(graph),
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax)
    training = {**spec.training, "quantize_command": f"python -m affectlens.training.quantize --model {spec.name} "
                f"--calib-faces {calib_faces}"}
    int8 = dataclasses.replace(spec, name=name, file=dst.name, sha256=sha256_of(dst), root=out, metrics={},
                               training=training,
                               description=spec.description + " Static int8 QDQ quantisation (per-channel weights, "
                               f"MinMax activations calibrated on {len(images)} FER-2013 training faces; "
                               "from the logits on, float).")
    metrics = {}
    ferplus = "contempt" in spec.labels
    evaluate, prefix = (evaluate_ferplus, "ferplus") if ferplus else (evaluate_fer2013, "fer2013")
    keys = ("accuracy", "macro_f1", "ece", "per_class_recall", "n") + (("kl_divergence",) if ferplus else ())
    for split in ("PublicTest", "PrivateTest"):
        r = evaluate(EmotionClassifier(int8), data, split)
        metrics[f"{prefix}_{split_key(split)}"] = {k: r[k] for k in keys}
    int8 = dataclasses.replace(int8, metrics=metrics)
    int8.save(out / f"{name}.json")
    return int8


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
