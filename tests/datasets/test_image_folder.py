"""Face crops in class folders: both layouts, stable splits, bad files skipped and reported."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens.datasets.image_folder import load_image_folder, order_labels
from affectlens.errors import DatasetError
from affectlens.labels import EMOTIONS
from conftest import FER2013, need, write_face_folder as write_folder


@pytest.fixture(scope="module")
def fer_faces():
    from affectlens.datasets import load_fer2013

    split = load_fer2013(need(FER2013), ("PublicTest",))["PublicTest"]
    return split.images, split.labels


def test_flat_layout_reads_every_face_with_its_label_and_a_stable_split(tmp_path, fer_faces):
    written = write_folder(tmp_path, *fer_faces, per_class=30)
    ds = load_image_folder(tmp_path)
    assert ds.labels == EMOTIONS and not ds.skipped
    total = sum(len(s.labels) for s in ds.splits.values())
    assert total == len(written)
    assert 0.7 < len(ds.splits["Training"].labels) / total < 0.9
    for split in ds.splits.values():
        for img, lab, rel in zip(split.images, split.labels, split.paths):
            src, name = written[rel]
            assert ds.labels[lab] == name
            np.testing.assert_array_equal(img, src)  # PNG is lossless and 48x48 needs no resize
    again = load_image_folder(tmp_path)
    assert all(again.splits[k].paths == ds.splits[k].paths for k in ds.splits)


def test_split_folders_are_used_and_crops_resized(tmp_path, fer_faces):
    images, labels = fer_faces
    big = np.stack([cv2.resize(i, (96, 96)) for i in images[:400]])
    write_folder(tmp_path, big, labels[:400], per_class=8, sub="train")
    write_folder(tmp_path, images[400:], labels[400:], per_class=3, sub="val")
    ds = load_image_folder(tmp_path, size=64)
    assert ds.splits["Training"].images.shape[1:] == (64, 64)
    assert all(p.startswith("train/") for p in ds.splits["Training"].paths)
    assert all(p.startswith("val/") for p in ds.splits["PublicTest"].paths)
    assert len(ds.splits["PublicTest"].labels) == 21 and len(ds.splits["PrivateTest"].labels) == 0


def test_unreadable_files_are_skipped_and_reported(tmp_path, fer_faces, caplog):
    write_folder(tmp_path, *fer_faces, per_class=15)
    bad = tmp_path / "happy" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "happy" / "notes.txt").write_text("ignored: not an image suffix")
    ds = load_image_folder(tmp_path)
    assert [p for p, _ in ds.skipped] == [str(bad)]
    assert "broken.jpg" in caplog.text
    assert sum(len(s.labels) for s in ds.splits.values()) == 7 * 15


def test_bad_data_sets_raise_errors_that_name_the_problem(tmp_path, fer_faces):
    with pytest.raises(DatasetError, match="not found"):
        load_image_folder(tmp_path / "missing")
    write_folder(tmp_path, *fer_faces, per_class=10)
    with pytest.raises(DatasetError, match=r"\['disgust'\] are not among"):
        load_image_folder(tmp_path, labels=("angry", "fear", "happy", "neutral", "sad", "surprise"))
    for f in (tmp_path / "fear").iterdir():
        f.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="no readable images for label.*fear"):
        load_image_folder(tmp_path)


def test_label_order_follows_the_emotions_then_the_alphabet():
    assert order_labels({"sad", "happy", "contempt"}) == ("happy", "sad", "contempt")
    assert order_labels({"yawn", "blink"}) == ("blink", "yawn")
