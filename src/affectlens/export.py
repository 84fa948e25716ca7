"""Model bundles for on-device apps (Android, iOS, other ONNX Runtime hosts).

``affectlens export --format ort|onnx --out DIR`` writes the face detector and an emotion model
in the chosen format, with the model's spec JSON (every preprocessing constant), ``labels.txt``,
for ORT the operator list of a reduced ONNX Runtime build (``required_operators.config``), and
``manifest.json`` with a sha256 per file and the verification run here: the exported files are
run with ONNX Runtime on real faces and compared with this library (top-emotion agreement must
reach ``min_agreement``). TFLite is not offered: no ONNX→TFLite converter installs from the
registries without TensorFlow.

Example:
    >>> manifest = export_bundle("ort", "out/mobile")
    >>> manifest["verification"]["agreement"]
    1.0
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
from affectlens.errors import AffectLensError
from affectlens.imageio import load_image
from affectlens.models.registry import DEFAULT_MODEL, available_models, resolve_spec

logger = logging.getLogger(__name__)

FORMATS = ("ort", "onnx")
DETECTOR_FILE = f"{RetinaFaceDetector.name}.onnx"
#: The shared public data (as the tests find it): $AFFECTLENS_SHARED_DATA or ../shared/data
#: beside a source checkout. Without it only the bundled sample photos are used.
SHARED = Path(os.environ.get("AFFECTLENS_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


class ExportError(AffectLensError):
    """An export that cannot be written or fails its verification."""


def portable_default() -> str:
    """The model for runtimes other than this machine's native ONNX Runtime (browser, phones):
    the fp32 reference of the default when the default is an int8 file. Measured (docs/sdk.md):
    int8 kernels differ between x86 without VNNI, WASM and ARM, while fp32 agrees everywhere."""
    fp32 = DEFAULT_MODEL.removesuffix("-int8")
    return fp32 if fp32 != DEFAULT_MODEL and fp32 in available_models() else DEFAULT_MODEL


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


def export_bundle(fmt: str, out: str | Path, model: str | None = None, verify_faces: int = 1000,
                  min_agreement: float = 0.99) -> dict:
    """Write a bundle and verify it.

    Args:
        fmt: ``"ort"`` (ONNX Runtime Mobile) or ``"onnx"``.
        out: output folder (created; existing bundle files are replaced).
        model: emotion model name or path (default: :func:`portable_default`).
        verify_faces: FER-2013 crops used in the verification besides the photos (0 = photos only).
        min_agreement: lowest top-emotion agreement with this library that passes.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        ExportError: unknown format, failed conversion or verification below ``min_agreement``.
        ModelLoadError: unknown model.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)} "
                          "(tflite: no offline converter without TensorFlow; see docs/mobile.md)")
    spec = resolve_spec(model or portable_default())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "onnx"
        src.mkdir()
        (src / DETECTOR_FILE).write_bytes(retinaface_onnx_bytes())
        shutil.copyfile(spec.model_path, src / spec.file)
        if fmt == "onnx":
            names = [DETECTOR_FILE, spec.file]
            for f in names:
                shutil.copyfile(src / f, out / f)
        else:
            _convert_to_ort(src, Path(tmp) / "ort")
            names = [Path(DETECTOR_FILE).with_suffix(".ort").name, Path(spec.file).with_suffix(".ort").name]
            for f in [*names, "required_operators.config"]:
                shutil.copyfile(Path(tmp) / "ort" / f, out / f)
            names.append("required_operators.config")
    spec_json = json.loads((spec.root / f"{spec.name}.json").read_text()) if spec.root else spec.to_dict()
    spec_json["file"] = names[1]
    spec_json["sha256"] = _sha256(out / names[1])
    spec_json["exported_from"] = {"file": spec.file, "sha256": spec.sha256, "format": fmt}
    (out / f"{spec.name}.json").write_text(json.dumps(spec_json, indent=2) + "\n")
    (out / "labels.txt").write_text("\n".join(spec.labels) + "\n")
    result = verify(out / names[0], out / names[1], spec, verify_faces)
    files = [*names, f"{spec.name}.json", "labels.txt"]
    manifest = {
        "format": fmt, "model": spec.name, "detector": names[0], "emotion_model": names[1], "spec": f"{spec.name}.json",
        "labels": list(spec.labels),
        "platforms": ["android (onnxruntime-android)", "ios (onnxruntime-objc / onnxruntime-c)"],
        "onnxruntime_version": ort.__version__,
        "files": {f: {"sha256": _sha256(out / f), "bytes": (out / f).stat().st_size} for f in files},
        "verification": {**result, "min_agreement": min_agreement, "machine": "this export's host (x86 CPU); "
                         "not run on a phone", "passed": bool(result["agreement"] is not None
                                                              and result["agreement"] >= min_agreement)},
        "notice": "Reads facial appearance, not inner state; analyse people only with their informed consent.",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if not manifest["verification"]["passed"]:
        raise ExportError(f"{out}: the exported model agrees with the library on {result['agreement']} of "
                          f"{result['faces']} faces, below {min_agreement}; see manifest.json")
    return manifest
