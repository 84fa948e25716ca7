"""The model folder a custom training run writes, which ``--model MODEL_DIR`` loads everywhere::

    MODEL_DIR/model.onnx        fp32 graph: mirror views, calibration temperature and softmax folded in
    MODEL_DIR/model.json        its spec (sha256, labels, input, alignment, metrics, data statistics)
    MODEL_DIR/model-int8.onnx   int8 graph + model-int8.json (portable 7-bit weights, calibrated on training faces)
    MODEL_DIR/MODEL_CARD.md     data statistics, evaluation, base model's scores, limits
    MODEL_DIR/metrics.json      the same figures, machine-readable
    MODEL_DIR/splits.json       which faces (ids of the prepared data set) trained, validated, tested
    MODEL_DIR/history.json      per-epoch training history

Scores are computed by running the exported file through
:class:`~affectlens.classifier.EmotionClassifier`, the class inference uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from affectlens.models.spec import ModelSpec, sha256_of

logger = logging.getLogger(__name__)

LICENCE = ("weights fine-tuned on your own data: the terms of that data apply (AffectLens code and the base "
           "model: MIT)")


def export(net: torch.nn.Module, path: Path, inp, temperature: float) -> None:
    """ONNX with mirror TTA, temperature and softmax folded in (input: normalised NCHW)."""
    from affectlens.training.export import _Deployed

    wrapped = _Deployed(net.cpu().eval().float(), temperature, tta=True).eval()
    dummy = torch.zeros(2, inp.channels, *inp.size_hw)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(wrapped, (dummy,), str(path), input_names=[inp.name], output_names=["probs"],
                      dynamic_axes={inp.name: {0: "batch"}, "probs": {0: "batch"}}, opset_version=17, dynamo=False)


def _spec(name: str, onnx_path: Path, labels, inp, alignment, temperature: float, **extra) -> ModelSpec:
    return ModelSpec(name=name, file=onnx_path.name, sha256=sha256_of(onnx_path), labels=tuple(labels), input=inp,
                     alignment=alignment, temperature=float(temperature), tta=("hflip",), root=onnx_path.parent,
                     **extra)


def onnx_probs(net, inp, temperature: float, images: np.ndarray, work: Path) -> np.ndarray:
    """Probabilities of ``images`` from ``net`` exported to ONNX and run by the inference classifier."""
    from affectlens.alignment import FER2013_TEMPLATE
    from affectlens.classifier import EmotionClassifier
    from affectlens.models.spec import AlignmentSpec

    path = work / "scored.onnx"
    export(net, path, inp, temperature)
    n_out = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1].out_features
    spec = _spec("scored", path, [str(i) for i in range(n_out)], inp, AlignmentSpec(FER2013_TEMPLATE), temperature)
    return EmotionClassifier(spec).classify_crops(images)


def _manifest_sha(root: Path) -> str:
    return hashlib.sha256((root / "manifest.csv").read_bytes()).hexdigest()


def data_statistics(ts, parts: dict[str, np.ndarray]) -> dict:
    """Faces and subjects per class and per split, and what preparation skipped."""
    labels = np.asarray(ts.labels)[ts.y]
    stats = {"dataset": str(ts.data.root), "faces": int(len(ts.y)), "subjects": len(set(ts.subjects.tolist())),
             "per_class": {lab: {"faces": int((labels == lab).sum()),
                                 "subjects": len(set(ts.subjects[labels == lab].tolist()))} for lab in ts.labels},
             "per_split": {k: {"faces": int(len(v)), "subjects": len(set(ts.subjects[v].tolist()))}
                           for k, v in parts.items()},
             "preparation": {k: ts.data.meta.get(k) for k in ("source", "base", "problems", "warnings")}}
    return stats


def write_model_folder(out: Path, net, inp, temperature: float, ts, parts, base_spec: ModelSpec, pretrained: bool,
                       opts, summary: dict, cv: dict | None, base_clf, seconds: float) -> dict:
    """Export, score on the test subjects, and write every file of the model folder."""
    from affectlens.classifier import EmotionClassifier
    from affectlens.training.custom import base_zero_shot, scores

    out.mkdir(parents=True, exist_ok=True)
    name = opts.name or out.name
    onnx_path = out / "model.onnx"
    export(net, onnx_path, inp, temperature)
    stats = data_statistics(ts, parts)
    base_name = base_spec.name if pretrained else "none"
    training = {"base": base_name, "arch": base_spec.training.get("arch", "vgg48_s"),
                "data": f"{stats['faces']} faces of {stats['subjects']} subjects ({ts.data.root})",
                "data_statistics": stats, "epochs_max": opts.epochs, "epochs_run": summary["epochs_run"],
                "best_epoch": summary["best_epoch"], "class_weights": opts.class_weights,
                "split": "subject-disjoint train/val/test "
                         f"({1 - opts.val_fraction - opts.test_fraction:.0%}/{opts.val_fraction:.0%}/{opts.test_fraction:.0%} "
                         "of the faces, by subject); temperature fitted on val",
                "command": f"affectlens train --data {ts.data.root} --base {opts.base} --out {out}"}
    spec = _spec(name, onnx_path, ts.labels, inp, base_spec.alignment, temperature, training=training,
                 license=LICENCE, description=f"custom model fine-tuned from {base_name} on {ts.data.root}"
                 if pretrained else f"custom model trained from scratch on {ts.data.root}")
    test = parts["test"]
    clf = EmotionClassifier(spec)
    probs = clf.classify_crops(ts.images[test])
    metrics = {"test": scores(probs, ts.y[test], ts.labels)}
    base = base_zero_shot(base_clf, ts.images[test], ts.y[test], ts.labels)
    if base:
        mine = base_zero_shot(clf, ts.images[test], ts.y[test], ts.labels)
        metrics["test"]["shared_classes_accuracy"] = mine["accuracy"]
        metrics["base_test"] = {**base, "model": base_spec.name}
    if cv:
        metrics["cross_validation"] = cv
    metrics["seconds"] = round(seconds, 1)
    spec = dataclasses.replace(spec, metrics=metrics)
    spec.save(out / "model.json")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "history.json").write_text(json.dumps(summary["history"], indent=1) + "\n")
    (out / "splits.json").write_text(json.dumps(
        {"dataset": str(ts.data.root), "manifest_sha256": _manifest_sha(ts.data.root), "seed": opts.seed,
         **{k: ts.ids[v].tolist() for k, v in parts.items()}}) + "\n")
    int8 = write_int8(spec, ts.images[parts["train"]], ts.images[test], ts.y[test], ts.labels, seed=opts.seed)
    metrics["int8_test"] = {"accuracy": int8.metrics["test"]["accuracy"],
                            "fp32_agreement": int8.metrics["fp32_agreement_test"]}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "MODEL_CARD.md").write_text(model_card(spec, stats, metrics, int8))
    return metrics


def write_int8(spec: ModelSpec, calib_images: np.ndarray, test_images: np.ndarray, test_y: np.ndarray,
               labels, max_calib_faces: int = 512, seed: int = 0) -> ModelSpec:
    """``model-int8.onnx`` + its spec beside the fp32 model: static QDQ with the portable settings
    (:func:`affectlens.training.quantize.quantize_model`, 7-bit weights), calibrated on training
    faces of this data set, scored on the test faces with its top-1 agreement with fp32."""
    from affectlens.classifier import EmotionClassifier
    from affectlens.cpu import cpu_info
    from affectlens.training.custom import scores
    from affectlens.training.quantize import quantize_spec

    fp32 = EmotionClassifier(spec)
    int8 = quantize_spec(spec, calib_images, spec.model_path.parent / "model-int8.onnx", max_calib_faces, seed,
                         note="; static int8 QDQ, 7-bit weights (portable), calibrated on {n} training faces")
    p8 = EmotionClassifier(int8).classify_crops(test_images)  # run once: scores and agreement
    agreement = float((fp32.classify_crops(test_images).argmax(1) == p8.argmax(1)).mean()) if len(p8) else 1.0
    metrics = {"test": scores(p8, test_y, labels), "fp32_agreement_test": agreement,
               "measured_on": cpu_info().to_dict()}
    int8 = dataclasses.replace(int8, metrics=metrics)
    int8.save(spec.model_path.parent / "model-int8.json")
    return int8


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def model_card(spec: ModelSpec, stats: dict, metrics: dict, int8: ModelSpec | None = None) -> str:
    """MODEL_CARD.md text from the spec, the data statistics and the evaluation."""
    t = metrics["test"]
    lines = [f"# Model card: {spec.name}", "",
             f"{spec.description}. Labels: {', '.join(spec.labels)}. Input: {spec.input.size_hw[0]}x{spec.input.size_hw[1]} "
             f"{spec.input.color} faces aligned on 5 landmarks (the same detector and template as inference).", "",
             "## Responsible use", "",
             "It reads facial appearance, not inner state. Use it only with the informed consent of the people "
             "analysed, never for decisions about individuals, and only on faces like those it was trained on "
             "(see the data below).", "",
             "## Data", "",
             f"{stats['faces']} faces of {stats['subjects']} subjects from `{stats['dataset']}` "
             f"(prepared from `{stats['preparation'].get('source')}`).", "",
             "| class | faces | subjects |", "|---|---|---|"]
    lines += [f"| {k} | {v['faces']} | {v['subjects']} |" for k, v in stats["per_class"].items()]
    lines += ["", "| split | faces | subjects |", "|---|---|---|"]
    lines += [f"| {k} | {v['faces']} | {v['subjects']} |" for k, v in stats["per_split"].items()]
    lines += ["", "No subject is in two splits."]
    prep = stats["preparation"]
    if prep.get("problems"):
        lines.append(f"Skipped or partly used at preparation: {prep['problems']}.")
    for w in prep.get("warnings") or []:
        lines.append(f"- warning: {w}")
    lines += ["", "## Evaluation (test subjects, never seen in training)", "",
              f"Accuracy {_pct(t['accuracy'])}, macro-F1 {t['macro_f1']:.3f}, ECE {t['ece']:.3f} on {t['n']} faces.", "",
              "| class | recall | precision |", "|---|---|---|"]
    lines += [f"| {k} | {_pct(t['per_class_recall'][k])} | {_pct(t['per_class_precision'][k])} |" for k in spec.labels]
    b = metrics.get("base_test")
    if b:
        lines += ["", f"Base model `{b['model']}` without training on these faces, on the {len(b['classes'])} classes "
                  f"it shares ({', '.join(b['classes'])}; {b['n']} faces): accuracy {_pct(b['accuracy'])}, macro-F1 "
                  f"{b['macro_f1']:.3f}; this model on the same faces and classes: "
                  f"{_pct(t.get('shared_classes_accuracy'))}."]
    cv = metrics.get("cross_validation")
    if cv:
        lines += ["", f"Subject-disjoint {cv['folds']}-fold cross-validation: accuracy {_pct(cv['accuracy_mean'])} "
                  f"± {100 * cv['accuracy_sd']:.1f} (sd over folds), macro-F1 {cv['macro_f1_mean']:.3f}"
                  + (f"; base model zero-shot on the same folds ({len(cv['base_classes'])} shared classes): "
                     f"{_pct(cv['base_accuracy_mean'])} ± {100 * cv['base_accuracy_sd']:.1f}" if "base_accuracy_mean" in cv
                     else "") + "."]
    lines += ["", "## Training", "",
              f"Base: {spec.training['base']}; {spec.training['epochs_run']} epochs run (best {spec.training['best_epoch']}, "
              f"early stopping on validation macro-F1), class weights {spec.training['class_weights']}, calibration "
              f"temperature {spec.temperature:.3f}; {metrics.get('seconds', 0):.0f} s in all.",
              f"Command: `{spec.training['command']}`.", "",
              "Files: `model.onnx` + `model.json`" + (f", `{int8.file}` + `model-int8.json` (int8, 7-bit weights: "
                                                      f"test accuracy {_pct(int8.metrics['test']['accuracy'])}, "
                                                      f"{_pct(int8.metrics['fp32_agreement_test'])} top-1 agreement "
                                                      "with fp32)" if int8 else "")
              + f"; load with `--model {spec.root}` or `EmotionRecognizer(model=\"{spec.root}\")`.", "",
              "## Limits", "",
              "Scores hold for faces like the test subjects (camera, lighting, pose, people). Few subjects per class "
              "make the figures uncertain; posed expressions differ from spontaneous ones.", ""]
    return "\n".join(lines)
