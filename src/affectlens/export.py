"""Model bundles for on-device apps (Android, iOS, other ONNX Runtime hosts).

``affectlens export --format ort|onnx --out DIR`` writes the face detector and an emotion model
in the chosen format, with the model's spec JSON (every preprocessing constant), ``labels.txt``,
for ORT the operator list of a reduced ONNX Runtime build (``required_operators.config``), and
``manifest.json`` with a sha256 per file and the verification run here: the exported files are
run with ONNX Runtime on real faces and compared with this library (top-emotion agreement must
reach ``min_agreement``). TFLite is not offered: no ONNX→TFLite converter installs from the
registries without TensorFlow.

The model may be a shipped name or a customer's model folder (``affectlens train --data ...
--out MODEL_DIR``) with labels of its own: the bundle's spec is the contract every runtime reads
(labels, input size, channels, preprocessing constants, sha256, the thresholds and a colour per
label), and the web/Node SDK loads the same folder (``EmotionRecognizer.create({ modelPath })``).

Example:
    >>> manifest = export_bundle("ort", "out/mobile")
    >>> manifest["verification"]["agreement"]
    1.0
    >>> export_bundle("onnx", "out/mine-web", model="models/mine")["labels"][-1]
    'contempt'
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from affectlens.classifier import EmotionClassifier
from affectlens.detection import DetectorOptions, RetinaFaceDetector, retinaface_onnx_bytes
from affectlens.errors import AffectLensError, ModelLoadError
from affectlens.imageio import load_image
from affectlens.models.registry import DEFAULT_MODEL, available_models, resolve_spec
from affectlens.models.spec import ModelSpec, verify_model_file

logger = logging.getLogger(__name__)

FORMATS = ("ort", "onnx")
DETECTOR_FILE = f"{RetinaFaceDetector.name}.onnx"
#: The shared public data (as the tests find it): $AFFECTLENS_SHARED_DATA or ../shared/data
#: beside a source checkout. Without it only the bundled sample photos are used.
SHARED = Path(os.environ.get("AFFECTLENS_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


class ExportError(AffectLensError):
    """An export that cannot be written or fails its verification."""


def portable_default() -> str:
    """The default model of a phone bundle: the default family's fp32 file. Phones are Arm CPUs,
    where :func:`~affectlens.models.registry.select_variant` runs fp32 (ONNX Runtime's int8
    kernels are not faster there for these networks), and no phone was available here to
    measure the int8 file on."""
    fp32 = DEFAULT_MODEL.removesuffix("-int8")
    return fp32 if fp32 in available_models() else DEFAULT_MODEL


def quality_constants() -> dict:
    """The face-quality constants (:mod:`affectlens.quality`) the SDK and mobile ports use, as
    written into the SDK's ``models/manifest.json`` and into every bundle's manifest."""
    from affectlens import quality
    from affectlens.faces import UNRELIABLE
    from affectlens.video.aggregate import FRONTAL_NOSE_RATIO

    return {"min_face_px": quality.MIN_FACE_PX, "good_face_px": quality.GOOD_FACE_PX,
            "good_sharpness": quality.GOOD_SHARPNESS, "pose_tolerance": quality.POSE_TOLERANCE,
            "pose_limit": quality.POSE_LIMIT, "frontal_nose_ratio": FRONTAL_NOSE_RATIO,
            "default_min_quality": quality.DEFAULT_MIN_QUALITY, "signals": list(quality.SIGNALS),
            "unreliable": UNRELIABLE}


def thresholds() -> dict:
    """The thresholds a bundle's spec carries: the library's defaults for face detection and for
    the quality below which a face reads "unreliable" (the SDK reads them from the spec)."""
    from affectlens.quality import DEFAULT_MIN_QUALITY

    d = DetectorOptions()
    return {"min_quality": DEFAULT_MIN_QUALITY,
            "detector": {"min_score": d.min_score, "nms_iou": d.nms_iou, "max_side_px": d.max_side_px,
                         "coarse_side_px": d.coarse_side_px}}


def source_spec(model: str | Path | None) -> ModelSpec:
    """The spec of the model to export, checked: spec present, model file matching its sha256,
    NCHW input whose graph agrees with the spec.

    Raises:
        ModelLoadError: unknown model, a folder without a spec, or a sha256 mismatch.
        ExportError: an input layout or graph the bundle's runtimes cannot feed.
    """
    ref = Path(str(model)) if model is not None else None
    if ref is not None and ref.is_dir() and not any(ref.glob("*.json")):
        raise ModelLoadError(f"{ref}: no model spec (model.json) in this folder; a model folder is what "
                             "`affectlens train --data DATASET --out MODEL_DIR` writes, and an ONNX file needs the "
                             "spec JSON beside it (it says how to feed the model and cannot be guessed)")
    spec = resolve_spec(model or portable_default())
    try:
        verify_model_file(spec)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{exc}; re-run `affectlens train` or restore the file the spec was written for "
                             "(nothing was exported)") from None
    _check_layout(spec)
    return spec


def _check_layout(spec: ModelSpec) -> None:
    """The SDK and the mobile code feed float32 NCHW ``(N, C, H, W)``; refuse anything else."""
    fix = "export the network with an NCHW float32 input and its spec with input.layout 'NCHW'"
    if spec.input.layout != "NCHW":
        raise ExportError(f"{spec.model_path}: unsupported input layout {spec.input.layout!r} in the spec; "
                          f"expected 'NCHW'; {fix}")
    sess = _session(spec.model_path)
    inputs = {i.name: i for i in sess.get_inputs()}
    if spec.input.name not in inputs:
        raise ExportError(f"{spec.model_path}: the spec names input {spec.input.name!r}, the graph has "
                          f"{sorted(inputs)}; fix input.name in the spec")
    inp = inputs[spec.input.name]
    want = (spec.input.channels, *spec.input.size_hw)
    shape = list(inp.shape)
    if inp.type != "tensor(float)" or len(shape) != 4 or any(
            isinstance(g, int) and g != w for g, w in zip(shape[1:], want)):
        raise ExportError(f"{spec.model_path}: unsupported input {inp.type} {shape}; expected float32 "
                          f"(N, {', '.join(map(str, want))}) (NCHW, {spec.input.color}); {fix}")
    outs = {o.name: o for o in sess.get_outputs()}
    width = outs[spec.output_name].shape[-1] if spec.output_name in outs else None
    if spec.output_name not in outs or (isinstance(width, int) and width != len(spec.labels)):
        raise ExportError(f"{spec.model_path}: expected output {spec.output_name!r} with {len(spec.labels)} "
                          f"columns (one per label), the graph has {[(o.name, o.shape) for o in outs.values()]}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _convert_to_ort(src_dir: Path, out_dir: Path) -> list[str]:
    """ONNX → ORT format with onnxruntime's own converter, optimised for ARM CPUs (phones);
    returns its log lines. The operator list names the bundle's files, not the temp folder."""
    cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(src_dir),
           "--output_dir", str(out_dir), "--optimization_style", "Fixed", "--target_platform", "arm"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise ExportError(f"onnxruntime's ORT converter failed ({run.returncode}): {run.stderr.strip()[-800:]}")
    ops = out_dir / "required_operators.config"
    ops.write_text("".join(line.replace(str(out_dir) + "/", "") for line in ops.read_text().splitlines(True)))
    return run.stdout.splitlines()


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def reference_images() -> list[Path]:
    """Real photos to verify on: the shared media photos when present, and the bundled samples."""
    from affectlens.samples import sample_images

    found = []
    for sub in ("media/images", "media/detection"):
        d = SHARED / sub
        if d.is_dir():
            found += sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return found + sample_images()


def verify(detector_file: Path, model_file: Path, model: str, fer_faces: int = 1000) -> dict:
    """Run exported files on real faces beside this library's pipeline.

    Compares, face by face, the exported detector + classifier (through the same pre- and
    post-processing code) with :class:`~affectlens.EmotionRecognizer`: on the reference photos
    (detection and classification) and on up to ``fer_faces`` FER-2013 PrivateTest crops
    (classification), when the shared data is present.

    Returns:
        ``{"faces": n, "agreement": share of equal top emotions, "max_prob_diff": ..., "max_box_px": ...}``
    """
    spec = resolve_spec(model)
    lib_det, lib_clf = RetinaFaceDetector(DetectorOptions()), EmotionClassifier(spec)
    exp_det = RetinaFaceDetector(DetectorOptions(), model_bytes=detector_file.read_bytes())
    exp_clf = EmotionClassifier(spec)
    exp_clf._session = _session(model_file)  # same spec and preprocessing, the exported graph
    same, diffs, boxes, n_photo = [], [0.0], [0.0], 0
    for path in reference_images():
        img = load_image(path)
        a, b = lib_det.detect(img), exp_det.detect(img)
        if len(a) != len(b):
            raise ExportError(f"{path}: the exported detector finds {len(b)} faces, the library {len(a)}")
        if len(a):
            boxes.append(float(np.abs(a.xyxy - b.xyxy).max()))
            pa, pb = lib_clf.classify(img, a.landmarks), exp_clf.classify(img, a.landmarks)
            same += list(pa.argmax(1) == pb.argmax(1))
            diffs.append(float(np.abs(pa - pb).max()))
            n_photo += len(a)
    crops = _fer_crops(fer_faces, spec.input.size_hw)
    if len(crops):
        pa, pb = lib_clf.classify_crops(crops), exp_clf.classify_crops(crops)
        same += list(pa.argmax(1) == pb.argmax(1))
        diffs.append(float(np.abs(pa - pb).max()))
    return {"faces": len(same), "photo_faces": n_photo, "fer2013_crops": int(len(crops)),
            "agreement": float(np.mean(same)) if same else None,
            "max_prob_diff": round(max(diffs), 6), "max_box_px": round(max(boxes), 4)}


def _fer_crops(n: int, size_hw) -> np.ndarray:
    csv = SHARED / "fer2013"
    if n <= 0 or not csv.is_dir():
        return np.zeros((0, *size_hw), np.uint8)
    from affectlens.datasets.fer2013 import load_fer2013

    images = load_fer2013(csv, ("PrivateTest",))["PrivateTest"].images[:n]
    h, w = size_hw
    if images.shape[1:] != (h, w):
        images = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images])
    return images


def export_bundle(fmt: str, out: str | Path, model: str | Path | None = None, verify_faces: int = 1000,
                  min_agreement: float = 0.99) -> dict:
    """Write a bundle and verify it.

    Args:
        fmt: ``"ort"`` (ONNX Runtime Mobile) or ``"onnx"`` (also what the web/Node SDK loads).
        out: output folder (created; existing bundle files are replaced).
        model: emotion model name, spec/ONNX path or model folder (default: :func:`portable_default`).
        verify_faces: FER-2013 crops used in the verification besides the photos (0 = photos only).
        min_agreement: lowest top-emotion agreement with this library that passes.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        ExportError: unknown format, unsupported input layout, failed conversion or verification
            below ``min_agreement``.
        ModelLoadError: unknown model, a folder without a spec, or a spec/ONNX sha256 mismatch.

    Example:
        >>> m = export_bundle("onnx", "out/mine-web", model="models/mine", verify_faces=0)
        >>> m["spec"], m["emotion_model"], m["verification"]["passed"]
        ('model.json', 'model.onnx', True)
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)} "
                          "(tflite: no offline converter without TensorFlow; see docs/mobile.md)")
    if not 0.0 <= min_agreement <= 1.0:
        raise ExportError(f"min_agreement must be in [0, 1], got {min_agreement}")
    spec = source_spec(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = _write_models(fmt, spec, out)
    spec_file = Path(names[1]).with_suffix(".json").name  # beside the model file: Python loads the folder too
    (out / spec_file).write_text(json.dumps(bundle_spec(spec, out / names[1], fmt), indent=2) + "\n")
    (out / "labels.txt").write_text("\n".join(spec.labels) + "\n")
    result = verify(out / names[0], out / names[1], spec, verify_faces)
    manifest = _manifest(fmt, spec, out, names, spec_file, result, min_agreement)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if not manifest["verification"]["passed"]:
        raise ExportError(f"{out}: the exported model agrees with the library on {result['agreement']} of "
                          f"{result['faces']} faces, below {min_agreement}; see manifest.json")
    return manifest


def _write_models(fmt: str, spec: ModelSpec, out: Path) -> list[str]:
    """Detector and emotion model into ``out`` (converted for ORT); returns the bundle's file
    names: detector, emotion model, then (ORT) the operator list."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "onnx"
        src.mkdir()
        (src / DETECTOR_FILE).write_bytes(retinaface_onnx_bytes())
        shutil.copyfile(spec.model_path, src / spec.file)
        if fmt == "onnx":
            names = [DETECTOR_FILE, spec.file]
            for f in names:
                shutil.copyfile(src / f, out / f)
            return names
        _convert_to_ort(src, Path(tmp) / "ort")
        names = [Path(DETECTOR_FILE).with_suffix(".ort").name, Path(spec.file).with_suffix(".ort").name,
                 "required_operators.config"]
        for f in names:
            shutil.copyfile(Path(tmp) / "ort" / f, out / f)
        return names


def bundle_spec(spec: ModelSpec, model_file: Path, fmt: str) -> dict:
    """The bundle's spec JSON: the source spec as written (labels, input, alignment, metrics, ...)
    with ``file``/``sha256`` naming the exported file, ``exported_from`` the original, and what
    every runtime needs spelled out: ``input.channels``, ``thresholds`` and ``palette`` (one
    ``#rrggbb`` per label; a deterministic colour for labels outside the project palette)."""
    from affectlens.labels import label_colors

    d = _source_spec_json(spec)
    d["input"] = {**d["input"], "layout": "NCHW", "channels": spec.input.channels}
    d["file"] = model_file.name
    d["sha256"] = _sha256(model_file)
    d["exported_from"] = {"file": spec.file, "sha256": spec.sha256, "format": fmt}
    d["thresholds"] = thresholds()
    d["palette"] = label_colors(spec.labels)
    return d


def _source_spec_json(spec: ModelSpec) -> dict:
    """The source spec JSON as written (with any fields this version does not model), else the
    parsed spec (a spec built in code, or a JSON that no longer describes this model file)."""
    path = spec.spec_path
    if path is not None and path.is_file():
        d = json.loads(path.read_text())
        if d.get("file") == spec.file and d.get("sha256") == spec.sha256:
            return d
    return spec.to_dict()


def _manifest(fmt: str, spec: ModelSpec, out: Path, names: list[str], spec_file: str, result: dict,
              min_agreement: float) -> dict:
    from affectlens.video.aggregate import NOTICE

    files = [*names, spec_file, "labels.txt"]
    passed = bool(result["agreement"] is not None and result["agreement"] >= min_agreement)
    return {
        "kind": "affectlens-bundle", "bundle_version": 1,
        "format": fmt, "model": spec.name, "detector": names[0], "emotion_model": names[1], "spec": spec_file,
        "labels": list(spec.labels),
        "source_model": {"path": str(spec.model_path.resolve()), "sha256": spec.sha256},
        "platforms": ["web (onnxruntime-web, onnx format)", "node (onnxruntime-node)", "android (onnxruntime-android)",
                      "ios (onnxruntime-objc / onnxruntime-c)"],
        "onnxruntime_version": ort.__version__,
        "files": {f: {"sha256": _sha256(out / f), "bytes": (out / f).stat().st_size} for f in files},
        "verification": {**result, "min_agreement": min_agreement, "machine": "this export's host (x86 CPU); "
                         "not run on a phone", "passed": passed},
        "quality": quality_constants(),
        "notice": NOTICE,
        "consent": "Analyse people only with their informed consent; frames stay on the device.",
    }
