"""The whole pipeline on real photos."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from affectlens import EmotionRecognizer, Faces, InvalidImageError
from affectlens.faces import UNRELIABLE
from affectlens.labels import EMOTIONS
from affectlens.imageio import load_image
from conftest import IMAGES, need


@pytest.mark.parametrize("name, n", [("single_face.jpg", 1), ("BWPictureHuman.jpg", 1),
                                     ("Image_with_alpha.png", 1), ("free-mountain-vector-01.jpg", 0)])
def test_faces_in_shared_photos(recognizer, name, n):
    faces = recognizer.predict(need(IMAGES / name))
    assert isinstance(faces, Faces) and len(faces) == n
    assert faces.info.source.endswith(name)
    for f in faces:
        assert set(f.scores) == set(recognizer.labels) >= set(EMOTIONS)
        assert sum(f.scores.values()) == pytest.approx(1.0, abs=1e-4)
        assert f.top_label in recognizer.labels and f.confidence == max(f.scores.values())
        assert f.emotion == (f.top_label if f.reliable else UNRELIABLE)
        assert 0 < f.det_score <= 1 and len(f.landmarks) == 5


def test_result_serialises_to_json(recognizer):
    faces = recognizer.predict(need(IMAGES / "multi_face.jpg"))
    d = json.loads(faces.to_json())
    assert len(d["faces"]) == len(faces) >= 4
    rec = d["faces"][0]
    assert set(rec) >= {"bbox", "landmarks", "det_score", "emotion", "confidence", "scores"}
    assert d["info"]["image_size_hw"] == list(load_image(IMAGES / "multi_face.jpg").shape[:2])


def test_the_smiling_face_reads_happy(recognizer):
    assert recognizer.predict(need(IMAGES / "single_face.jpg"))[0].emotion == "happy"


def test_path_bytes_and_array_give_the_same_result(recognizer, single_face_path):
    a = recognizer.predict(single_face_path)
    b = recognizer.predict(single_face_path.read_bytes())
    c = recognizer.predict(load_image(single_face_path))
    assert np.allclose(a.probs, b.probs) and np.allclose(a.probs, c.probs)
    assert b.info.source is None


def test_grayscale_input(recognizer, single_face_path):
    gray = load_image(single_face_path)[..., 1]
    assert len(recognizer.predict(gray)) == 1


def test_options_reach_the_detector():
    rec = EmotionRecognizer(min_score=0.9, max_faces=1)
    assert rec.detector.options.min_score == 0.9
    assert len(rec.predict(need(IMAGES / "multi_face.jpg"))) == 1


def test_bad_input_raises_invalid_image(recognizer, tmp_path):
    with pytest.raises(InvalidImageError, match="missing.png"):
        recognizer.predict(tmp_path / "missing.png")


def test_list_of_paths_gives_a_list_of_results(recognizer):
    paths = [need(IMAGES / "single_face.jpg"), need(IMAGES / "multi_face.jpg")]
    out = recognizer.predict(paths)
    assert isinstance(out, list) and [len(f) for f in out] == [1, len(recognizer.predict(paths[1]))]
    assert [f.info.source for f in out] == [str(p) for p in paths]


def test_pil_input_and_notebook_display(recognizer):
    Image = pytest.importorskip("PIL.Image")
    path = need(IMAGES / "single_face.jpg")
    faces = recognizer.predict(Image.open(path))
    assert len(faces) == 1 and faces.top_emotion[0] == faces.emotions[0]
    html = faces._repr_html_()
    assert html.count('<img') == 1 and "data:image/jpeg;base64," in html and "<table>" in html


@pytest.mark.slow
@pytest.mark.parametrize("model, labels, bound", [
    ("ferplus-vgg48s-ens-zoom-int8", "ferplus", 0.01),  # the default on x86, on its own labels
    # the FER-2013 benchmark model: guards its measured level; about 25 s, so with the full evaluation only
    pytest.param("fer-vgg48s-int8", "fer2013", 0.03, marks=pytest.mark.skipif(
        os.environ.get("AFFECTLENS_FULL_EVAL") != "1", reason="AFFECTLENS_FULL_EVAL=1 runs this model's parity")),
])
def test_detect_and_align_land_near_direct_crop_accuracy(model, labels, bound):
    """Issue 15's parity check: FER test faces upscaled to 192 px and padded into grey photos,
    through the whole pipeline (detection, 5-point alignment with the spec's 15° roll dead
    band, classification), against the same faces fed as crops. Measured on 2-core AMD EPYC
    (AVX2) with ``tools/align_parity.py`` (docs/alignment.md), first 1,024 test faces:

    - the default ``ferplus-vgg48s-ens-zoom-int8`` on FER+ majority votes: 99.3% found; 89.28%
      through the pipeline vs 89.48% as crops, a gap of 0.20 points (whole FER+ test, 3,153
      faces: 0.32; 0.64 with full alignment). Within the issue's 1 point.
    - ``fer-vgg48s-int8`` on FER-2013's labels: 99.0% found; 69.7% vs 72.0%, 2.3 points (whole
      PrivateTest: 1.68; 2.13 with full alignment). Not within 1 point: the same faces cut back
      by the known upscale-and-pad transform score 72.3%, so the gap is the per-face framing
      (scale sd 19%, shift sd 3-4 px) that one template changes away from FER's own crops,
      which this single network, trained without zoom views, is more sensitive to. With about
      140 faces right on one side only, its standard error is about 1.2 points.
    """
    from affectlens.evaluate import faces_in_photos, private_test_faces
    from conftest import FER2013

    rec = EmotionRecognizer(model=model, min_quality=0.0)
    images, truth = private_test_faces(need(FER2013), labels, rec.classifier.labels)
    images, truth = images[:1024], truth[:1024]
    direct = rec.classifier.classify_crops(images).argmax(1)
    piped = np.full(len(images), -1)
    for photo, where in faces_in_photos(images):
        faces = rec.predict_bgr(photo)
        centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
        for i, x, y in where:
            d = np.hypot(centres[:, 0] - x, centres[:, 1] - y)
            if len(d) and d.min() < 64:
                piped[i] = int(faces.probs[int(d.argmin())].argmax())
    found = piped >= 0
    assert found.mean() >= 0.97
    gap = float((direct[found] == truth[found]).mean() - (piped[found] == truth[found]).mean())
    assert gap <= bound, f"{model}: pipeline {gap:.1%} below direct crops"
