"""Inputs for the batch tests: real shared media plus bad files made here (never copied into the repo)."""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from pathlib import Path

from conftest import IMAGES, VIDEOS, need


def good_media() -> dict[str, Path]:
    """Real inputs that must each end up ``done`` exactly once."""
    return {"face_noface.mov": need(VIDEOS / "face_noface.mov"), "single_face.mp4": need(VIDEOS / "single_face.mp4"),
            "single_face.jpg": need(IMAGES / "single_face.jpg"), "multi_face.jpg": need(IMAGES / "multi_face.jpg"),
            "free-mountain-vector-01.jpg": need(IMAGES / "free-mountain-vector-01.jpg")}


def make_bad_files(folder: Path) -> dict[str, Path]:
    """Corrupt, truncated, empty and mislabelled files: each must be reported, none may stop the batch."""
    folder.mkdir(parents=True, exist_ok=True)
    jpg = need(IMAGES / "single_face.jpg").read_bytes()
    mp4 = need(VIDEOS / "single_face.mp4").read_bytes()
    bad = {"truncated.jpg": jpg[: len(jpg) // 3], "corrupt.jpg": b"\xff\xd8\xff\xe0" + os.urandom(4000),
           "empty.mp4": b"", "truncated.mp4": mp4[: len(mp4) // 2], "notavideo.mov": b"just some text\n" * 50}
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    avi = _synthetic_avi(folder / "whole.avi")
    (folder / "truncated.avi").write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])
    avi.unlink()
    return {name: folder / name for name in [*bad, "truncated.avi"]}


def _synthetic_avi(path: Path, frames: int = 60) -> Path:
    """A small MJPG AVI whose header announces its frame count: cut in half, it decodes partly."""
    import cv2
    import numpy as np

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(frames):
        w.write(np.full((120, 160, 3), 4 * i % 255, np.uint8))
    w.release()
    return path


def write_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "subject", "session", "consent_ref"])
        w.writeheader()
        w.writerows(rows)
    return path


def manifest_rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def jsonl_entries(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def expected_rows(entry: dict) -> int:
    """Face rows an item's own outputs hold (frames.csv lines, or faces in faces.json)."""
    outs = json.loads(entry["outputs"]) if isinstance(entry["outputs"], str) else entry["outputs"]
    if "frames_csv" in outs:
        return sum(1 for _ in open(outs["frames_csv"])) - 1
    return len(json.loads(Path(outs["faces_json"]).read_text())["images"][0]["faces"])


def kill_when_running(items_dir: Path, stem: str, timeout_s: float = 120.0, stop=None) -> int | None:
    """SIGKILL the worker process that is analysing ``stem`` (its temp folder names its pid)."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end and not (stop and stop()):
        for tmp in items_dir.glob(f"{stem}-*.tmp-*") if items_dir.exists() else []:
            pid = int(tmp.name.rsplit("-", 1)[1])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            return pid
        time.sleep(0.01)
    return None
