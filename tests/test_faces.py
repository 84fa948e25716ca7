"""The central result type: construction checks, indexing, derived columns, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectlens.faces import Faces, FrameInfo
from affectlens.labels import EMOTIONS


def _faces(n=3, classified=True):
    rng = np.random.default_rng(1)
    xyxy = np.array([[10 * i, 10, 10 * i + 40, 60] for i in range(n)], np.float32)
    lm = rng.uniform(0, 60, (n, 5, 2))
    probs = rng.dirichlet(np.ones(7), n) if classified else None
    return Faces(xyxy, np.linspace(0.9, 0.7, n), lm, probs, info=FrameInfo("x.jpg", None, None, (100, 200)))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="landmarks"):
        Faces(np.zeros((2, 4)), np.zeros(2), np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="probs"):
        Faces(np.zeros((2, 4)), np.zeros(2), np.zeros((2, 5, 2)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="data"):
        Faces(np.zeros((2, 4)), np.zeros(2), np.zeros((2, 5, 2)), data={"x": np.zeros(3)})


def test_face_records_and_top_emotion():
    faces = _faces()
    f = faces[1]
    assert f.emotion == EMOTIONS[int(faces.probs[1].argmax())]
    assert f.confidence == pytest.approx(float(faces.probs[1].max()))
    assert set(f.scores) == set(EMOTIONS) and sum(f.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert f.track_id is None
    assert faces.emotions == [faces[i].emotion for i in range(3)]


def test_masks_slices_and_index_arrays_return_faces():
    faces = _faces(4).with_data(quality=np.arange(4.0))
    sub = faces[faces.det_score > 0.8]
    assert isinstance(sub, Faces) and len(sub) == 2
    assert list(sub.data["quality"]) == [0.0, 1.0]
    assert len(faces[1:3]) == 2 and len(faces[[3, 0]]) == 2
    with pytest.raises(IndexError):
        faces[7]


def test_unclassified_faces():
    faces = _faces(2, classified=False)
    assert not faces.classified
    assert faces.emotions == [None, None] and np.isnan(faces.confidence).all()
    assert faces[0].scores == {} and faces[0].emotion is None


def test_json_round_trip():
    faces = _faces().replace(track_id=np.array([4, -1, 9]))
    text = faces.to_json()
    back = Faces.from_dict(json.loads(text))
    assert back.info == faces.info
    assert np.allclose(back.xyxy, faces.xyxy, atol=0.01)
    assert np.allclose(back.probs, faces.probs, atol=1e-5)
    assert back[0].track_id == 4 and back[1].track_id is None


def test_empty():
    e = Faces.empty(info=FrameInfo("none.jpg"))
    assert len(e) == 0 and list(e) == [] and e.to_dict()["faces"] == []
    assert Faces.from_dict(e.to_dict()).info.source == "none.jpg"
