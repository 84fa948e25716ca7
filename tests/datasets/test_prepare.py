"""``affectlens dataset prepare`` on real photos, a real video and CK+ crops: the same detection
and alignment as inference, reports of bad inputs, nothing lost."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from affectlens.datasets.prepare import PrepareOptions, load_prepared, prepare_dataset
from affectlens.datasets.sources import find_items
from affectlens.errors import DatasetError
from conftest import IMAGES, SHARED, VIDEOS, need

CKPLUS48 = SHARED / "ckplus48"


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "affectlens", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Class folders with synonyms: real photos, a face-less picture and a corrupt file."""
    root = tmp_path_factory.mktemp("photos")
    (root / "Happiness").mkdir()
    (root / "anger").mkdir()
    shutil.copy(need(IMAGES / "single_face.jpg"), root / "Happiness" / "a.jpg")
    shutil.copy(IMAGES / "multi_face.jpg", root / "Happiness" / "group.jpg")
    shutil.copy(IMAGES / "free-mountain-vector-01.jpg", root / "anger" / "mountain.jpg")
    shutil.copy(IMAGES / "single_face.jpg", root / "anger" / "b.jpg")
    (root / "anger" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


def test_photos_are_detected_and_aligned_as_at_inference(photo_folder, recognizer, tmp_path):
    import cv2

    items = find_items(photo_folder)
    assert sorted({it.label for it in items}) == ["angry", "happy"]  # folder names through the synonyms
    result = prepare_dataset(items, tmp_path / "ds", PrepareOptions(base=recognizer.classifier.spec.name))
    kinds = {(source.rsplit("/", 1)[-1], kind) for source, kind, _ in result.problems}
    assert kinds == {("mountain.jpg", "no_face"), ("broken.jpg", "unreadable"), ("group.jpg", "multi_face")}
    assert result.counts == {"happy": 2, "angry": 1}
    ds = load_prepared(tmp_path / "ds")
    assert ds.images.shape[1:] == (48, 48, 3) and set(ds.labels) == {"happy", "angry"}
    with open(tmp_path / "ds" / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    row = next(r for r in rows if r["source"].endswith("a.jpg"))
    assert row["kind"] == "aligned" and len(row["landmarks"].split(";")) == 10
    # the very crop inference classifies
    img = cv2.imread(str(photo_folder / "Happiness" / "a.jpg"))
    found = recognizer.detector.detect(img)
    expected = recognizer.classifier.align(img, found.landmarks[:1])[0]
    got = ds.images[list(ds.ids).index(row["id"])]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # PNG round trip is lossless; 1 = rounding
    group = next(r for r in rows if r["source"].endswith("group.jpg"))  # the largest face kept
    box = [float(group[k]) for k in ("x1", "y1", "x2", "y2")]
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in recognizer.detector.detect(cv2.imread(str(IMAGES / "multi_face.jpg"))).xyxy]
    assert (box[2] - box[0]) * (box[3] - box[1]) == pytest.approx(max(areas), rel=1e-3)
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["problems"] == {"no_face": 1, "unreadable": 1, "multi_face": 1}
    assert any("has 1 faces" in w for w in meta["warnings"])
    assert meta["alignment"]["roll_dead_band_deg"] == recognizer.classifier.spec.alignment.roll_dead_band_deg == 15


def test_ckplus48_crops_are_taken_as_crops_with_subjects(tmp_path):
    src = tmp_path / "ck"
    for cls in ("anger", "happy", "surprise"):
        files = sorted((need(CKPLUS48) / cls).glob("*.png"))[:9]
        (src / cls).mkdir(parents=True)
        for f in files:
            shutil.copy(f, src / cls / f.name)
    r = _cli("dataset", "prepare", src, "--out", tmp_path / "ds", "-q")
    assert r.returncode == 0, r.stderr
    assert "27 faces in 3 classes" in r.stdout and "angry" in r.stdout
    ds = load_prepared(tmp_path / "ds")
    assert all(s.startswith("S") and len(s) == 4 for s in ds.subjects)
    with open(tmp_path / "ds" / "manifest.csv") as fh:
        assert {r["kind"] for r in csv.DictReader(fh)} == {"crop"}


def test_labels_file_with_missing_files_and_existing_output_kept(tmp_path):
    shutil.copy(need(IMAGES / "single_face.jpg"), tmp_path / "a.jpg")
    (tmp_path / "labels.csv").write_text("path,label,subject\na.jpg,sadness,p1\nmissing.jpg,happy,p2\n")
    out = tmp_path / "ds"
    r = _cli("dataset", "prepare", tmp_path / "labels.csv", "--out", out, "-q")
    assert r.returncode == 1 and "missing.jpg: no such file" in r.stderr and "Traceback" not in r.stderr
    assert load_prepared(out).labels.tolist() == ["sad"] and load_prepared(out).subjects.tolist() == ["p1"]
    before = (out / "manifest.csv").read_bytes()
    r = _cli("dataset", "prepare", tmp_path / "labels.csv", "--out", out, "-q")  # no --overwrite: refused
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (out / "manifest.csv").read_bytes() == before


def test_empty_class_folder_is_an_error_that_names_it(tmp_path):
    (tmp_path / "src" / "happy").mkdir(parents=True)
    shutil.copy(need(IMAGES / "single_face.jpg"), tmp_path / "src" / "happy" / "a.jpg")
    (tmp_path / "src" / "sad").mkdir()
    with pytest.raises(DatasetError, match=r"sad: class folder holds no images"):
        find_items(tmp_path / "src")
    r = _cli("dataset", "prepare", tmp_path / "src", "--out", tmp_path / "ds", "-q")
    assert r.returncode == 2 and "sad: class folder holds no images" in r.stderr and not (tmp_path / "ds").exists()


def test_video_intervals(tmp_path):
    video = need(VIDEOS / "single_face.mp4")
    (tmp_path / "intervals.csv").write_text(f"video,start_s,end_s,label\n{video},0.0,1.0,happiness\n"
                                            f"{video},1.0,2.0,neutral\n")
    items = find_items(tmp_path / "intervals.csv")
    result = prepare_dataset(items, tmp_path / "ds", PrepareOptions(video_fps=2.0))
    assert result.counts == {"happy": 2, "neutral": 2}, result.problems
    ds = load_prepared(tmp_path / "ds")
    assert set(ds.subjects) == {"single_face"} and all("@" in s for s in ds.sources)
    (tmp_path / "bad.csv").write_text(f"video,start_s,end_s,label\n{video},2.0,1.0,happy\n")
    with pytest.raises(DatasetError, match=r"bad.csv:2: the interval ends"):
        find_items(tmp_path / "bad.csv")
