"""Pipeline speed and memory on this machine; prints a table and writes JSON.

Usage:
    python benchmarks/bench_pipeline.py [--threads 2] [--out benchmarks/results/pipeline.json]

Figures: classifier throughput on aligned faces (batch 1 and 32), detector latency at
640x480, end-to-end images/s on the shared photos (or the bundled samples), peak resident
memory, and the installed size of the runtime environment. Speeds from one run are only
comparable with each other (ratios), not across machines.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_IMAGES = ROOT.parent / "shared" / "data" / "media" / "images"
RUNTIME_PACKAGES = ("numpy", "cv2", "onnxruntime", "retinaface", "tqdm", "affectlens")


def _timeit(fn, min_seconds: float = 2.0, min_runs: int = 5) -> float:
    """Median seconds per call."""
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def install_size_mb() -> dict:
    """Size on disk of each runtime package (and the libraries vendored beside it)."""
    import importlib.util

    sizes = {}
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        pkg = Path(next(iter(spec.submodule_search_locations)))
        total = _dir_size_mb(pkg)
        for libs in pkg.parent.glob(f"{pkg.name.replace('cv2', 'opencv_python')}*.libs"):
            total += _dir_size_mb(libs)
        sizes[name] = round(total, 1)
    sizes["total"] = round(sum(sizes.values()), 1)
    return sizes


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default="benchmarks/results/pipeline.json")
    args = ap.parse_args(argv)

    from affectlens import EmotionRecognizer, load_image
    from affectlens.samples import sample_images

    rec = EmotionRecognizer(model=args.model, threads=args.threads)
    clf, det = rec.classifier, rec.detector
    h, w = clf.crop_size_hw
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (32, h, w, 3), dtype=np.uint8)
    t1 = _timeit(lambda: clf.classify_crops(crops[:1]))
    t32 = _timeit(lambda: clf.classify_crops(crops))

    from affectlens.classifier import EmotionClassifier
    from affectlens.models import available_models

    per_model = {}
    for name in available_models():
        other = EmotionClassifier(name, threads=args.threads)
        oh, ow = other.crop_size_hw
        batch = rng.integers(0, 256, (32, oh, ow, 3), dtype=np.uint8)
        per_model[name] = {"faces_per_s_batch1": round(1 / _timeit(lambda: other.classify_crops(batch[:1])), 1),
                           "faces_per_s_batch32": round(32 / _timeit(lambda: other.classify_crops(batch)), 1),
                           "fer2013_private_test_accuracy":
                               other.spec.metrics.get("fer2013_private_test", {}).get("accuracy")}

    paths = sorted(SHARED_IMAGES.glob("*.*")) if SHARED_IMAGES.is_dir() else sample_images()
    images = [load_image(p) for p in paths]
    import cv2

    frame = cv2.resize(images[0], (640, 480), interpolation=cv2.INTER_AREA)
    t_det = _timeit(lambda: det.detect(frame))
    faces_in_frame = len(det.detect(frame))

    n_faces = sum(len(rec.predict_bgr(im)) for im in images)
    t_e2e = _timeit(lambda: [rec.predict_bgr(im) for im in images], min_seconds=3, min_runs=3)
    t_e2e_decode = _timeit(lambda: [rec.predict(p) for p in paths], min_seconds=3, min_runs=3)

    result = {
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "threads": args.threads},
        "model": clf.spec.name,
        "classifier_faces_per_s_batch1": round(1 / t1, 1),
        "classifier_faces_per_s_batch32": round(32 / t32, 1),
        "classifier_models": per_model,
        "detector_ms_640x480": round(t_det * 1000, 2),
        "detector_faces_in_640x480_frame": faces_in_frame,
        "end_to_end_images": [str(p.name) for p in paths],
        "end_to_end_faces": n_faces,
        "end_to_end_images_per_s": round(len(images) / t_e2e, 2),
        "end_to_end_images_per_s_with_decode": round(len(paths) / t_e2e_decode, 2),
        "image_sizes": [list(im.shape[:2]) for im in images],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "install_size_mb": install_size_mb(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        if k not in ("end_to_end_images", "image_sizes"):
            print(f"{k:40s} {v}")
    print(f"wrote {out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
