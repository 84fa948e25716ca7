"""The learned temporal smoother: streaming equals batch, the ONNX state round trip, its spec checks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from affectlens.errors import ModelLoadError
from affectlens.faces import Faces, FrameInfo
from affectlens.labels import EMOTIONS
from affectlens.smoothing import create_smoother
from affectlens.temporal.learned import (WEIGHTS_DIR, LearnedSmoother, pick_temporal_model, resolve_temporal_spec,
                                        track_features)

FRONTAL = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.6, 92.4], [70.7, 92.2]])


def _track(seed: int, n: int = 40):
    """A face track: noisy probabilities (happy, then sad), drifting box and pose, uneven frame gaps."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(30, 70, n))
    t -= t[0]
    true = np.where(np.arange(n) < n // 2, EMOTIONS.index("happy"), EMOTIONS.index("sad"))
    probs = rng.dirichlet(np.ones(7) * 0.7, n) * 0.5
    probs[np.arange(n), true] += 0.5
    shift = rng.normal(0, 2, (n, 1, 2)).cumsum(0)
    lms = FRONTAL[None] + shift
    boxes = np.concatenate([lms.min(1) - 20, lms.max(1) + 20], 1)
    scores = rng.uniform(0.7, 0.99, n)
    return t, probs.astype(np.float32), boxes, lms, scores


def _faces(tracks, i, t_ms):
    rows = [(tid, tr) for tid, tr in tracks if i < len(tr[0])]
    return Faces(np.array([tr[2][i] for _, tr in rows]), np.array([tr[4][i] for _, tr in rows]),
                 np.array([tr[3][i] for _, tr in rows]), np.array([tr[1][i] for _, tr in rows]), EMOTIONS,
                 np.array([tid for tid, _ in rows]), info=FrameInfo("clip.mp4", i, t_ms, (480, 640)))


def test_streaming_several_tracks_equals_each_track_alone():
    """Frame-by-frame updates with three tracks in one batch = the offline pass over each track."""
    sm = LearnedSmoother(labels=EMOTIONS)
    tracks = [(tid, _track(tid)) for tid in (1, 2, 3)]
    for _, tr in tracks[1:]:
        tr[0][:] = tracks[0][1][0]  # one clock for the frame (the tracks share the frames' times)
    streamed = {tid: [] for tid, _ in tracks}
    for i, t in enumerate(tracks[0][1][0]):
        out = sm.update(_faces(tracks, i, float(t)))
        assert np.allclose(out.probs.sum(1), 1, atol=1e-5)
        assert np.allclose(out.data["probs_raw"], [tr[1][i] for _, tr in tracks])
        for k, tid in enumerate(out.track_id):
            streamed[int(tid)].append(out.probs[k])
    for tid, tr in tracks:
        one = _faces([(tid, tr)], 0, 0.0)
        q = np.concatenate([track_features(_faces([(tid, tr)], i, 0.0)) for i in range(len(tr[0]))])
        alone = LearnedSmoother("temporal-gru").smooth_sequence(tr[1], q, tr[0])
        assert np.allclose(np.array(streamed[tid]), alone, atol=1e-5), tid
        assert one.labels == EMOTIONS


def test_onnx_state_round_trip():
    """The state out of one call, fed back in, continues the sequence exactly; zeros start afresh."""
    sm = LearnedSmoother("temporal-gru")
    t, probs, boxes, lms, scores = _track(7)
    faces = [_faces([(1, (t, probs, boxes, lms, scores))], i, float(t[i])) for i in range(len(t))]
    q = np.concatenate([track_features(f) for f in faces])
    dt = np.diff(t, prepend=t[:1])
    x = np.column_stack([probs, q, dt]).astype(np.float32)
    h = np.zeros((1, sm.hidden), np.float32)
    states, outs = [], []
    for i in range(len(t)):
        p, h = sm.step(x[i:i + 1], h)
        states.append(h.copy())
        outs.append(p[0])
    k = 25
    p, h2 = sm.step(x[k:k + 1], states[k - 1])
    assert np.allclose(p[0], outs[k], atol=1e-6) and np.allclose(h2, states[k], atol=1e-6)
    fresh, _ = sm.step(x[:1], np.zeros((1, sm.hidden), np.float32))
    assert np.allclose(fresh[0], outs[0], atol=1e-6)
    assert not np.allclose(sm.step(x[k:k + 1], np.zeros((1, sm.hidden), np.float32))[0], outs[k], atol=1e-4), \
        "the state matters"
    sm.update(faces[0])
    assert sm.tracks == [1]
    sm.forget([1])
    assert sm.tracks == []


@pytest.mark.slow
def test_on_held_out_sequences_it_is_more_accurate_and_flickers_less_than_raw():
    """Sequences built from PrivateTest faces (never in training), scored by the model it learned."""
    from affectlens.classifier import EmotionClassifier
    from affectlens.temporal.evaluate import sequence_metrics, smooth_sequences
    from affectlens.temporal.synth import make_sequences
    from affectlens.training.temporal import labelled_faces
    from conftest import FER2013, need

    sm = LearnedSmoother()
    clf = EmotionClassifier(sm.spec["classifier"]["name"], threads=1)
    images, labels = labelled_faces(str(need(FER2013)), clf.labels, "PrivateTest")
    seqs = make_sequences(clf, images, labels, clf.labels, n_seq=6, seed=123)
    raw = sequence_metrics(seqs["probs"].argmax(-1), seqs["y"], seqs["t_ms"])
    out = smooth_sequences(lambda: sm, seqs["probs"], seqs["feats"], seqs["t_ms"], clf.labels)
    learned = sequence_metrics(out.argmax(-1), seqs["y"], seqs["t_ms"])
    assert np.allclose(out.sum(-1), 1, atol=1e-4)
    assert learned["accuracy"] > raw["accuracy"] + 0.03, (raw, learned)
    assert learned["switches_per_min"] < 0.7 * raw["switches_per_min"], (raw, learned)


def test_label_mismatch_is_refused_with_a_clear_error():
    plus = (*EMOTIONS, "contempt")
    with pytest.raises(ModelLoadError, match=r"trained on the outputs of .* labels .*retrain"):
        LearnedSmoother("temporal-gru", labels=plus)
    sm = LearnedSmoother("temporal-gru")
    f = Faces(np.zeros((1, 4)), np.ones(1), np.zeros((1, 5, 2)), np.full((1, 8), 1 / 8), plus, np.array([1]))
    with pytest.raises(ModelLoadError, match="emotion model gives"):
        sm.update(f)


def test_video_options_refuse_a_learned_smoother_for_another_label_set():
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
    from affectlens.recognizer import RecognizerOptions

    with pytest.raises(ModelLoadError, match="ferplus|contempt"):
        VideoAnalyzer(VideoOptions(recognizer=RecognizerOptions(model="ferplus-vgg48s"), smooth="learned",
                                   temporal_model="temporal-gru"))


def test_each_classifier_family_gets_the_temporal_model_trained_on_its_own_outputs():
    from affectlens.classifier import EmotionClassifier
    from affectlens.models.registry import DEFAULT_MODEL, select_variant

    default = select_variant()[0]
    for name, want in ((default, "temporal-gru-ferplus"), (DEFAULT_MODEL, "temporal-gru-ferplus"),
                       (f"{DEFAULT_MODEL}-int8", "temporal-gru-ferplus"), ("ferplus-vgg48s", "temporal-gru-ferplus"),
                       ("fer-vgg48s-int8", "temporal-gru"), ("fer-vgg48s-ens-zoom", "temporal-gru")):
        labels = EmotionClassifier(name, threads=1).labels
        assert pick_temporal_model(labels, name) == want, name
        sm = LearnedSmoother(labels=labels, classifier=name)
        assert sm.spec["name"] == want and sm.labels == labels
    with pytest.raises(ModelLoadError, match=r"no shipped temporal model .*\['happy', 'sad'\].*train-temporal"):
        pick_temporal_model(("happy", "sad"), "custom")


def test_the_default_models_temporal_model_spec():
    """Trained on the file `affectlens` runs by default on this kind of CPU (x86 int8), FER+ labels."""
    from affectlens.classifier import EmotionClassifier
    from affectlens.models.registry import DEFAULT_MODEL

    spec, onnx_path = resolve_temporal_spec("temporal-gru-ferplus")
    clf = EmotionClassifier(spec["classifier"]["name"], threads=1)
    assert spec["classifier"]["name"] == f"{DEFAULT_MODEL}-int8" and spec["classifier"]["sha256"] == clf.spec.sha256
    assert tuple(spec["labels"]) == clf.labels and "contempt" in spec["labels"]
    assert spec["features"] == ["det_score", "face_px", "yaw", "pitch", "dt_ms"]
    assert onnx_path.stat().st_size < 1_000_000
    assert "FER+" in spec["training"]["face_labels"]
    held = spec["metrics"]["held_out_sequences"]
    assert held["accuracy"] > held["raw"]["accuracy"], held


def test_video_with_the_default_model_and_learned_smoothing_runs_out_of_the_box():
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
    from conftest import VIDEOS, need

    va = VideoAnalyzer(VideoOptions(smooth="learned", detect_every=1))
    assert va.smoother.spec["name"] == "temporal-gru-ferplus"
    frames = list(va.analyze(str(need(VIDEOS / "single_face.mp4")), fps=5, end_s=1.7))
    tracked = [f for f in frames if len(f) and f.track_id[0] >= 1]
    assert len(tracked) >= 4
    assert all(np.allclose(f.probs.sum(1), 1, atol=1e-5) for f in tracked)
    assert max(np.abs(f.probs - f.data["probs_raw"]).max() for f in tracked) > 1e-3


def test_spec_checks(tmp_path):
    assert resolve_temporal_spec()[0]["name"] == "temporal-gru-ferplus"
    spec, onnx_path = resolve_temporal_spec("temporal-gru")
    assert spec["kind"] == "temporal-smoother" and tuple(spec["labels"]) == EMOTIONS
    assert spec["features"] == ["det_score", "face_px", "yaw", "pitch", "dt_ms"]
    shutil.copy(onnx_path, tmp_path / onnx_path.name)
    (tmp_path / "t.json").write_text(json.dumps(spec))
    assert LearnedSmoother(tmp_path / "t.json").labels == EMOTIONS
    with open(tmp_path / onnx_path.name, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        LearnedSmoother(tmp_path / "t.json")
    (tmp_path / "emo.json").write_text(json.dumps({**spec, "kind": None}))
    with pytest.raises(ModelLoadError, match="temporal-smoother"):
        LearnedSmoother(tmp_path / "emo.json")
    with pytest.raises(ModelLoadError, match="not found"):
        LearnedSmoother("no-such-model")
    assert sorted(p.suffix for p in WEIGHTS_DIR.iterdir() if p.stem == spec["name"]) == [".json", ".onnx"]
