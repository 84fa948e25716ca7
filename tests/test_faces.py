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


# ----- notebook and DataFrame conveniences ---------------------------------------------------
def test_top_emotion_is_the_most_confident_face():
    f = _faces(3)
    i = int(np.argmax(f.confidence))
    assert f.top_emotion == (f.emotions[i], pytest.approx(float(f.confidence[i])))
    assert Faces.empty().top_emotion is None and _faces(2, classified=False).top_emotion is None


def test_to_pandas_one_row_per_face():
    pd = pytest.importorskip("pandas")
    f = _faces(3).with_data(quality=np.array([0.9, 0.2, 0.5], np.float32))
    df = f.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert list(df.columns[:12]) == ["source", "frame_index", "timestamp_ms", "face", "track_id", "x1", "y1", "x2",
                                     "y2", "det_score", "emotion", "confidence"]
    assert list(df.columns[12:19]) == list(EMOTIONS) and df.columns[-1] == "quality"
    assert df["emotion"].tolist() == f.emotions and df["track_id"].isna().all()
    np.testing.assert_allclose(df[list(EMOTIONS)].to_numpy(), f.probs, rtol=1e-6)
    assert df["source"].eq("x.jpg").all()
    assert len(Faces.empty().to_pandas()) == 0


def test_to_json_is_the_dict_as_a_string():
    f = _faces(2)
    assert json.loads(f.to_json()) == json.loads(json.dumps(f.to_dict()))
    assert f.to_json(indent=2).startswith("{\n")


def test_repr_html_without_image_is_a_table():
    text = _faces(2)._repr_html_()
    assert "<table>" in text and "<img" not in text and "2 face(s) in x.jpg" in text
    assert "appearance, not inner state" in text
