"""The video analyzer fed frame by frame, over HTTP, and on 4K frames."""

from __future__ import annotations

import functools
import http.server
import threading
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from affectlens import EmotionRecognizer
from affectlens.faces import Faces
from affectlens.tracking import TrackerOptions
from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
from affectlens.video.prefetch import source_frames
from affectlens.video.source import VideoSource
from conftest import IMAGES, VIDEOS, need


@pytest.fixture(scope="module")
def analyzer(recognizer):
    return VideoAnalyzer(VideoOptions(smooth="ema"), recognizer=recognizer)


def test_process_frames_with_timestamps(analyzer):
    analyzer.reset()
    cap = cv2.VideoCapture(str(need(VIDEOS / "single_face.mp4")))
    out = []
    for i in range(20):
        ok, frame = cap.read()
        out.append(analyzer.process(frame, 33.3 * i, frame_index=i))
    assert all(len(f) == 1 for f in out)
    assert {int(f.track_id[0]) for f in out} == {1}
    assert np.allclose(out[-1].probs.sum(1), 1, atol=1e-5)
    assert "probs_raw" in out[-1].data and not np.allclose(out[-1].probs, out[-1].data["probs_raw"])
    with pytest.raises(ValueError, match="backwards"):
        analyzer.process(frame, 0.0)


def _finding_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "affectlens-find" and t.is_alive()]


def test_finding_faces_ahead_in_a_thread_gives_the_same_results(recognizer):
    """process_frames(overlap=True) finds the next frames' faces while this one's are read; every
    output equals the one-frame-at-a-time run, bit for bit (a 1080p crowd: windows, re-scans,
    the reading budget and several tracks)."""
    clip = need(VIDEOS / "crowd_walking.mp4")

    def run(overlap: bool):
        va = VideoAnalyzer(VideoOptions(), recognizer=recognizer)
        out, threads_seen = [], 0
        with VideoSource(clip, end_s=2.0) as src:
            for frame, faces, cut in va.process_frames(source_frames(src), "crowd", overlap=overlap):
                threads_seen = max(threads_seen, len(_finding_threads()))
                out.append((frame.index, faces, cut))
        return out, threads_seen

    (one, none_seen), (ahead, seen) = run(False), run(True)
    assert none_seen == 0 and seen == 1 and not _finding_threads()  # a thread while running, gone after
    assert len(one) == len(ahead) > 40 and sum(len(f) for _, f, _ in one) > 150
    assert not any(cut for _, _, cut in one)
    for (i, a, cut_a), (j, b, cut_b) in zip(one, ahead):
        assert i == j and cut_a == cut_b and a.info == b.info
        np.testing.assert_array_equal(a.track_id, b.track_id)
        np.testing.assert_array_equal(a.xyxy, b.xyxy)
        np.testing.assert_array_equal(a.probs, b.probs)
        for key in ("probs_raw", "read", "quality", "reliable"):
            np.testing.assert_array_equal(a.data[key], b.data[key])
    assert any(not f.data["read"].all() for _, f, _ in one)  # the reading budget held some faces


def test_finding_ahead_raises_at_the_frame_that_fails_and_stops_when_closed(recognizer):
    image = cv2.imread(str(need(IMAGES / "single_face.jpg")))
    frames = [SimpleNamespace(image=image, timestamp_ms=t, index=i) for i, t in enumerate((0.0, 40.0, 20.0, 60.0))]
    va = VideoAnalyzer(VideoOptions(), recognizer=recognizer)
    got = []
    with pytest.raises(ValueError, match="backwards"):
        for frame, faces, _ in va.process_frames(frames, overlap=True):
            got.append((frame.index, len(faces)))
    assert got == [(0, 1), (1, 1)]  # the frames before the bad one were all read
    va.reset()
    closed = []

    def endless():
        try:
            for i in range(10**6):
                yield SimpleNamespace(image=image, timestamp_ms=40.0 * i, index=i)
        finally:
            closed.append(True)  # e.g. source_frames stopping its decoding thread

    gen = va.process_frames(endless(), overlap=True)
    assert len(next(gen)[1]) == 1
    gen.close()
    assert not _finding_threads() and closed == [True]  # the frames were closed too, after the thread stopped


def test_bad_options():
    with pytest.raises(ValueError, match="smooth"):
        VideoOptions(smooth="median")
    with pytest.raises(ValueError, match="window"):
        VideoOptions(window=0)


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with HTTP range requests, as video players and FFmpeg expect."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return
        start, end = 0, len(data) - 1
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start, end = int(a or 0), int(b) if b else len(data) - 1
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        try:
            self.wfile.write(data[start:end + 1])
        except (BrokenPipeError, ConnectionResetError):
            pass


def test_stream_over_http(analyzer):
    folder = need(VIDEOS)
    handler = functools.partial(_RangeHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/single_face.mp4"
        analyzer.reset()
        src = VideoSource(url, every=6)
        assert src.kind == "stream"
        frames = list(analyzer.analyze(url, video_source=src))
        assert len(frames) == 12 and sum(len(f) for f in frames) >= 10
        from affectlens.errors import InvalidVideoError
        with pytest.raises(InvalidVideoError, match="missing.mp4"):
            list(VideoSource(url.replace("single_face", "missing")))
    finally:
        server.shutdown()


def test_4k_frames_are_reported_in_original_pixels(analyzer, tmp_path):
    cap = cv2.VideoCapture(str(need(VIDEOS / "crowd_walking.mp4")))
    ok, hd = cap.read()
    uhd = cv2.resize(hd, (3840, 2160), interpolation=cv2.INTER_CUBIC)
    analyzer.reset()
    small = analyzer.process(hd, 0.0)
    analyzer.reset()
    big = analyzer.process(uhd, 0.0)
    assert big.info.image_size_hw == (2160, 3840)
    assert len(big) >= 2 and abs(len(big) - len(small)) <= 1
    # every 4K box is about twice a 1080p box
    for box in small.xyxy:
        d = np.abs(big.xyxy - box * 2).max(1).min()
        assert d < 0.15 * float(box[2] - box[0]) * 2 + 8


def test_detect_every_k_frames_tracks_in_between(recognizer):
    src = need(VIDEOS / "single_face.mp4")
    full = list(VideoAnalyzer(VideoOptions(detect_every=1), recognizer=recognizer).analyze(src, end_s=1.5))
    fast = list(VideoAnalyzer(VideoOptions(detect_every=3), recognizer=recognizer).analyze(src, end_s=1.5))
    assert len(full) == len(fast)
    assert all(len(f) == 1 for f in fast[2:]) and {int(f.track_id[0]) for f in fast[2:]} == {1}
    for a, b in zip(full[2:], fast[2:]):
        assert np.abs(a.xyxy - b.xyxy).max() < 0.15 * float(a.xyxy[0, 2] - a.xyxy[0, 0])
    with pytest.raises(ValueError, match="detect_every"):
        VideoOptions(detect_every=-1)


class _CountingDetector:
    """The real detector, counting full-frame passes and window passes."""

    def __init__(self, detector):
        self.detector, self.full, self.regions, self.name = detector, 0, 0, detector.name
        self.options = detector.options

    def detect(self, image, **kwargs):
        self.full += 1
        return self.detector.detect(image, **kwargs)

    def detect_regions(self, image, boxes, **kwargs):
        self.regions += 1
        return self.detector.detect_regions(image, boxes, **kwargs)


def test_auto_detection_scans_rarely_on_a_steady_face_and_keeps_the_boxes(recognizer):
    src = need(VIDEOS / "single_face.mp4")
    full = list(VideoAnalyzer(VideoOptions(detect_every=1), recognizer=recognizer).analyze(src, end_s=2.0))
    auto = VideoAnalyzer(VideoOptions(), recognizer=EmotionRecognizer())  # detect_every=0: auto
    counting = auto.recognizer.detector = _CountingDetector(auto.recognizer.detector)
    frames = list(auto.analyze(src, end_s=2.0))
    # a steady face: full scans every 0.5 s, windows every 2-4 frames as its prediction holds
    assert len(frames) == len(full) and counting.full <= 0.3 * len(frames)
    assert 0.15 * len(frames) <= counting.regions <= 0.45 * len(frames)
    assert auto.scheduler.gap >= 3  # the motion model predicted this face well, so the gap grew
    assert all(len(f) == 1 for f in frames[2:])
    for a, b in zip(full[2:], frames[2:]):
        assert np.abs(a.xyxy - b.xyxy).max() < 0.15 * float(a.xyxy[0, 2] - a.xyxy[0, 0])
        assert a.emotions == b.emotions or abs(float(a.confidence[0]) - float(b.confidence[0])) < 0.3


def test_classify_per_s_reads_the_longest_unread_faces_and_holds_the_others(recognizer):
    img = need(IMAGES / "multi_face.jpg")
    frame = cv2.imread(str(img))
    # 50 readings per second at 25 frames per second: 2 faces a frame
    va = VideoAnalyzer(VideoOptions(classify_per_s=50, detect_every=1, tracker=TrackerOptions(min_hits=1)),
                       recognizer=recognizer)
    out = [va.process(frame, 40.0 * i) for i in range(12)]
    n = len(out[0])
    assert n >= 4
    assert out[0].data["read"].all()  # faces without a reading are always read
    reads = [int(f.data["read"].sum()) for f in out]
    assert abs(sum(reads) - 50 * 0.44) <= 1  # on average 50 per second, the first frame's included
    assert reads[-4:] == [2, 2, 2, 2]
    read_counts = np.sum([f.data["read"] for f in out[4:]], 0)
    assert read_counts.max() - read_counts.min() <= 1  # round robin, the longest unread first
    k = next(i for i in range(1, 12) if not out[i].data["read"].all())
    held = ~out[k].data["read"]
    np.testing.assert_array_equal(out[k].data["probs_raw"][held], out[k - 1].data["probs_raw"][held])
    np.testing.assert_array_equal(out[k].probs[held], out[k - 1].probs[held])  # the smoother is not fed twice
    va.reset()  # sampled at 5 frames per second, 50 per second is 10 a frame: every face is read
    assert all(va.process(frame, 200.0 * i).data["read"].all() for i in range(3))
    every = VideoAnalyzer(VideoOptions(classify_per_s=0, detect_every=1), recognizer=recognizer)
    assert all(every.process(frame, 40.0 * i).data["read"].all() for i in range(2))
    with pytest.raises(ValueError, match="classify_per_s"):
        VideoOptions(classify_per_s=-1)


def test_prediction_error_is_the_median_track_offset_over_the_face_side():
    from affectlens.video.analyzer import prediction_error

    measured = Faces(np.array([[0, 0, 100, 100], [200, 0, 250, 50], [400, 0, 420, 20.0]]), np.ones(3),
                     np.zeros((3, 5, 2)), track_id=np.array([1, 2, -1]))
    predicted = np.array([[3, 0, 103, 100], [200, 0, 260, 50], [0, 0, 1, 1.0]])
    # track 1: centre 3 px off a 100 px face (0.03); track 2: width 10 px off a 50 px face (0.2);
    # track 9 was not found (lost) and the unconfirmed face has no track: both left out of the median
    error, lost = prediction_error(np.array([1, 2, 9]), predicted, measured)
    assert error == pytest.approx((0.03 + 0.2) / 2) and lost
    assert prediction_error(np.array([1, 2]), predicted[:2], measured) == (pytest.approx(0.115), False)
    assert prediction_error(np.array([9]), predicted[:1], measured) == (float("inf"), True)
