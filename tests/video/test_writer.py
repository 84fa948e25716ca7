"""Annotated videos that browsers play: H.264 (PyAV) or VP9 (OpenCV) in MP4, checked in headless Chromium."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens.video.writer import VideoWriter, have_pyav, resolve_codec
from browser_helpers import chromium, play_video
from conftest import VIDEOS, need


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def _frames(n: int, size_wh=(321, 181)):
    cap = cv2.VideoCapture(str(need(VIDEOS / "single_face.mp4")))
    out = []
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        out.append(cv2.resize(img, size_wh))
    cap.release()
    return out


@pytest.mark.parametrize("codec", ["h264", "vp9"])
def test_written_video_plays_to_the_end_in_chromium(browser, tmp_path, codec):
    if codec == "h264" and not have_pyav():
        pytest.skip("PyAV not installed (pip install 'affectlens[video]')")
    frames = _frames(12)  # odd size on purpose: H.264 needs even sizes, the writer pads
    path = tmp_path / f"clip-{codec}.mp4"
    with VideoWriter(path, 12.0, (321, 181), codec) as w:
        for f in frames:
            w.write(f)
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    cap.release()
    res = play_video(browser, path)
    assert res["error"] is None and res["ended"], res
    assert res["width"] >= 320 and res["height"] >= 180
    assert res["duration"] == pytest.approx(1.0, abs=0.1)


def test_mp4v_is_what_browsers_reject(browser, tmp_path):
    """The reason for this module: OpenCV's default codec does not play in Chromium."""
    path = tmp_path / "clip-mp4v.mp4"
    with VideoWriter(path, 12.0, (64, 48), "mp4v") as w:
        for i in range(6):
            w.write(np.full((48, 64, 3), 40 * i, np.uint8))
    res = play_video(browser, path)
    assert res["error"] == 4  # MEDIA_ERR_SRC_NOT_SUPPORTED


@pytest.mark.parametrize("kwargs, match", [
    ({"fps": 0, "size_wh": (64, 48)}, "fps"),
    ({"fps": 10, "size_wh": (0, 48)}, "size_wh"),
    ({"fps": 10, "size_wh": (64, 48), "codec": "divx"}, "codec"),
])
def test_bad_arguments_are_rejected(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        VideoWriter(tmp_path / "x.mp4", **kwargs)


def test_frames_of_another_size_are_rejected(tmp_path):
    with VideoWriter(tmp_path / "x.mp4", 10, (64, 48), "mp4v") as w:
        with pytest.raises(ValueError, match="expected 64x48, got 32x48"):
            w.write(np.zeros((48, 32, 3), np.uint8))


def test_auto_is_h264_with_pyav():
    assert resolve_codec("auto") == ("h264" if have_pyav() else "mp4v")
