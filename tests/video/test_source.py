"""Reading frames: container timestamps, sampling, bad and truncated files, folders of frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens.errors import InvalidVideoError
from affectlens.video.source import LiveTimestamps, VideoSource, source_kind
from conftest import VIDEOS, need


def _write_avi(path, n=40, size=(64, 48), fps=20.0):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        img = np.full((size[1], size[0], 3), (i * 6) % 256, np.uint8)
        cv2.putText(img, str(i), (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        w.write(img)
    w.release()


def test_kinds():
    assert source_kind(0) == "camera" and source_kind("1") == "camera"
    assert source_kind("rtsp://cam/stream") == "stream" and source_kind("https://x/y.m3u8") == "stream"
    assert source_kind("clip.mp4") == "file"


def test_variable_frame_rate_uses_container_timestamps():
    src = VideoSource(need(VIDEOS / "face_noface.mov"))
    ts = [f.timestamp_ms for f in src]
    assert len(ts) == 169 and src.report.frames_decoded == 169
    assert ts[0] == 0 and all(b > a for a, b in zip(ts, ts[1:]))
    # 169 frames at a nominal 26.4 fps would end at 6.36 s only by chance; check it against the container
    assert ts[-1] == pytest.approx(6360, abs=50)
    assert not src.report.stopped_early
    # the gaps themselves: 30 fps (33.3 ms) for 2.4 s, then 24 fps (41.7 ms), with two odd steps between
    gaps = np.round(np.diff(ts), 1)
    values, counts = np.unique(gaps, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist())) == {13.7: 1, 30.0: 1, 33.3: 72, 41.7: 94}
    assert (gaps[:72] == 33.3).all() and (gaps[-90:] == 41.7).all()


def test_live_timestamps_use_the_stream_clock_when_it_increases():
    clock = iter([100.0, 100.5, 101.0, 101.2])  # seconds; arrival times differ from the stream's
    stamps = LiveTimestamps(clock=lambda: next(clock))
    out = [stamps(p) for p in (5000.0, 5040.0, 5100.0, 5090.0)]
    assert stamps.source == "container"
    assert out[:3] == [0.0, 40.0, 100.0]
    assert out[3] == pytest.approx(1200.0), "a container time going backwards: that frame takes the clock"


@pytest.mark.parametrize("positions", [[0.0, 0.0, 0.0], [float("nan")] * 3, [-1.0, -1.0, -1.0]])
def test_live_timestamps_fall_back_to_a_monotonic_clock(positions):
    """A webcam that reports no time: gaps are the real arrival gaps (not 1000 / fps)."""
    clock = iter([10.0, 10.021, 10.121])
    stamps = LiveTimestamps(clock=lambda: next(clock))
    out = [stamps(p) for p in positions]
    assert stamps.source == "clock"
    assert out == pytest.approx([0.0, 21.0, 121.0])


def test_live_timestamps_always_increase():
    stamps = LiveTimestamps(clock=lambda: 5.0)  # a clock too coarse to tell two frames apart
    out = [stamps(0.0) for _ in range(3)]
    assert out[0] == 0.0 and out[1] > out[0] and out[2] > out[1]


def test_fps_sampling_and_cut():
    src = VideoSource(need(VIDEOS / "WolfgangLanger_Pexels.mp4"), fps=4, start_s=2, end_s=5)
    ts = np.array([f.timestamp_ms for f in src])
    assert 2000 <= ts[0] < 2100 and ts[-1] < 5000
    assert len(ts) == pytest.approx(12, abs=1)
    assert np.all(np.diff(ts) >= 240)


def test_every_nth_frame():
    frames = list(VideoSource(need(VIDEOS / "single_face.mp4"), every=3))
    assert [f.index for f in frames[:3]] == [0, 3, 6] and len(frames) == 24


def test_missing_empty_and_non_video_files(tmp_path):
    with pytest.raises(InvalidVideoError, match="no such file"):
        VideoSource(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InvalidVideoError, match=r"empty\.mp4: empty file"):
        VideoSource(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_bytes(b"this is not a video at all" * 100)
    with pytest.raises(InvalidVideoError, match=r"text\.mp4: (cannot open video|no decodable frame)"):
        list(VideoSource(tmp_path / "text.mp4"))


def test_truncated_file_yields_what_decodes_and_says_where_it_stopped(tmp_path):
    full = tmp_path / "full.avi"
    _write_avi(full, n=40)
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    src = VideoSource(cut)
    frames = list(src)
    assert 5 <= len(frames) < 40
    assert src.report.stopped_early
    assert "cut.avi: decoding stopped after" in src.report.problems[0]


def test_folder_of_frames(tmp_path):
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), np.full((32, 32, 3), i * 40, np.uint8))
    (tmp_path / "f002.png").write_bytes(b"broken")
    src = VideoSource(tmp_path, frames_fps=10)
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 3, 4]
    assert [f.timestamp_ms for f in frames] == [0, 100, 300, 400]
    assert "f002.png" in src.report.problems[0]


def test_bad_options():
    with pytest.raises(InvalidVideoError, match="every"):
        VideoSource("x.mp4", every=0)
    with pytest.raises(InvalidVideoError, match="end"):
        VideoSource("x.mp4", start_s=5, end_s=2)
