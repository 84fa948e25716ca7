"""Per-track temporal smoothing and the flicker measure."""

from __future__ import annotations

import numpy as np
import pytest

from affectlens.faces import Faces
from affectlens.smoothing import (EmaSmoother, HmmSmoother, MovingAverageSmoother, TemporalEmotionTracker,
                                  create_smoother, flicker_rate)


def _frame(probs, ids):
    probs = np.asarray(probs, np.float32).reshape(len(ids), -1)
    n = len(ids)
    return Faces(np.tile([0, 0, 10, 10], (n, 1)), np.ones(n), np.zeros((n, 5, 2)), probs, track_id=np.array(ids))


def _noisy_sequence(n=200, switch_at=100, flip_every=7, seed=0):
    """Class 3 (happy) then class 4 (neutral), with a one-frame wrong top label every few frames."""
    rng = np.random.default_rng(seed)
    seq = []
    for t in range(n):
        true = 3 if t < switch_at else 4
        p = np.full(7, 0.05)
        p[true] = 0.7
        if t % flip_every == 0:
            p[[true, 5]] = p[[5, true]]  # a flicker to 'sad'
        p += rng.uniform(0, 0.02, 7)
        seq.append(p / p.sum())
    return np.array(seq)


def test_temporal_emotion_tracker_is_a_moving_average():
    rng = np.random.default_rng(0)
    seq = rng.dirichlet(np.ones(7), 30)
    tr = TemporalEmotionTracker(window_size=10)
    for t in range(30):
        out = tr.update(seq[t])
    assert np.allclose(out, seq[-10:].mean(0))
    with pytest.raises(ValueError):
        TemporalEmotionTracker(0)


def test_moving_average_per_track_and_raw_kept():
    sm = MovingAverageSmoother(window=3)
    rng = np.random.default_rng(1)
    seq = rng.dirichlet(np.ones(7), (5, 2))
    for t in range(5):
        out = sm.update(_frame(seq[t], [1, 2]))
    assert np.allclose(out.probs[0], seq[2:, 0].mean(0), atol=1e-6)
    assert np.allclose(out.probs[1], seq[2:, 1].mean(0), atol=1e-6)
    assert np.allclose(out.data["probs_raw"], seq[4], atol=1e-6)
    assert sm.tracks == [1, 2]
    sm.forget([1])
    assert sm.tracks == [2]


def test_ema_formula_and_untracked_rows_pass_through():
    sm = EmaSmoother(alpha=0.25)
    a, b = np.eye(7)[3], np.eye(7)[4]
    sm.update(_frame([a, a], [1, -1]))
    out = sm.update(_frame([b, b], [1, -1]))
    assert np.allclose(out.probs[0], 0.25 * b + 0.75 * a)
    assert np.allclose(out.probs[1], b)


@pytest.mark.parametrize("name, kwargs", [("moving-average", {"window": 15}), ("ema", {"alpha": 0.2}),
                                          ("hmm", {"stay_prob": 0.9})])
def test_smoothers_reduce_flicker_and_follow_real_changes(name, kwargs):
    seq = _noisy_sequence()
    ts = np.arange(len(seq)) * 40.0
    sm = create_smoother(name, **kwargs)
    smoothed = np.array([sm.update(_frame(p[None], [1])).probs[0] for p in seq])
    assert np.allclose(smoothed.sum(1), 1, atol=1e-5)
    raw_rate = flicker_rate(seq.argmax(1), ts)
    smooth_rate = flicker_rate(smoothed.argmax(1), ts)
    assert smooth_rate < 0.2 * raw_rate
    top = smoothed.argmax(1)
    assert top[90] == 3 and (top[100:115] == 4).any(), "follows the switch within 15 frames"
    assert (top[130:] == 4).all()


def test_hmm_with_prior_and_validation():
    sm = HmmSmoother(stay_prob=0.95, prior=[0.14, 0.02, 0.14, 0.25, 0.17, 0.17, 0.11])
    flat = _frame(np.full((1, 7), 1 / 7), [3])
    assert np.allclose(sm.update(flat).probs, 1 / 7), "the first frame is the classifier's posterior"
    out = sm.update(flat)
    assert out.probs[0].argmax() == 1, "later flat posteriors divided by the prior favour the rare class"
    with pytest.raises(ValueError):
        HmmSmoother(stay_prob=1.0)
    with pytest.raises(ValueError, match="unknown smoother"):
        create_smoother("kalman")
    with pytest.raises(ValueError, match="window"):
        create_smoother("moving-average", window=0)


def test_reset_and_unclassified_input():
    sm = create_smoother("ema")
    sm.update(_frame(np.eye(7)[[3]], [1]))
    sm.reset()
    assert sm.tracks == []
    with pytest.raises(ValueError, match="classified"):
        sm.update(Faces(np.zeros((1, 4)), np.ones(1), np.zeros((1, 5, 2)), track_id=np.array([1])))


def test_flicker_rate():
    assert flicker_rate(["a", "b", "b", "a"], [0, 20000, 40000, 60000]) == 2.0
    assert flicker_rate(["a"], [0]) == 0.0
