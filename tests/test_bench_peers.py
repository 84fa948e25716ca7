"""benchmarks/bench_peers.py: its inputs, its skip without the peer, and (opt-in with
AFFECTLENS_PEER_TESTS=1, once the benchmark has made benchmarks/.peers/fer-venv) the peer runner."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import FER2013, need

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load("bench_peers")


def test_letterbox_fits_640x480_keeping_aspect():
    img = np.full((562, 572, 3), 200, np.uint8)
    out = bench.letterbox(img)
    assert out.shape == (480, 640, 3)
    # 572 wide scaled to 480/562 -> 489 wide, centred: black bars left and right only.
    assert out[:, :70].max() == 0 and out[:, -70:].max() == 0
    assert out[:, 80:560].min() > 150


def test_upscaled_face_is_a_bgr_photo_with_the_face_in_the_middle():
    face = np.arange(48 * 48, dtype=np.uint16).reshape(48, 48).astype(np.uint8)
    out = bench.upscaled_face(face)
    assert out.shape == (480, 640, 3)
    assert (out[:100] == 128).all()  # mid-gray padding above the face
    assert out[240, 320].std() == 0  # gray face: B == G == R


def test_missing_peer_skips_and_writes_why(tmp_path):
    out = tmp_path / "peers.json"
    rc = bench.main(["--no-install", "--venv", str(tmp_path / "no-venv"), "--out", str(out)])
    assert rc == 0
    result = json.loads(out.read_text())
    assert "no-venv" in result["skipped"] and "--no-install" in result["skipped"]
    assert result["cpu"]["flags"] is not None and "ours" not in result


@pytest.mark.slow  # imports TensorFlow: 16 s on the shared 2-core machine, hence opt-in
@pytest.mark.skipif(not bench.venv_python(bench.PEER_VENV).is_file(), reason="peer venv not installed (bench_peers.py makes it)")
@pytest.mark.skipif(os.environ.get("AFFECTLENS_PEER_TESTS") != "1", reason="set AFFECTLENS_PEER_TESTS=1 to test the fer peer")
def test_peer_classifiers_read_fer2013_faces():
    from affectlens.datasets import load_fer2013
    from affectlens.labels import EMOTIONS

    faces = load_fer2013(need(FER2013), ("PrivateTest",))["PrivateTest"]
    code = ("import sys, json, numpy as np; sys.path.insert(0, 'benchmarks'); import peer_fer as p; "
            "p.set_threads(1); c = p.FerClassifiers(1); x = np.load(sys.argv[1]); "
            "k, t = c.keras_probs(x), c.tflite_probs(x); n = np.array(p.FER_LABELS); "
            "print(json.dumps({'k': n[k.argmax(1)].tolist(), 't': n[t.argmax(1)].tolist(), 's': k.sum(1).tolist()}))")
    path = Path(__file__).parent / "artifacts"
    path.mkdir(exist_ok=True)
    np.save(path / "peer_faces.npy", faces.images[:32])
    done = subprocess.run([str(bench.venv_python(bench.PEER_VENV)), "-c", code, str(path / "peer_faces.npy")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-1000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert np.allclose(got["s"], 1, atol=1e-3)  # softmax rows
    keras, lite = np.array(got["k"]), np.array(got["t"])
    assert np.mean(keras == lite) >= 0.75  # its two models mostly agree
    assert np.mean(keras == np.array(EMOTIONS)[faces.labels[:32]]) >= 0.45  # far above chance (1/7)
