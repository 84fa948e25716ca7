"""A real fine-tuned model folder, its export bundle and Python's results on it, made in the test run.

  python make_custom_bundle.py OUT_DIR IMG...

Copies the faces of 14 CK+ subjects (4 per class, all 7 classes incl. contempt; 138 crops) from
``../shared/data/ckplus48``, then runs the CLI as a user would: ``dataset prepare`` →
``train --base default --epochs 1`` → ``export --format onnx`` → ``image --model MODEL_DIR --json``
on IMG... and on a photo of 6 upscaled CK+ faces it writes. Prints one JSON line: the paths, or
``{"skip": reason}`` without the shared data or PyTorch (nothing else is written then).
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(os.environ.get("AFFECTLENS_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"))
CKPLUS48 = SHARED / "ckplus48"


def cli(*args) -> None:
    run = subprocess.run([sys.executable, "-m", "affectlens", *map(str, args)], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"affectlens {' '.join(map(str, args))} failed ({run.returncode}):\n{run.stderr[-2000:]}")


def subset(dst: Path, per_class: int = 4) -> list[Path]:
    """The faces of the first ``per_class`` subjects of every class (a few subjects in several)."""
    files = sorted(CKPLUS48.glob("*/*.png"))
    subjects: set[str] = set()
    for cls in sorted({f.parent.name for f in files}):
        subjects |= set(sorted({f.name[:4] for f in files if f.parent.name == cls})[:per_class])
    copied = []
    for f in files:
        if f.name[:4] in subjects:
            (dst / f.parent.name).mkdir(parents=True, exist_ok=True)
            copied.append(Path(shutil.copy(f, dst / f.parent.name / f.name)))
    return copied


def ck_photo(out: Path) -> Path:
    """Six CK+ faces of subjects not trained on, upscaled 4x side by side in one 1180x400 photo."""
    import cv2
    import numpy as np

    canvas = np.full((400, 1180, 3), 190, np.uint8)
    picks = [sorted((CKPLUS48 / c).glob("*.png"))[-1] for c in ("anger", "contempt", "disgust", "happy", "sadness", "surprise")]
    for k, f in enumerate(picks):
        canvas[100:292, 20 + k * 192:212 + k * 192] = cv2.resize(cv2.imread(str(f)), (192, 192), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(out), canvas, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return out


def main(out: Path, images: list[str]) -> dict:
    if not CKPLUS48.is_dir():
        return {"skip": f"shared data not found: {CKPLUS48}"}
    if importlib.util.find_spec("torch") is None:
        return {"skip": "PyTorch not installed (pip install -e '.[train]')"}
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subset(out / "ck")
    cli("dataset", "prepare", out / "ck", "--out", out / "ds", "--layout", "ckplus48", "-q")
    cli("train", "--data", out / "ds", "--base", "default", "--out", out / "model", "--epochs", "1", "--threads", "2")
    cli("export", "--format", "onnx", "--model", out / "model", "--out", out / "bundle", "--verify-faces", "0")
    photos = [*images, str(ck_photo(out / "ck_photo.jpg"))]
    cli("image", *photos, "--model", out / "model", "--json", out / "python.json")
    return {"model_dir": str(out / "model"), "bundle": str(out / "bundle"), "python": str(out / "python.json"),
            "images": photos, "seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2:])))
