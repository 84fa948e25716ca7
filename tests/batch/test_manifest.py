"""What a rerun may skip: same content (by size+mtime, else sha256), same results key, outputs present."""

from __future__ import annotations

import os

import pytest

from affectlens.batch.inputs import make_item
from affectlens.batch.manifest import Manifest
from affectlens.models.spec import sha256_of


@pytest.fixture()
def done(tmp_path):
    media = tmp_path / "clip.mp4"
    media.write_bytes(b"frames" * 100)
    out = tmp_path / "out"
    report = out / "items" / "x" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("ok")
    item = make_item(media)
    st = os.stat(media)
    m = Manifest(out)
    m.record({"item": item.item_id, "path": item.path, "status": "done", "results_key": "K",
              "size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "content_sha256": sha256_of(media),
              "outputs": {"report": str(report)}, "parquet": None})
    m.close()
    return Manifest(out), item, media, report  # read back from disk, as a rerun does


def test_unchanged_file_is_skipped(done):
    m, item, *_ = done
    assert m.can_skip(item, "K")


def test_touched_but_identical_file_is_skipped_by_its_sha256(done):
    m, item, media, _ = done
    os.utime(media, ns=(1, 1))
    assert m.can_skip(item, "K")


def test_changed_content_other_options_or_lost_outputs_are_redone(done):
    m, item, media, report = done
    assert not m.can_skip(item, "other-key")
    report.unlink()
    assert not m.can_skip(item, "K")


def test_changed_content_is_redone(done):
    m, item, media, _ = done
    media.write_bytes(b"other" * 120)  # same size, new bytes
    os.utime(media, ns=(1, 1))
    assert not m.can_skip(item, "K")


def test_failed_items_are_retried_and_a_torn_log_line_is_ignored(tmp_path):
    item = make_item(tmp_path / "a.jpg")
    m = Manifest(tmp_path)
    m.record({"item": item.item_id, "status": "failed", "results_key": "K"})
    m.close()
    with open(tmp_path / "manifest.jsonl", "a") as fh:
        fh.write('{"item": "' + item.item_id + '", "status": "do')  # a driver killed mid-write
    m2 = Manifest(tmp_path)
    assert m2.latest[item.item_id]["status"] == "failed" and not m2.can_skip(item, "K")
    assert (tmp_path / "manifest.jsonl").read_text().endswith("\n")


def test_a_missing_input_stays_skipped_until_it_appears(tmp_path):
    item = make_item(tmp_path / "gone.jpg")
    m = Manifest(tmp_path)
    m.record({"item": item.item_id, "status": "invalid", "results_key": "K", "size_bytes": None})
    assert m.can_skip(item, "K")
    (tmp_path / "gone.jpg").write_bytes(b"now here")
    assert not m.can_skip(item, "K")
