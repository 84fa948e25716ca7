"""The ``affectlens`` command, run as a real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import pytest

from conftest import FER2013, IMAGES, need


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "affectlens", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Good photos, bad files and a face-less picture in nested folders."""
    d = tmp_path_factory.mktemp("mixed")
    (d / "sub").mkdir()
    shutil.copy(need(IMAGES / "single_face.jpg"), d / "good.jpg")
    shutil.copy(IMAGES / "multi_face.jpg", d / "sub" / "group.jpg")
    shutil.copy(IMAGES / "free-mountain-vector-01.jpg", d / "mountain.jpg")
    (d / "empty.jpg").write_bytes(b"")
    (d / "noise.jpg").write_bytes(bytes(range(256)) * 8)
    data = (IMAGES / "single_face.jpg").read_bytes()
    (d / "sub" / "cut.jpg").write_bytes(data[: len(data) // 3])
    return d


def test_folder_with_bad_files(mixed_folder, tmp_path):
    out, ann = tmp_path / "r.json", tmp_path / "ann"
    r = run("image", mixed_folder, "--json", out, "--annotate", ann)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    for name, problem in (("empty.jpg", "empty file"), ("noise.jpg", "not a decodable image"),
                          ("cut.jpg", "truncated JPEG")):
        assert name in r.stderr and problem in r.stderr
    doc = json.loads(out.read_text())
    recs = {p.split("/")[-1]: rec for p, rec in ((rec["path"], rec) for rec in doc["images"])}
    assert len(recs) == 6 and doc["summary"]["failed"] == 3
    assert len(recs["good.jpg"]["faces"]) == 1 and recs["good.jpg"]["faces"][0]["emotion"] == "happy"
    assert len(recs["group.jpg"]["faces"]) >= 4
    assert recs["mountain.jpg"]["faces"] == [] and "error" not in recs["mountain.jpg"]
    assert "truncated JPEG" in recs["cut.jpg"]["error"]
    face = recs["good.jpg"]["faces"][0]
    assert abs(sum(face["scores"].values()) - 1) < 1e-4 and len(face["landmarks"]) == 5
    annotated = sorted(p.name for p in ann.iterdir())
    assert annotated == ["good.jpg", "group.jpg", "mountain.jpg"]
    assert cv2.imread(str(ann / "good.jpg")) is not None


def test_all_good_inputs_exit_zero_and_json_to_stdout():
    r = run("image", need(IMAGES / "single_face.jpg"), "--json", "-", "--det-threshold", "0.7")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["images"][0]["width"] > 0 and len(doc["images"][0]["faces"]) == 1


def test_min_face_filters_small_faces():
    r = run("image", need(IMAGES / "multi_face.jpg"), "--json", "-", "--min-face", "5000")
    assert r.returncode == 0
    assert json.loads(r.stdout)["images"][0]["faces"] == []


@pytest.mark.parametrize("args, message", [
    (("image", "does/not/exist.jpg"), "does/not/exist.jpg: no such file or folder"),
    (("image", "{empty}"), "folder holds no image files"),
])
def test_missing_and_empty_inputs(tmp_path, args, message):
    args = [a.replace("{empty}", str(tmp_path)) for a in args]
    r = run(*args)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr


def test_bad_model_is_a_usage_error(tmp_path):
    r = run("image", need(IMAGES / "single_face.jpg"), "--model", tmp_path / "x.onnx")
    assert r.returncode == 2 and "x.onnx: model file not found" in r.stderr and "Traceback" not in r.stderr


def test_evaluate_writes_json(tmp_path):
    out = tmp_path / "eval.json"
    r = run("evaluate", "--data", need(FER2013), "--split", "PublicTest", "--model", "fer-vgg48s-int8", "--json", out)
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["split"] == "PublicTest" and report["n"] == 3589 and report["accuracy"] > 0.6
    assert "macro-F1" in r.stdout


def test_evaluate_missing_data(tmp_path):
    r = run("evaluate", "--data", tmp_path / "nothing")
    assert r.returncode == 2 and "no such file or folder" in r.stderr


def test_models_marks_the_file_chosen_for_this_cpu_and_names_the_cpu():
    from affectlens.cpu import cpu_info
    from affectlens.models import select_variant

    r = run("models")
    chosen, reason = select_variant()
    assert r.returncode == 0 and f"* {chosen} " in r.stdout and reason in r.stdout
    assert f"int8 path {cpu_info().int8_path}" in r.stdout


def test_models_columns_line_up():
    lines = [ln for ln in run("models").stdout.splitlines() if "48x48" in ln]
    assert len(lines) >= 3 and len({ln.index("48x48") for ln in lines}) == 1, lines
    assert len({ln.index(" classes") for ln in lines}) == 1, lines


def test_train_help_lists_the_set_keys():
    r = run("train", "--help")
    assert r.returncode == 0, r.stderr
    for key in ("epochs=30", "lr=0.05", "augment.hflip=0.5", "augment.mixup_alpha=0.0"):
        assert key in r.stdout.replace("\n    ", " "), key


def test_train_help_keys_match_the_config_dataclasses():
    pytest.importorskip("torch")
    import dataclasses

    from affectlens.cli import _train_set_keys
    from affectlens.training.augment import AugmentConfig
    from affectlens.training.config import TrainConfig

    text = _train_set_keys()
    want = {f.name for f in dataclasses.fields(TrainConfig) if f.name != "augment"}
    want |= {f"augment.{f.name}" for f in dataclasses.fields(AugmentConfig)}
    got = {item.split("=")[0].strip() for line in text.splitlines()[1:] for item in line.split(", ") if "=" in item}
    assert want <= got


def test_quiet_hides_progress_but_not_results(tmp_path):
    r = run("image", need(IMAGES / "single_face.jpg"), IMAGES / "multi_face.jpg", "-q")
    assert r.returncode == 0, r.stderr
    assert "single_face.jpg: 1 face(s)" in r.stdout and r.stderr == ""


def test_native_video_messages_do_not_leak(tmp_path):
    from conftest import VIDEOS

    data = need(VIDEOS / "face_noface.mov").read_bytes()
    bad = tmp_path / "cut.mov"
    bad.write_bytes(data[:200_000])   # no moov atom: FFmpeg complains on its own
    r = run("video", bad, "--out", tmp_path / "out")
    assert r.returncode == 1 and "cut.mov" in r.stderr
    assert "moov atom" not in r.stderr and "@ 0x" not in r.stderr, r.stderr
    assert "s of video" not in r.stderr, "no empty progress bar before the error"


def test_video_and_batch_share_one_definition_of_the_video_options():
    from affectlens.cli import build_parser

    parser = build_parser()
    shared = ["--fps", "5", "--smooth", "ema", "--ema-tau", "0.4", "--detect-every", "3", "--classify-per-s", "12",
              "--interval", "2", "--temporal-model", "m"]
    video = vars(parser.parse_args(["video", "clip.mp4", "--out", "o", *shared]))
    batch = vars(parser.parse_args(["batch", "clip.mp4", "--out", "o", *shared]))
    keys = ("fps", "every", "smooth", "ema_tau", "window_s", "window", "hmm_hold", "temporal_model", "detect_every",
            "classify_per_s", "interval")
    assert {k: video[k] for k in keys} == {k: batch[k] for k in keys}
    assert video["classify_per_s"] == 12.0 and video["detect_every"] == 3 and video["fps"] == 5.0
    # the smoothers' settings default to None so that one given for another smoother is refused
    # (VideoOptions holds their values: 0.5 s, 0.3 s, 0.8 s)
    defaults = {"every": 1, "fps": None, "smooth": "hmm", "window_s": None, "window": None, "ema_tau": None,
                "hmm_hold": None, "temporal_model": None, "detect_every": 0, "classify_per_s": 30.0, "interval": 5.0}
    for command in (["video", "clip.mp4", "--out", "o"], ["batch", "clip.mp4", "--out", "o"]):
        got = vars(parser.parse_args(command))
        assert {k: got[k] for k in defaults} == defaults, command
    assert "start" in video and "start" not in batch  # batch has no --start/--end (it reads whole videos)
    with pytest.raises(SystemExit):  # --every and --fps exclude each other in both
        parser.parse_args(["batch", "clip.mp4", "--out", "o", "--every", "2", "--fps", "5"])


@pytest.mark.parametrize("args, message", [
    (["--smooth", "hmm", "--ema-tau", "5"], "--ema-tau is a setting of --smooth ema"),
    (["--window", "20"], "--window is a setting of --smooth moving-average"),
    (["--smooth", "ema", "--hmm-hold", "2"], "--hmm-hold is a setting of --smooth hmm"),
])
def test_a_setting_of_another_smoother_is_refused_not_ignored(tmp_path, args, message):
    r = run("video", "clip-that-is-not-read.mp4", "--out", tmp_path / "o", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_batch_address_needs_the_ray_engine(tmp_path):
    r = run("batch", tmp_path, "--out", tmp_path / "o", "--address", "auto")
    assert r.returncode == 2 and "--engine ray" in r.stderr, r.stderr
