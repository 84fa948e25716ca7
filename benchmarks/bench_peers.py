"""AffectLens beside the `fer` PyPI package (the peer), same inputs, same run, same machine.

Usage:
    python benchmarks/bench_peers.py [--threads 2] [--subset N] [--no-install] \\
        [--out benchmarks/results/peers.json]

The peer is installed on demand into its own virtual environment,
``benchmarks/.peers/fer-venv`` (git-ignored), never into the project's: ``fer`` itself with
``--no-deps`` (its declared dependencies pull facenet-pytorch, PyTorch and the GPU build of
TensorFlow, none needed for its Haar + mini-Xception path), then TensorFlow's CPU build,
OpenCV (headless) and the few modules ``fer`` imports (:data:`PEER_REQUIREMENTS`). When that
fails (offline, no wheel for this Python), the script says so, writes the reason into the JSON
and exits 0: the peer is optional and never fails the project's tests.

Measured, both sides with the same timer (:func:`peer_fer.measure`: median of repeated runs
after a warm-up, wall time and the process's CPU time) and ``--threads`` threads each (ONNX Runtime ``threads``; TensorFlow
intra/inter-op and OMP threads; OpenCV on both; fer's TFLite interpreter keeps fer's default
threads, see :class:`peer_fer.FerClassifiers`):

1. classifier-only faces/s at batch 1 and 32 on the same 48×48 gray faces (FER-2013
   PrivateTest faces when the shared data is there, else random-texture crops; the JSON says
   which), preprocessing included: our default model (what the library picks on this CPU) and
   ``fer-vgg48s-int8`` against fer's Keras mini-Xception (called directly, as fer does) and its
   quantised TFLite model (fer's default since 25.x, one face per invoke, as fer does);
2. whole-pipeline images/s on the same 640×480 images (one-face photo, scikit-image's
   astronaut, a FER-2013 face upscaled into a photo; each letterboxed to 640×480):
   ``EmotionRecognizer().predict`` against ``fer.FER().detect_emotions`` (OpenCV Haar
   detector; fer's MTCNN option needs PyTorch and is not measured);
3. FER-2013 PrivateTest accuracy (7 classes) of both, on the 48×48 faces as given.

Prints a markdown table and writes JSON with the CPU, both sides' versions and the ratios
(ours / fer). The machine may be shared: read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from peer_fer import measure, rates  # noqa: E402  (same timer on both sides)

PEER_VENV = HERE / ".peers" / "fer-venv"
#: What the peer's venv gets besides ``fer`` (installed with ``--no-deps``); pinned to versions
#: that install on Python 3.11 / x86-64 Linux.
PEER_FER = "fer==25.10.3"
PEER_REQUIREMENTS = ("tensorflow-cpu==2.19.1", "opencv-python-headless==4.12.0.88", "setuptools<81",
                     "requests", "pillow", "pandas", "tqdm")
PIPELINE_HW = (480, 640)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def peer_ready(venv: Path) -> bool:
    """Whether ``venv`` exists and imports fer, TensorFlow and OpenCV."""
    py = venv_python(venv)
    if not py.is_file():
        return False
    probe = subprocess.run([str(py), "-c", "import fer.fer, tensorflow, cv2"], capture_output=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return probe.returncode == 0


def ensure_peer(venv: Path = PEER_VENV, install: bool = True) -> tuple[Path | None, str]:
    """The peer venv's python, installing it if needed, or ``(None, why not)``."""
    if peer_ready(venv):
        return venv_python(venv), "already installed"
    if not install:
        return None, f"{venv} is missing or broken and --no-install was given"
    base = shutil.which("python3.11") or sys.executable
    print(f"installing the peer into {venv} (once; about 1.7 GB on disk, a few minutes) ...", file=sys.stderr)
    steps = [[base, "-m", "venv", str(venv)],
             [str(venv_python(venv)), "-m", "pip", "install", "-q", "--no-deps", PEER_FER],
             [str(venv_python(venv)), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS]]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, f"`{' '.join(cmd[-3:])}` failed: {' | '.join(tail)}"
    if not peer_ready(venv):
        return None, f"{venv} was installed but does not import fer/tensorflow/cv2"
    return venv_python(venv), "installed now"


def letterbox(img: np.ndarray, hw: tuple[int, int] = PIPELINE_HW, fill: int = 0) -> np.ndarray:
    """``img`` scaled to fit ``hw`` (aspect kept) and padded to exactly ``hw``."""
    import cv2

    h, w = hw
    s = min(h / img.shape[0], w / img.shape[1])
    nh, nw = round(img.shape[0] * s), round(img.shape[1] * s)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    img = cv2.resize(img, (nw, nh), interpolation=interp)
    top, left = (h - nh) // 2, (w - nw) // 2
    return cv2.copyMakeBorder(img, top, h - nh - top, left, w - nw - left, cv2.BORDER_CONSTANT,
                              value=(fill, fill, fill))


def upscaled_face(face48: np.ndarray, hw: tuple[int, int] = PIPELINE_HW) -> np.ndarray:
    """A 48×48 gray face upscaled 5× (cubic) and centred in a mid-gray 640×480 BGR photo."""
    import cv2

    big = cv2.cvtColor(cv2.resize(face48, (240, 240), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    top, left = (hw[0] - 240) // 2, (hw[1] - 240) // 2
    return cv2.copyMakeBorder(big, top, hw[0] - 240 - top, left, hw[1] - 240 - left, cv2.BORDER_CONSTANT,
                              value=(128, 128, 128))


def pipeline_images(data: Path, face48: np.ndarray | None) -> dict[str, np.ndarray]:
    """The 640×480 BGR images both pipelines run on (those whose source is present)."""
    import cv2

    images = {}
    photo = data / "media" / "images" / "single_face.jpg"
    if photo.is_file():
        images["single_face"] = letterbox(cv2.imread(str(photo)))
    spec = importlib.util.find_spec("skimage")  # the file only, as benchmarks/wild reads it
    if spec is not None and spec.submodule_search_locations:
        png = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"
        if png.is_file():
            images["astronaut"] = letterbox(cv2.imread(str(png)))
    if face48 is not None:
        images["fer_face_upscaled"] = upscaled_face(face48)
    return images


def load_faces(data: Path, subset: int | None):
    """``(faces for throughput, PrivateTest images, labels, source)``; the last three are ``None``
    / random texture without the shared FER-2013 file."""
    from affectlens.datasets import load_fer2013
    from affectlens.errors import DatasetError

    try:
        split = load_fer2013(data / "fer2013", ("PrivateTest",))["PrivateTest"]
    except DatasetError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (32, 48, 48), dtype=np.uint8), None, None, "random-texture 48x48 crops"
    from affectlens.labels import EMOTIONS

    images, labels = split.images, np.array(EMOTIONS)[split.labels]  # label names: no order to confuse
    if subset and subset < len(images):
        pick = np.random.default_rng(0).permutation(len(images))[:subset]
        images, labels = images[np.sort(pick)], labels[np.sort(pick)]
    return split.images[:32].copy(), images, labels, "FER-2013 PrivateTest faces (48x48 gray)"


def our_models() -> list[str]:
    from affectlens.models.registry import select_variant

    default = select_variant()[0]
    return list(dict.fromkeys([default, "fer-vgg48s-int8"]))


def ours(faces, private, labels, images, threads: int, min_seconds: float, full_split: bool, data: Path) -> dict:
    """Our figures: per model classifier speed and accuracy, then the default pipeline."""
    from affectlens import EmotionRecognizer, __version__
    from affectlens.classifier import EmotionClassifier
    from affectlens.evaluate import evaluate_fer2013, fer2013_probs
    from affectlens.labels import EMOTIONS

    out = {"version": __version__, "models": {}, "pipeline": {}}
    for name in our_models():
        clf = EmotionClassifier(name, threads=threads, batch_size=256)
        row = {f"b{b}": rates(b, measure(lambda: clf.classify_crops(faces[:b]), min_seconds), "faces")
               for b in (1, 32)}
        if private is not None:
            if full_split:
                row["accuracy"] = evaluate_fer2013(clf, data / "fer2013", "PrivateTest")["accuracy"]
            else:
                pred = np.array(EMOTIONS)[fer2013_probs(clf, private).argmax(1)]
                row["accuracy"] = float((pred == labels).mean())
        out["models"][name] = row
    rec = EmotionRecognizer(threads=threads)
    out["pipeline_model"] = rec.classifier.spec.name
    for name, img in images.items():
        found = rec.predict(img)
        out["pipeline"][name] = {**rates(1, measure(lambda: rec.predict(img), min_seconds), "images"),
                                 "faces_found": len(found), "top": [f.emotion for f in found]}
    out["labels_scored"] = list(EMOTIONS)
    return out


def run_peer(python: Path, faces, private, labels, images, threads: int, min_seconds: float) -> dict:
    """The peer's figures from ``peer_fer.py`` in its own venv (inputs passed as .npy/.npz)."""
    with tempfile.TemporaryDirectory(prefix="affectlens-peers-") as work:
        np.save(os.path.join(work, "faces.npy"), faces)
        np.savez(os.path.join(work, "images.npz"), **images)
        if private is not None:
            np.savez(os.path.join(work, "private.npz"), images=private, labels=labels)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        done = subprocess.run([str(python), str(HERE / "peer_fer.py"), "--work", work, "--threads", str(threads),
                               "--min-seconds", str(min_seconds)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"peer_fer.py failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratios(our: dict, peer: dict) -> dict:
    """ours / fer for every speed figure measured on both sides (wall and CPU-time based), and
    accuracy as a difference in points."""
    out = {}
    pc = peer["classifier"]
    for model, row in our["models"].items():
        for b in (1, 32):
            for kind in ("keras", "tflite"):
                for unit in ("faces_per_s", "faces_per_cpu_s"):
                    out[f"{model}/b{b}/{unit}/vs_fer_{kind}"] = round(row[f"b{b}"][unit] / pc[f"{kind}_b{b}"][unit], 3)
        if "accuracy" in row and "accuracy" in peer:
            for kind in ("keras", "tflite"):
                out[f"{model}/accuracy_minus_fer_{kind}_pts"] = round(
                    100 * (row["accuracy"] - peer["accuracy"][f"{kind}_accuracy"]), 2)
    for name, row in our["pipeline"].items():
        fer_row = peer["pipeline"].get(f"{name}/default_tflite")
        for unit in ("images_per_s", "images_per_cpu_s"):
            out[f"pipeline/{name}/{unit}/vs_fer_default"] = round(row[unit] / fer_row[unit], 3)
    return out


def markdown(result: dict) -> str:
    """The report's tables: wall-clock rates, with CPU-time rates in brackets."""
    our, peer, r = result["ours"], result["peer"], result["ratios"]
    pc, acc, fer_v = peer["classifier"], peer.get("accuracy", {}), peer["versions"]["fer"]
    pct = lambda v: f"{100 * v:.2f}%" if v is not None else "-"  # noqa: E731
    both = lambda d, u: f"{d[u + '_per_s']:.0f} ({d[u + '_per_cpu_s']:.0f})"  # noqa: E731
    lines = [f"CPU: {result['cpu_description']}; {result['threads']} threads each; faces: {result['faces_source']}"
             + (f"; accuracy on {result['accuracy_faces']} PrivateTest faces" if result.get("accuracy_faces") else ""),
             "Rates: per wall second (per CPU second of the process).", "",
             "| classifier | faces/s b1 | faces/s b32 | FER-2013 PrivateTest "
             "| b32 ours / fer Keras, wall (CPU) | b32 ours / fer TFLite, wall (CPU) |",
             "|---|---:|---:|---:|---:|---:|"]
    for model, row in our["models"].items():
        ratio = " | ".join(f"{r[f'{model}/b32/faces_per_s/vs_fer_{k}']:.2f}x "
                           f"({r[f'{model}/b32/faces_per_cpu_s/vs_fer_{k}']:.2f}x)" for k in ("keras", "tflite"))
        lines.append(f"| AffectLens `{model}` | {both(row['b1'], 'faces')} | {both(row['b32'], 'faces')} | "
                     f"{pct(row.get('accuracy'))} | {ratio} |")
    for kind, label in (("keras", "Keras mini-Xception"), ("tflite", "TFLite int8 (its default)")):
        lines.append(f"| fer {fer_v} {label} | {both(pc[f'{kind}_b1'], 'faces')} | {both(pc[f'{kind}_b32'], 'faces')} | "
                     f"{pct(acc.get(f'{kind}_accuracy'))} | | |")
    lines += ["", f"| 640x480 image | AffectLens `{our['pipeline_model']}` img/s [faces] | fer default img/s [faces] "
                  "| fer Keras img/s | ours / fer default, wall (CPU) |", "|---|---:|---:|---:|---:|"]
    for name, row in our["pipeline"].items():
        d, k = peer["pipeline"][f"{name}/default_tflite"], peer["pipeline"][f"{name}/keras"]
        ratio = (f"{r[f'pipeline/{name}/images_per_s/vs_fer_default']:.2f}x "
                 f"({r[f'pipeline/{name}/images_per_cpu_s/vs_fer_default']:.2f}x)")
        lines.append(f"| {name} | {row['images_per_s']:.1f} ({row['images_per_cpu_s']:.1f}) [{row['faces_found']}] | "
                     f"{d['images_per_s']:.1f} ({d['images_per_cpu_s']:.1f}) [{d['faces_found']}] | "
                     f"{k['images_per_s']:.1f} ({k['images_per_cpu_s']:.1f}) | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=os.environ.get("AFFECTLENS_SHARED_DATA", str(ROOT.parent / "shared" / "data")),
                    help="shared data folder (fer2013/, media/)")
    ap.add_argument("--subset", type=int, default=0, help="score accuracy on this many PrivateTest faces (0 = all 3,589)")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="timing window per figure")
    ap.add_argument("--venv", default=str(PEER_VENV), help="the peer's virtual environment")
    ap.add_argument("--no-install", action="store_true", help="skip unless the peer venv is already there")
    ap.add_argument("--out", default=str(HERE / "results" / "peers.json"))
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS",):
        os.environ[var] = str(args.threads)
    import cv2

    from affectlens.cpu import cpu_info

    cv2.setNumThreads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cpu = cpu_info()
    result = {"date": time.strftime("%Y-%m-%d"), "threads": args.threads, "cpu": cpu.to_dict(),
              "cpu_description": cpu.describe()}
    python, how = ensure_peer(Path(args.venv), install=not args.no_install)
    if python is None:
        print(f"SKIPPED: the peer (fer) is not available: {how}")
        result["skipped"] = how
        out.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    data = Path(args.data)
    faces, private, labels, source = load_faces(data, args.subset or None)
    images = pipeline_images(data, faces[0] if private is not None else None)
    result.update(faces_source=source, accuracy_faces=None if private is None else int(len(private)),
                  pipeline_images={k: list(v.shape) for k, v in images.items()}, peer_install=how)
    result["peer"] = run_peer(python, faces, private, labels, images, args.threads, args.min_seconds)
    result["ours"] = ours(faces, private, labels, images, args.threads, args.min_seconds,
                          full_split=not args.subset, data=data)
    result["ratios"] = ratios(result["ours"], result["peer"])
    print(markdown(result))
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
