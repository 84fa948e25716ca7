"""Face quality: faces too small, blurred, in profile or doubtful read "unreliable"."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens import EmotionRecognizer
from affectlens.faces import UNRELIABLE, Faces
from affectlens.quality import SIGNALS, assess, quality_signals
from conftest import IMAGES, need


@pytest.fixture(scope="module")
def single(recognizer):
    image = cv2.imread(str(need(IMAGES / "single_face.jpg")))
    return image, recognizer.predict_bgr(image)


def test_a_clear_frontal_face_is_reliable(single):
    _, faces = single
    assert len(faces) == 1 and faces.reliable.all()
    face = faces[0]
    assert face.quality >= 0.9 and face.emotion == face.top_label == "happy"
    assert face.to_dict()["reliable"] is True and face.to_dict()["quality"] >= 0.9


def test_a_profile_is_unreliable_because_of_pose(recognizer):
    faces = recognizer.predict(need(IMAGES / "BWPictureHuman.jpg"))
    assert len(faces) == 1 and not faces.reliable[0]
    assert faces[0].quality_reason == "pose" and faces[0].emotion == UNRELIABLE
    assert faces[0].top_label in faces.labels  # its best guess is kept
    assert faces.emotions == [UNRELIABLE]


def test_a_tiny_face_is_unreliable_because_of_size(single, recognizer):
    image, faces = single
    x1, y1, x2, y2 = faces.xyxy[0]
    scale = 22 / (x2 - x1)  # the face ends up about 22 px wide, on a grey canvas
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((240, 320, 3), 127, np.uint8)
    canvas[10:10 + small.shape[0], 10:10 + small.shape[1]] = small[:230, :310]
    found = recognizer.predict_bgr(canvas)
    assert len(found) >= 1
    assert not found.reliable[0] and found[0].quality_reason == "size"


def test_blur_lowers_sharpness(single, recognizer):
    image, faces = single
    crops = recognizer.classifier.align(image, faces.landmarks)
    blurred = np.stack([cv2.GaussianBlur(c, (0, 0), 3) for c in crops])
    sharp, soft = quality_signals(faces, crops)["sharpness"], quality_signals(faces, blurred)["sharpness"]
    assert soft[0] < 0.5 * sharp[0]
    assert assess(faces, blurred, 0.9)[0].quality_reason == "sharpness"


def test_min_quality_zero_keeps_every_reading(single):
    image, _ = single
    rec = EmotionRecognizer(min_quality=0.0)
    faces = rec.predict(need(IMAGES / "BWPictureHuman.jpg"))
    assert faces.reliable.all() and faces.emotions[0] != UNRELIABLE


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_min_quality_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="min_quality must be in"):
        EmotionRecognizer(min_quality=bad)


def test_quality_survives_json_and_indexing(single):
    _, faces = single
    back = Faces.from_dict(faces.to_dict())
    assert back[0].quality == pytest.approx(faces[0].quality, abs=1e-4)
    assert back[0].reliable and back[0].quality_reason == faces[0].quality_reason
    assert set(faces[[0]].data) >= {"quality", "quality_reason", "reliable"}


def test_signals_need_one_crop_per_face(single):
    _, faces = single
    with pytest.raises(ValueError, match="one per face"):
        quality_signals(faces, np.zeros((2, 48, 48), np.uint8))
    assert set(quality_signals(faces[:0], np.zeros((0, 48, 48), np.uint8))) == set(SIGNALS)
