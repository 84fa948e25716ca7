"""The whole pipeline on real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectlens import EmotionRecognizer, Faces, InvalidImageError
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
        assert set(f.scores) == set(EMOTIONS)
        assert sum(f.scores.values()) == pytest.approx(1.0, abs=1e-4)
        assert f.emotion in EMOTIONS and f.confidence == max(f.scores.values())
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
