"""``run_video`` (``affectlens.video.session``) in-process: what an interrupted and resumed run keeps."""

from __future__ import annotations

import json
import re
import stat
import threading

import pytest

from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
from affectlens.video.session import THUMBNAILS_PARTIAL, RunOptions, ThumbnailKeeper, run_video
from affectlens.video.source import VideoSource
from conftest import VIDEOS, need


def _stop_at(frames: int):
    def progress(n, timestamp_ms, total_ms):
        if n == frames:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of a run
    return progress


def test_a_resumed_report_still_shows_the_person_who_left_before_the_interruption(tmp_path):
    src = need(VIDEOS / "face_noface.mov")  # one face, gone after about frame 71 of 169
    first = run_video(src, tmp_path, run=RunOptions(), progress=_stop_at(160))
    assert first.interrupted
    frames = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert max(f["frame_index"] for f in frames if f["faces"]) < 120  # the face had left
    partial = tmp_path / THUMBNAILS_PARTIAL
    assert partial.is_file() and stat.S_IMODE(partial.stat().st_mode) == 0o600  # face pictures: owner only
    assert {json.loads(line)["track_id"] for line in partial.read_text().splitlines()} == {1}

    run_video(src, tmp_path, run=RunOptions(resume=True))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["frames_analysed"] == 169
    assert any(abs(t - 2400) < 50 for t in summary["scene_cuts_ms"])  # the cut (frame 72) came before the stop
    html = (tmp_path / "report.html").read_text()
    assert len(re.findall(r'<img class="thumb" src="data:image/jpeg;base64,', html)) >= 1
    assert "no image" not in html
    assert not partial.exists()  # the finished report holds the picture; nothing else keeps it


def test_no_thumbnail_file_without_thumbnails_and_a_fresh_run_forgets_an_old_one(tmp_path):
    src = need(VIDEOS / "face_noface.mov")
    (tmp_path / THUMBNAILS_PARTIAL).write_text('{"track_id": 7, "score": 1e9, "uri": "data:image/jpeg;base64,AAAA"}\n')
    run_video(src, tmp_path, run=RunOptions(thumbnails=False, end_s=1.0))
    assert not (tmp_path / THUMBNAILS_PARTIAL).exists()  # a fresh run is not an earlier run's people
    html = (tmp_path / "report.html").read_text()
    assert "data:image/jpeg" not in html


def test_thumbnail_keeper_skips_torn_and_bad_lines(tmp_path):
    keeper = ThumbnailKeeper(path=tmp_path / "t.jsonl")
    good = ThumbnailKeeper()
    import numpy as np

    from affectlens.faces import Faces, FrameInfo

    img = np.full((120, 160, 3), 90, np.uint8)
    faces = Faces(xyxy=np.array([[40, 30, 100, 100]], np.float32), det_score=np.array([0.9], np.float32),
                  landmarks=np.zeros((1, 5, 2), np.float32), probs=np.zeros((1, 0), np.float32), labels=(),
                  info=FrameInfo(image_size_hw=(120, 160)), track_id=np.array([3]))
    good.offer(img, faces)
    uri = good.data_uris()[3]
    (tmp_path / "t.jsonl").write_text(
        json.dumps({"track_id": 3, "score": 5.0, "uri": uri}) + "\n" + '{"track_id": 4, "sco' + "\n"
        + json.dumps({"track_id": 5, "score": 1.0, "uri": "data:image/jpeg;base64,!!"}) + "\n")
    assert keeper.load() == 1 and set(keeper.data_uris()) == {3}


def test_resume_refuses_a_folder_that_holds_another_videos_run(tmp_path):
    run_video(need(VIDEOS / "face_noface.mov"), tmp_path, run=RunOptions(), progress=_stop_at(10))
    before = (tmp_path / "frames.jsonl").read_bytes()
    with pytest.raises(ValueError, match="face_noface.mov.*single_face.mp4|holds a run of"):
        run_video(need(VIDEOS / "single_face.mp4"), tmp_path, run=RunOptions(resume=True))
    assert (tmp_path / "frames.jsonl").read_bytes() == before  # the earlier run is left as it was


def test_progress_counts_the_part_of_the_video_the_run_covers(tmp_path):
    seen = []
    run_video(need(VIDEOS / "WolfgangLanger_Pexels.mp4"), tmp_path, run=RunOptions(start_s=2.0, end_s=4.0, fps=5),
              progress=lambda n, ms, span: seen.append((ms, span)))
    assert {span for _, span in seen} == {2000.0}
    assert 0 <= seen[0][0] < 250 and 1700 < seen[-1][0] <= 2000


def test_a_resumed_blurred_run_never_shows_a_picture_saved_unblurred(tmp_path):
    src = need(VIDEOS / "face_noface.mov")
    run_video(src, tmp_path, run=RunOptions(fps=5), progress=_stop_at(22))  # the face left at about 2.4 s
    run_video(src, tmp_path, run=RunOptions(fps=5, resume=True, blur_faces=True))
    html = (tmp_path / "report.html").read_text()
    assert "data:image/jpeg" not in html and "no image" in html  # left out, not shown sharp


def test_ctrl_c_while_a_frame_is_read_stops_every_thread_before_the_source_is_released(tmp_path, monkeypatch,
                                                                                      recognizer):
    """With --fps the decoding thread is busy skipping frames; releasing the capture under it
    crashed FFmpeg (SIGABRT) and lost every output."""
    alive_at_close = []
    release = VideoSource.close

    def close(self):
        alive_at_close.append([t.name for t in threading.enumerate() if t.name.startswith("affectlens-") and t.is_alive()])
        return release(self)

    monkeypatch.setattr(VideoSource, "close", close)
    va = VideoAnalyzer(VideoOptions(), recognizer=recognizer)
    read, calls = va._read, []

    def interrupted_read(found):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C while the emotion model runs
        return read(found)

    va._read = interrupted_read
    result = run_video(need(VIDEOS / "crowd_walking.mp4"), tmp_path, analyzer=va, run=RunOptions(fps=3))
    assert result.interrupted and result.frames_analysed == 3
    assert alive_at_close == [[]]  # no finding or decoding thread left when the capture was released
    assert json.loads((tmp_path / "summary.json").read_text())["frames_analysed"] == 3


def test_an_early_stop_lists_only_the_scene_cuts_of_frames_it_wrote(tmp_path):
    src = need(VIDEOS / "face_noface.mov")  # a cut at frame 72 (2.4 s)
    first = run_video(src, tmp_path, run=RunOptions(), progress=_stop_at(70))
    assert first.interrupted
    last_ms = max(json.loads(line)["timestamp_ms"] for line in (tmp_path / "frames.jsonl").read_text().splitlines())
    assert last_ms < 2400
    # the finding thread may have looked at the cut already; the summary lists only written frames' cuts
    assert json.loads((tmp_path / "summary.json").read_text())["scene_cuts_ms"] == []
