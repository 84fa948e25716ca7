"""Per-track temporal smoothing and the flicker measure."""

from __future__ import annotations

import numpy as np
import pytest

from affectlens.faces import Faces, FrameInfo
from affectlens.smoothing import (EmaSmoother, HmmSmoother, MovingAverageSmoother, NoSmoother,
                                  TemporalEmotionTracker, create_smoother, flicker_rate)


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


def _run(smoother, seq, track_id=1):
    return np.array([smoother.update(_frame(p[None], [track_id])).probs[0] for p in seq])


def test_temporal_emotion_tracker_is_a_moving_average():
    rng = np.random.default_rng(0)
    seq = rng.dirichlet(np.ones(7), 30)
    tr = TemporalEmotionTracker(window_size=10)
    outs = [tr.update(seq[t]) for t in range(30)]
    assert np.allclose(outs[3], seq[:4].mean(0)), "fewer frames than the window: mean of those seen"
    assert np.allclose(outs[-1], seq[-10:].mean(0))
    tr.reset()
    assert np.allclose(tr.update(seq[0]), seq[0])
    with pytest.raises(ValueError, match="shape"):
        tr.update(np.ones(5) / 5)


@pytest.mark.parametrize("window_size", [0, -3, 2.5])
def test_temporal_emotion_tracker_rejects_bad_windows(window_size):
    with pytest.raises(ValueError, match="window_size"):
        TemporalEmotionTracker(window_size)


def test_moving_average_per_track_and_raw_kept():
    sm = MovingAverageSmoother(window=3)
    rng = np.random.default_rng(1)
    seq = rng.dirichlet(np.ones(7), (5, 2))
    for t in range(5):
        f = _frame(seq[t], [1, 2])
        out = sm.update(f)
    assert np.allclose(out.probs[0], seq[2:, 0].mean(0), atol=1e-6)
    assert np.allclose(out.probs[1], seq[2:, 1].mean(0), atol=1e-6)
    assert np.allclose(out.data["probs_raw"], seq[4], atol=1e-6)
    assert np.allclose(f.probs, seq[4], atol=1e-6) and "probs_raw" not in f.data, "input unchanged"
    assert sm.tracks == [1, 2]
    sm.forget([1, 99])
    assert sm.tracks == [2]
    new = rng.dirichlet(np.ones(7), 2)
    out = sm.update(_frame(new, [1, 2]))
    assert np.allclose(out.probs[0], new[0], atol=1e-6), "a forgotten track starts afresh"
    assert np.allclose(out.probs[1], np.vstack([seq[3:, 1], new[1:]]).mean(0), atol=1e-6), "the other goes on"


def test_ema_formula_and_untracked_rows_pass_through():
    sm = EmaSmoother(alpha=0.25)
    a, b, c = np.eye(7)[3], np.eye(7)[4], np.eye(7)[0]
    sm.update(_frame([a, a], [1, -1]))
    out = sm.update(_frame([b, b], [1, -1]))
    assert np.allclose(out.probs[0], 0.25 * b + 0.75 * a)
    assert np.allclose(out.probs[1], b)
    out = sm.update(_frame([c], [1]))
    assert np.allclose(out.probs[0], 0.25 * c + 0.75 * (0.25 * b + 0.75 * a))
    assert sm.tracks == [1]


@pytest.mark.parametrize("name, kwargs", [("moving-average", {"window": 15}), ("ema", {"alpha": 0.2}),
                                          ("hmm", {"stay_prob": 0.9})])
def test_smoothers_reduce_flicker_and_follow_real_changes(name, kwargs):
    seq = _noisy_sequence()
    ts = np.arange(len(seq)) * 40.0
    smoothed = _run(create_smoother(name, **kwargs), seq)
    assert np.allclose(smoothed.sum(1), 1, atol=1e-5)
    raw_rate = flicker_rate(seq.argmax(1), ts)
    smooth_rate = flicker_rate(smoothed.argmax(1), ts)
    assert smooth_rate < 0.2 * raw_rate
    top = smoothed.argmax(1)
    assert top[90] == 3 and (top[100:115] == 4).any(), "follows the switch within 15 frames"
    assert (top[130:] == 4).all()


def test_hmm_removes_one_frame_flips_and_follows_a_sustained_change_quickly():
    seq = _noisy_sequence()
    top = _run(HmmSmoother(stay_prob=0.9), seq).argmax(1)
    switches = int((top[1:] != top[:-1]).sum())
    raw_switches = int((seq.argmax(1)[1:] != seq.argmax(1)[:-1]).sum())
    assert raw_switches > 50 and switches <= 2  # the first frame's flip, then the real change
    assert (top[1:100] == 3).all()
    assert np.argmax(top[100:] == 4) <= 3 and (top[104:] == 4).all()


def test_hmm_is_stickier_with_a_higher_stay_prob():
    p_new = np.full(7, 0.08)
    p_new[4] = 0.52
    seq = np.vstack([np.tile(np.eye(7)[3] * 0.6 + 0.4 / 7, (20, 1)), np.tile(p_new, (20, 1))])
    lag = {s: int(np.argmax(_run(HmmSmoother(stay_prob=s), seq).argmax(1)[20:] == 4)) for s in (0.5, 0.9, 0.99)}
    assert lag[0.5] <= lag[0.9] <= lag[0.99] and lag[0.5] < lag[0.99]


def test_hmm_with_prior_and_validation():
    sm = HmmSmoother(stay_prob=0.95, prior=[0.14, 0.02, 0.14, 0.25, 0.17, 0.17, 0.11])
    flat = _frame(np.full((1, 7), 1 / 7), [3])
    assert np.allclose(sm.update(flat).probs, 1 / 7), "the first frame is the classifier's posterior"
    out = sm.update(flat)
    assert out.probs[0].argmax() == 1, "later flat posteriors divided by the prior favour the rare class"
    with pytest.raises(ValueError, match="classes"):
        sm.update(Faces(np.zeros((1, 4)), np.ones(1), np.zeros((1, 5, 2)), np.full((1, 5), 0.2), tuple("abcde"),
                        track_id=np.array([3])))


@pytest.mark.parametrize("name, kwargs, valid", [
    ("none", {}, True),
    ("moving-average", {"window": 1}, True),
    ("moving-average", {"window": 300}, True),
    ("moving-average", {"window": 0}, False),
    ("moving-average", {"window": 301}, False),
    ("ema", {"alpha": 1.0}, True),
    ("ema", {"alpha": 0.0}, False),
    ("ema", {"alpha": 1.5}, False),
    ("hmm", {"stay_prob": 0.0}, True),
    ("hmm", {"stay_prob": 1.0}, False),
    ("hmm", {"prior": [0.5, 0.0, 0.5]}, False),
    ("hmm", {"window": 3}, False),  # not an argument of this smoother
    ("kalman", {}, False),
])
def test_create_smoother_validates(name, kwargs, valid):
    if valid:
        assert create_smoother(name, **kwargs).tracks == []
    else:
        with pytest.raises(ValueError):
            create_smoother(name, **kwargs)


def test_unknown_smoother_lists_the_valid_names():
    with pytest.raises(ValueError, match="none, moving-average, ema, hmm, learned"):
        create_smoother("kalman")


def test_none_passes_through_and_chained_smoothers_keep_the_first_raw_probs():
    seq = np.random.default_rng(2).dirichlet(np.ones(7), 3)
    out = NoSmoother().update(_frame(seq[:1], [1]))
    assert np.allclose(out.probs, seq[:1]) and np.allclose(out.data["probs_raw"], seq[:1])
    ema, ma = EmaSmoother(0.5), MovingAverageSmoother(2)
    for p in seq:
        out = ma.update(ema.update(_frame(p[None], [1])))
    assert np.allclose(out.data["probs_raw"], seq[-1:], atol=1e-6)


def test_reset_and_unclassified_input():
    sm = create_smoother("ema")
    sm.update(_frame(np.eye(7)[[3]], [1]))
    sm.reset()
    assert sm.tracks == []
    assert np.allclose(sm.update(_frame(np.eye(7)[[4]], [1])).probs, np.eye(7)[[4]]), "fresh state after reset"
    with pytest.raises(ValueError, match="classified"):
        sm.update(Faces(np.zeros((1, 4)), np.ones(1), np.zeros((1, 5, 2)), track_id=np.array([1])))
    assert len(sm.update(Faces.empty())) == 0


def test_flicker_rate():
    assert flicker_rate(["a", "b", "b", "a"], [0, 20000, 40000, 60000]) == 2.0
    assert flicker_rate(np.array([3, 3, 3]), [0, 500, 1000]) == 0.0
    assert flicker_rate([1, 2], [0, 1000]) == pytest.approx(60.0)
    assert flicker_rate(["a"], [0]) == 0.0
    assert flicker_rate(["a", "b"], [10, 10]) == 0.0
    with pytest.raises(ValueError, match="timestamp"):
        flicker_rate(["a", "b"], [0])


# ----- time-based parameters ---------------------------------------------------------------
def _timed(probs, ids, t_ms):
    probs = np.asarray(probs, np.float32).reshape(len(ids), -1)
    n = len(ids)
    return Faces(np.tile([0, 0, 10, 10], (n, 1)), np.ones(n), np.zeros((n, 5, 2)), probs, track_id=np.array(ids),
                 info=FrameInfo("clip.mp4", None, float(t_ms), (10, 10)))


def _step_response(smoother, fps, seconds=2.0, step_at_s=1.0):
    """p(neutral) of the output for a switch happy -> neutral at ``step_at_s``, sampled at ``fps``."""
    ts = np.arange(0, seconds * 1000, 1000 / fps)
    out = [smoother.update(_timed(np.eye(7)[[4 if t >= step_at_s * 1000 else 3]], [1], t)).probs[0, 4] for t in ts]
    return ts, np.array(out)


@pytest.mark.parametrize("make", [lambda: MovingAverageSmoother(window_s=0.5), lambda: EmaSmoother(tau_s=0.3)])
def test_time_based_smoothers_mean_the_same_span_at_any_frame_rate(make):
    """The time a smoothed label needs to follow a change is (about) the same at 10 and 30 frames/s."""
    follow = {}
    for fps in (10, 30):
        ts, p = _step_response(make(), fps)
        follow[fps] = ts[np.argmax((ts >= 1000) & (p > 0.5))] - 1000
    assert follow[10] > 0 and abs(follow[10] - follow[30]) <= 100, follow


def test_hmm_hold_time_is_its_stay_probability_at_the_frame_rate():
    """hold_s sets the transition prior per elapsed time: at 25 frames/s, hold_s=0.8 is stay_prob exp(-40/800)."""
    seq = _noisy_sequence()
    by_time, by_frame = HmmSmoother(hold_s=0.8), HmmSmoother(stay_prob=float(np.exp(-40 / 800)))
    for t, p in enumerate(seq):
        a = by_time.update(_timed(p[None], [1], 40.0 * t)).probs
        b = by_frame.update(_frame(p[None], [1])).probs
        assert np.allclose(a, b, atol=1e-6)
    sparse = HmmSmoother(hold_s=0.8)  # the same evidence 4 times further apart: the prior sticks less per frame
    tops = [sparse.update(_timed(p[None], [1], 160.0 * t)).probs[0].argmax() for t, p in enumerate(seq)]
    assert np.argmax(np.array(tops[100:]) == 4) <= np.argmax(_run(HmmSmoother(hold_s=0.8), seq)[100:].argmax(1) == 4)


def test_frame_count_aliases_depend_on_the_frame_rate():
    follow = {}
    for fps in (10, 30):
        ts, p = _step_response(MovingAverageSmoother(window=15), fps)
        follow[fps] = ts[np.argmax((ts >= 1000) & (p > 0.5))] - 1000
    assert follow[10] == pytest.approx(3 * follow[30], abs=40), "15 frames are 1.5 s at 10 fps, 0.5 s at 30"


def test_moving_average_in_seconds_keeps_the_frames_of_the_window_on_a_variable_frame_rate():
    sm = MovingAverageSmoother(window_s=0.1)
    ts = [0, 14, 55, 60, 170, 180]
    seq = np.random.default_rng(4).dirichlet(np.ones(7), len(ts))
    outs = [sm.update(_timed(seq[i][None], [1], t)).probs[0] for i, t in enumerate(ts)]
    assert np.allclose(outs[3], seq[:4].mean(0), atol=1e-6), "60 ms: all four frames are within 100 ms"
    assert np.allclose(outs[4], seq[4], atol=1e-6), "170 ms: only itself (frames at <= 70 ms fell out)"
    assert np.allclose(outs[5], seq[4:6].mean(0), atol=1e-6)


def test_ema_time_constant():
    """After tau_s, a step has reached 1 - 1/e of the way, whatever the frame spacing."""
    for dts in ([300.0], [100.0, 100.0, 100.0], [50.0, 250.0]):
        sm = EmaSmoother(tau_s=0.3)
        sm.update(_timed(np.eye(7)[[3]], [1], 0))
        t = 0.0
        for dt in dts:
            t += dt
            out = sm.update(_timed(np.eye(7)[[4]], [1], t)).probs[0]
        assert out[4] == pytest.approx(1 - np.exp(-1), abs=1e-5), dts


def test_frames_without_timestamps_are_taken_30_per_second():
    a, b = EmaSmoother(tau_s=0.1), EmaSmoother(tau_s=0.1)
    for i, k in enumerate([3, 4, 4]):
        no_time = a.update(_frame(np.eye(7)[[k]], [1])).probs
        timed = b.update(_timed(np.eye(7)[[k]], [1], i * 1000 / 30)).probs
    assert np.allclose(no_time, timed)


@pytest.mark.parametrize("cls, kwargs", [(MovingAverageSmoother, {"window": 15, "window_s": 0.5}),
                                         (EmaSmoother, {"alpha": 0.2, "tau_s": 0.3}),
                                         (HmmSmoother, {"stay_prob": 0.9, "hold_s": 1.0}),
                                         (MovingAverageSmoother, {"window_s": 0.0}),
                                         (EmaSmoother, {"tau_s": -1.0}),
                                         (HmmSmoother, {"hold_s": float("nan")})])
def test_time_and_frame_parameters_are_exclusive_and_checked(cls, kwargs):
    with pytest.raises(ValueError, match="not both|seconds"):
        cls(**kwargs)
