"""Scene cuts end tracks: a clip spliced from two shared videos, cut detection on and off."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
from affectlens.video.scenecut import SceneCutDetector
from conftest import VIDEOS, need

SIZE_WH = (640, 360)
FPS = 6.0


def _read(name: str, n: int, every: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(need(VIDEOS / name)))
    out, i = [], 0
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        if i % every == 0:
            out.append(cv2.resize(img, SIZE_WH, interpolation=cv2.INTER_AREA))
        i += 1
    cap.release()
    return out


@pytest.fixture(scope="module")
def spliced(recognizer) -> tuple[list[np.ndarray], int]:
    """Two shots, one face each: the talking head, then the single-face clip moved and scaled so that its
    face lands where the first one was (as when a film cuts from one speaker to another)."""
    a = _read("WolfgangLanger_Pexels.mp4", 8, 4)
    b = _read("single_face.mp4", 8, 4)
    box_a = recognizer.detector.detect(a[-1]).xyxy[0]
    box_b = recognizer.detector.detect(b[0]).xyxy[0]
    s = (box_a[3] - box_a[1]) / (box_b[3] - box_b[1])
    tx, ty = (box_a[:2] + box_a[2:]) / 2 - s * (box_b[:2] + box_b[2:]) / 2
    m = np.float32([[s, 0, tx], [0, s, ty]])
    b = [cv2.warpAffine(img, m, SIZE_WH, borderMode=cv2.BORDER_REFLECT) for img in b]
    return a + b, len(a)


def _track_ids(frames, options: VideoOptions, recognizer) -> list[set[int]]:
    va = VideoAnalyzer(options, recognizer=recognizer)
    return [set(va.process(img, i * 1000.0 / FPS, i).track_id.tolist()) - {-1} for i, img in enumerate(frames)], va


def test_a_cut_ends_the_tracks(spliced, recognizer):
    frames, cut = spliced
    ids, va = _track_ids(frames, VideoOptions(), recognizer)
    before = set().union(*ids[:cut])
    after = set().union(*ids[cut:])
    assert before and after, ids
    assert before.isdisjoint(after), f"a track crosses the cut at frame {cut}: {ids}"
    assert va.scene_cuts_ms == [pytest.approx(cut * 1000.0 / FPS)]


def test_without_cut_detection_one_track_spans_both_people(spliced, recognizer):
    """Why the detector exists: the tracker alone links the two people (their boxes overlap)."""
    frames, cut = spliced
    ids, va = _track_ids(frames, VideoOptions(scene_cut_distance=None), recognizer)
    assert set().union(*ids[:cut]) & set().union(*ids[cut:]), ids
    assert va.scene_cuts_ms == []


@pytest.mark.parametrize("name, every", [("WolfgangLanger_Pexels.mp4", 12), ("crowd_walking.mp4", 1),
                                         ("crowd_walking.mp4", 5)])
def test_no_cut_within_one_shot(name, every):
    """Camera motion, walking people and expressions are not cuts (every frame, and 2 frames a second)."""
    det = SceneCutDetector()
    flags = [det.update(img) for img in _read(name, 40, every)]
    assert not any(flags), det.last_distance


def test_a_black_frame_is_a_cut_and_the_first_frame_is_not():
    det = SceneCutDetector()
    img = _read("single_face.mp4", 1, 1)[0]
    assert det.update(img) is False
    assert det.update(np.zeros_like(img)) is True and det.last_distance > 0.6


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_threshold_must_be_in_range(bad):
    with pytest.raises(ValueError, match="min_distance"):
        SceneCutDetector(bad)
    with pytest.raises(ValueError, match="scene_cut_distance"):
        VideoOptions(scene_cut_distance=bad)
