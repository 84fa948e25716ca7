"""Batch inputs: files, folders, globs and manifest CSVs become one list of items, each once."""

from __future__ import annotations

import pytest

from affectlens.batch.inputs import collect_items, make_item, read_manifest_csv


@pytest.fixture()
def tree(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for rel in ("a/x.jpg", "a/deep/y.PNG", "a/clip.mp4", "a/notes.txt", "b.mov"):
        (tmp_path / rel).write_bytes(b"not really media")
    return tmp_path


def test_folders_are_recursive_and_keep_only_media(tree):
    items, problems = collect_items([tree / "a"])
    assert [p.split("/")[-1] for p in (i.path for i in items)] == ["clip.mp4", "y.PNG", "x.jpg"]  # sorted by path
    assert [i.kind for i in items] == ["video", "image", "image"]
    assert problems == []


def test_globs_files_and_duplicates(tree):
    items, problems = collect_items([str(tree / "a" / "*.jpg"), tree / "a" / "x.jpg", tree / "b.mov",
                                     str(tree / "nothing-*.jpg")])
    assert [i.path.split("/")[-1] for i in items] == ["x.jpg", "b.mov"]  # x.jpg listed twice, kept once
    assert len(problems) == 1 and "matches no file" in problems[0][1]


def test_a_missing_file_is_an_item_so_that_it_is_reported(tree):
    items, _ = collect_items([tree / "gone.mp4"])
    assert len(items) == 1 and items[0].kind == "video"


def test_manifest_csv_carries_subject_session_consent(tree):
    csv = tree / "study.csv"
    csv.write_text("path,subject,session,consent_ref\na/x.jpg,S01,pre,C-17\n/abs/missing.mp4,S02,,\n,S03,,\n")
    items, problems = collect_items([csv])
    assert [(i.path, i.subject, i.session, i.consent_ref) for i in items] == [
        (str(tree / "a" / "x.jpg"), "S01", "pre", "C-17"), ("/abs/missing.mp4", "S02", "", "")]
    assert len(problems) == 1 and "empty path" in problems[0][1]


def test_manifest_csv_without_path_column_is_refused(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("file,subject\nx.jpg,S1\n")
    with pytest.raises(ValueError, match="'path' column"):
        read_manifest_csv(csv)


def test_item_ids_are_stable_safe_and_distinct_for_same_names(tmp_path):
    a, b = make_item(tmp_path / "x" / "clip 1.mp4"), make_item(tmp_path / "y" / "clip 1.mp4")
    assert a.item_id != b.item_id and a.item_id.startswith("clip_1-")
    assert make_item(tmp_path / "x" / "clip 1.mp4") == a
    assert all(c.isalnum() or c in "._-" for c in a.item_id)
