"""The public data set layouts, each on a miniature replica built in the test, read by
:func:`affectlens.datasets.sources.find_items` (layout detected from the files)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from affectlens.datasets.layouts import detect_layout
from affectlens.datasets.sources import find_items
from affectlens.errors import DatasetError

FACE48 = (np.add.outer(np.arange(48), np.arange(48)) * 2).astype(np.uint8)  # pixels; layouts are not decoded here


def _png(path: Path, side: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.resize(FACE48, (side, side)))
    return path


def _fer_csv(root: Path) -> Path:
    rows = ["emotion,pixels,Usage"]
    pix = " ".join(map(str, FACE48.ravel()))
    for usage, codes in (("Training", (0, 3, 6)), ("PublicTest", (4,)), ("PrivateTest", (5,))):
        rows += [f"{c},{pix},{usage}" for c in codes]
    path = root / "fer2013.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_fer2013_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTLENS_CACHE_DIR", str(tmp_path / "cache"))
    _fer_csv(tmp_path)
    assert detect_layout(tmp_path) == "fer2013"
    items = find_items(tmp_path)
    assert sorted(it.label for it in items) == ["angry", "happy", "neutral", "sad", "surprise"]
    assert all(it.is_crop and it.image.shape == (48, 48) for it in items)
    assert len({it.subject for it in items}) == 5


def test_fer2013_image_folder_copy(tmp_path):
    _png(tmp_path / "train" / "angry" / "im0.png")
    _png(tmp_path / "train" / "happy" / "im1.png")
    _png(tmp_path / "test" / "surprise" / "im2.png")
    items = find_items(tmp_path, layout="fer2013-folder")
    assert sorted(it.label for it in items) == ["angry", "happy", "surprise"] and all(it.is_crop for it in items)


def test_ferplus_votes_majority(tmp_path, monkeypatch):
    monkeypatch.setenv("AFFECTLENS_CACHE_DIR", str(tmp_path / "cache"))
    _fer_csv(tmp_path)
    votes = ["Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF",
             "Training,fer0.png,0,0,0,0,2,0,0,8,0,0",    # contempt
             "Training,fer1.png,0,10,0,0,0,0,0,0,0,0",   # happy
             "Training,fer2.png,0,0,0,0,0,0,0,0,0,10",   # not a face: dropped
             "PublicTest,fer3.png,9,0,0,1,0,0,0,0,0,0",  # neutral
             "PrivateTest,,0,0,10,0,0,0,0,0,0,0"]        # FER+ dropped the row
    (tmp_path / "fer2013new.csv").write_text("\n".join(votes) + "\n")
    assert detect_layout(tmp_path) == "ferplus"
    assert sorted(it.label for it in find_items(tmp_path)) == ["contempt", "happy", "neutral"]


def test_rafdb(tmp_path):
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("train_00001.jpg 5\ntest_0001.jpg 6\n")
    for name in ("train_00001", "test_0001"):
        _png(tmp_path / "Image" / "aligned" / f"{name}_aligned.jpg", 100)
    items = find_items(tmp_path)
    assert [(it.label, it.path.name, it.is_crop) for it in items] == [
        ("sad", "train_00001_aligned.jpg", True), ("angry", "test_0001_aligned.jpg", True)]


def test_affectnet_boxes_and_dropped_codes(tmp_path):
    _png(tmp_path / "Manually_Annotated_Images" / "1" / "a.jpg", 200)
    (tmp_path / "training.csv").write_text(
        "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"
        "1/a.jpg,10,20,100,120,,7,-0.2,0.3\n"
        "1/a.jpg,10,20,100,120,,9,0,0\n")
    items = find_items(tmp_path)
    assert len(items) == 1 and items[0].label == "contempt" and items[0].box_xyxy == (10.0, 20.0, 110.0, 140.0)


def test_ckplus_original_apex_and_neutral_frames(tmp_path):
    seq = tmp_path / "cohn-kanade-images" / "S005" / "001"
    for i in range(1, 7):
        _png(seq / f"S005_001_{i:08d}.png", 64)
    (tmp_path / "Emotion" / "S005" / "001").mkdir(parents=True)
    (tmp_path / "Emotion" / "S005" / "001" / "S005_001_00000006_emotion.txt").write_text("   3.0000000e+00\n")
    _png(tmp_path / "cohn-kanade-images" / "S010" / "002" / "S010_002_00000001.png")  # unlabelled: ignored
    items = find_items(tmp_path)
    assert [(it.label, it.path.name[-6:-4]) for it in items] == [
        ("disgust", "04"), ("disgust", "05"), ("disgust", "06"), ("neutral", "01")]
    assert {it.subject for it in items} == {"S005"}


def test_ckplus48_subjects_from_file_names(tmp_path):
    _png(tmp_path / "anger" / "S010_004_00000017.png")
    _png(tmp_path / "happy" / "S011_001_00000009.png")
    items = find_items(tmp_path)
    assert [(it.label, it.subject) for it in items] == [("angry", "S010"), ("happy", "S011")]


def test_sfew_folders(tmp_path):
    _png(tmp_path / "Train" / "Angry" / "a.png", 200)
    _png(tmp_path / "Val" / "Sad" / "b.png", 200)
    assert sorted(it.label for it in find_items(tmp_path, layout="sfew")) == ["angry", "sad"]


def test_expw_label_list(tmp_path):
    _png(tmp_path / "image" / "origin" / "x.jpg", 300)
    (tmp_path / "label").mkdir()
    (tmp_path / "label" / "label.lst").write_text("x.jpg 0 30 40 140 150 80.5 3\nx.jpg 1 10 10 20 20 50.0 5\n")
    items = find_items(tmp_path)
    assert [(it.label, it.box_xyxy) for it in items] == [("happy", (40.0, 30.0, 140.0, 150.0)),
                                                          ("surprise", (10.0, 10.0, 20.0, 20.0))]


@pytest.mark.parametrize("layout, make, message", [
    ("rafdb", lambda p: None, "not a RAF-DB folder"),
    ("ckplus", lambda p: None, r"not a CK\+ folder"),
    ("expw", lambda p: (p / "label").mkdir() or (p / "label" / "label.lst").write_text("x.jpg 0 1\n"), "label.lst:1"),
    ("nope", lambda p: None, "unknown layout 'nope'"),
])
def test_malformed_layouts_name_the_file(tmp_path, layout, make, message):
    make(tmp_path)
    with pytest.raises(DatasetError, match=message):
        find_items(tmp_path, layout=layout)
