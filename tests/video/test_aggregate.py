"""Per-track analytics: valence/arousal, head pose, engagement, intervals, summary, flat rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectlens.faces import Faces, FrameInfo
from affectlens.labels import EMOTIONS
from affectlens.video.aggregate import (DEFINITIONS, NOTICE, VALENCE_AROUSAL, aggregate_intervals,
                                        attention_from_pose, face_metrics, frame_row_fields, frame_rows,
                                        MAX_STEP_FACTOR, MAX_STEP_MS, frame_durations, head_pose_from_landmarks, interval_fields,
                                        summarize, valence_arousal)

#: A frontal face (ArcFace 5-point template, pixels of a 112 x 112 crop).
FRONTAL = np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]])
HAPPY = EMOTIONS.index("happy")


def turned(nose_x: float) -> np.ndarray:
    lm = FRONTAL.copy()
    lm[2, 0] = nose_x
    return lm


def make_frames(n: int = 30, dt_ms: float = 40.0) -> list[Faces]:
    """Track 1 on every frame except 20-22 (it looks away from frame 25 on, pure happy throughout);
    track 2 from frame 3 to 14 (random probabilities); an unconfirmed face on frame 5; frames 28-29 empty."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        rows = []
        if i not in (20, 21, 22) and i < 28:
            rows.append((1, turned(71.0) if i >= 25 else FRONTAL, np.eye(7)[HAPPY]))
        if 3 <= i <= 14:
            rows.append((2, FRONTAL + 200, rng.dirichlet(np.ones(7))))
        if i == 5:
            rows.append((-1, FRONTAL + 400, rng.dirichlet(np.ones(7))))
        info = FrameInfo("synthetic.mp4", i, i * dt_ms, (720, 1280))
        if not rows:
            frames.append(Faces.empty(EMOTIONS, info).with_data(probs_raw=np.zeros((0, 7))))
            continue
        tid, lm, p = (np.array(c) for c in zip(*rows))
        raw = np.clip(p + rng.normal(0, 0.2, p.shape), 0.01, None)
        raw /= raw.sum(1, keepdims=True)
        boxes = np.concatenate([lm.min(1) - 10, lm.max(1) + 10], 1)
        frames.append(Faces(boxes, np.full(len(rows), 0.9), lm, p, EMOTIONS, tid, {"probs_raw": raw}, info))
    return frames


def faces_of(frames, tid):
    """(frame position, timestamp, probs row, engagement) of every appearance of a track."""
    out = []
    for pos, f in enumerate(frames):
        m = face_metrics(f)
        for j in np.flatnonzero(f.track_id == tid):
            out.append((pos, f.info.timestamp_ms, f.probs[j], m["engagement"][j]))
    return out


# ----- per-face metrics ----------------------------------------------------------------------
def test_valence_arousal_of_pure_labels_and_mixtures():
    va = valence_arousal(np.eye(7), EMOTIONS)
    for i, name in enumerate(EMOTIONS):
        assert va[i] == pytest.approx(VALENCE_AROUSAL[name])
    assert valence_arousal([[0.5, 0, 0, 0.5, 0, 0, 0]], EMOTIONS)[0] == pytest.approx([0.15, 0.55])


def test_valence_arousal_skips_unknown_labels_and_renormalises():
    va = valence_arousal([[0.5, 0.5], [0.0, 1.0]], ("happy", "boredom"))
    assert va[0] == pytest.approx([0.81, 0.51])
    assert np.isnan(va[1]).all()
    assert valence_arousal([[1.0]], ("contempt",))[0] == pytest.approx([-0.55, 0.25])


def test_valence_arousal_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"expected shape \(n, 7\)"):
        valence_arousal(np.ones((2, 6)), EMOTIONS)


def test_head_pose_frontal_turned_and_tilted():
    up = FRONTAL.copy()
    up[2, 1] = FRONTAL[0, 1]                         # nose tip on the eye line: chin up
    pose = head_pose_from_landmarks(np.stack([FRONTAL, turned(71.0), turned(41.0), up]))
    assert np.abs(pose[0]).max() < 0.01
    assert pose[1, 0] > 0.8 and pose[2, 0] < -0.8    # nose near the image-right / image-left eye
    assert pose[3, 1] == pytest.approx(1.0, abs=0.01)
    att = attention_from_pose(pose[:, 0], pose[:, 1])
    assert att[0] == pytest.approx(1.0)
    assert att[1] < 0.3 and att[2] < 0.3 and att[3] == 0.0


def test_head_pose_is_roll_invariant_and_nan_when_degenerate():
    a = np.deg2rad(30)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    rolled = (turned(60.0) - 56) @ rot.T + 56
    assert head_pose_from_landmarks(rolled[None]) == pytest.approx(head_pose_from_landmarks(turned(60.0)[None]))
    flat = np.zeros((1, 5, 2))
    assert np.isnan(head_pose_from_landmarks(flat)).all()
    assert attention_from_pose(np.nan, 0.0) == 0.0


@pytest.mark.parametrize("kwargs", [{"tolerance": 0.8, "limit": 0.8}, {"tolerance": -0.1}])
def test_attention_rejects_bad_limits(kwargs):
    with pytest.raises(ValueError, match="tolerance"):
        attention_from_pose(0.0, 0.0, **kwargs)


def test_engagement_of_present_faces():
    probs = np.zeros((2, 7))
    probs[0, EMOTIONS.index("neutral")] = 1.0
    probs[1, HAPPY] = 1.0
    m = face_metrics(Faces(np.zeros((2, 4)), np.ones(2), np.stack([FRONTAL, FRONTAL]), probs))
    assert m["engagement"] == pytest.approx([0.5, 1.0])


# ----- intervals -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frames():
    return make_frames()


@pytest.fixture(scope="module")
def rows(frames):
    return aggregate_intervals(frames, interval_s=0.5)


def test_interval_columns_and_alignment(rows):
    assert all(list(r) == interval_fields(EMOTIONS) for r in rows)
    assert {(r["track_id"], r["interval"]) for r in rows} == {(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)}
    for r in rows:  # the last interval ends with the clip: last frame 1160 ms + one 40 ms step
        assert r["start_ms"] == 500 * r["interval"] and r["end_ms"] == min(500 * (r["interval"] + 1), 1200)
    assert max(r["end_ms"] for r in rows) == 1200
    assert [r["frames_analysed"] for r in rows if r["track_id"] == 1] == [13, 12, 5]   # 0-480, 520-960, 1000-1160


def test_interval_frame_sums_equal_appearances(frames, rows):
    for tid in (1, 2):
        assert sum(r["frames_with_face"] for r in rows if r["track_id"] == tid) == len(faces_of(frames, tid))
    assert -1 not in {r["track_id"] for r in rows}


def test_shares_sum_to_one_and_means_match_numpy(frames, rows):
    for r in rows:
        shares = [r[f"share_{k}"] for k in EMOTIONS]
        assert sum(shares) == pytest.approx(1.0, abs=1e-5)
        got = [(ts, p) for _, ts, p, _ in faces_of(frames, r["track_id"]) if r["start_ms"] <= ts < r["end_ms"]]
        want = np.mean([p for _, p in got], 0)
        assert [r[f"mean_{k}"] for k in EMOTIONS] == pytest.approx(want, abs=1e-6)
        assert r["dominant"] == EMOTIONS[int(want.argmax())]
        assert r["face_present_ratio"] == pytest.approx(len(got) / r["frames_analysed"], abs=1e-6)


def test_pure_happy_track_valence_and_engagement_with_absence(rows):
    t1 = [r for r in rows if r["track_id"] == 1]
    assert all(r["valence"] == pytest.approx(0.81) and r["arousal"] == pytest.approx(0.51) for r in t1)
    assert t1[0]["dominant"] == "happy" and t1[0]["share_happy"] == 1.0
    assert t1[0]["engagement"] == pytest.approx(1.0)               # frontal, happy, always present
    # interval 1: frames 13-24, lifespan 0-27, absent on 20-22 → 9 of 12 frames engaged
    assert t1[1]["frames_in_lifespan"] == 12 and t1[1]["engagement"] == pytest.approx(9 / 12, abs=1e-6)
    # interval 2: frames 25-29, lifespan ends at 27, turned away → low attention
    assert t1[2]["frames_in_lifespan"] == 3 and t1[2]["attention"] < 0.3


def test_interval_with_track_absent_is_kept_with_zeros():
    frames = make_frames()
    frames = [f if not 13 <= i <= 24 else f[f.track_id != 1] for i, f in enumerate(frames)]
    row = next(r for r in aggregate_intervals(frames, 0.5) if r["track_id"] == 1 and r["interval"] == 1)
    assert row["frames_with_face"] == 0 and row["engagement"] == 0.0 and row["dominant"] is None
    assert row["mean_happy"] is None and row["share_happy"] == 0.0


@pytest.mark.parametrize("interval_s", [0, -1.0, float("nan"), "5"])
def test_aggregate_rejects_bad_interval(frames, interval_s):
    with pytest.raises(ValueError, match="interval_s"):
        aggregate_intervals(frames, interval_s)


def test_aggregate_rejects_missing_timestamps_and_time_travel(frames):
    with pytest.raises(ValueError, match="timestamp_ms"):
        aggregate_intervals([frames[0].replace(info=FrameInfo())], 1.0)
    with pytest.raises(ValueError, match="time order"):
        aggregate_intervals([frames[2], frames[1]], 1.0)


def test_aggregate_rejects_unclassified_faces(frames):
    f = frames[0]
    with pytest.raises(ValueError, match="classified"):
        aggregate_intervals([Faces(f.xyxy, f.det_score, f.landmarks, None, f.labels, f.track_id, info=f.info)], 1.0)


# ----- summary and rows ----------------------------------------------------------------------
def test_summary_consistent_with_intervals(frames, rows):
    s = summarize(frames, rows)
    json.dumps(s, allow_nan=False)
    assert s["notice"] == NOTICE and "appearance" in s["notice"] and "consent" in s["notice"]
    assert s["definitions"] == DEFINITIONS and s["interval_s"] == 0.5
    assert s["frames_analysed"] == 30 and s["duration_ms"] == 1200 and s["track_count"] == 2
    assert s["unconfirmed_faces"] == 1 and s["faces_total"] == sum(len(f) for f in frames)
    assert s["faces_per_frame_mean"] == pytest.approx(sum(len(f) for f in frames) / 30, abs=1e-4)
    by = {t["track_id"]: t for t in s["tracks"]}
    assert sorted(by) == [1, 2]
    for tid, t in by.items():
        mine = [r for r in rows if r["track_id"] == tid]
        assert t["frames_with_face"] == sum(r["frames_with_face"] for r in mine) == len(faces_of(frames, tid))
        assert t["lifespan_frames"] == sum(r["frames_in_lifespan"] for r in mine)
        weighted = sum(r["engagement"] * r["frames_in_lifespan"] for r in mine) / t["lifespan_frames"]
        assert t["engagement"] == pytest.approx(weighted, abs=1e-5)
        assert sum(t["shares"].values()) == pytest.approx(1.0, abs=1e-5)
        want = np.mean([p for _, _, p, _ in faces_of(frames, tid)], 0)
        assert list(t["mean_probs"].values()) == pytest.approx(want, abs=1e-6)
        assert t["dominant"] == EMOTIONS[int(want.argmax())]
        assert t["intervals"] == len(mine)
    assert by[1]["first_ms"] == 0 and by[1]["last_ms"] == 27 * 40 and by[1]["presence_ratio"] == pytest.approx(25 / 28)
    assert by[2]["first_ms"] == 120 and by[2]["last_ms"] == 560 and by[2]["presence_ratio"] == 1.0
    assert by[1]["valence"] == pytest.approx(0.81) and by[1]["switches_smoothed"] == 0
    assert by[2]["switches_per_min_raw"] == pytest.approx(by[2]["switches_raw"] / (440 / 60000), abs=1e-3)


def test_summary_without_faces():
    empty = [Faces.empty(EMOTIONS, FrameInfo(None, i, 40.0 * i)) for i in range(5)]
    s = summarize(empty, aggregate_intervals(empty, 1.0))
    assert s["tracks"] == [] and s["track_count"] == 0 and s["faces_per_frame_mean"] == 0
    assert s["frames_analysed"] == 5 and summarize([])["frames_analysed"] == 0


def test_frame_rows_one_per_face(frames):
    rows = frame_rows(frames)
    assert len(rows) == sum(len(f) for f in frames)
    assert all(list(r) == frame_row_fields(EMOTIONS) for r in rows)
    assert {r["track_id"] for r in rows} == {-1, 1, 2}
    r = next(r for r in rows if r["track_id"] == 1)
    assert r["emotion"] == "happy" and r["happy"] == 1.0 and r["valence"] == pytest.approx(0.81)
    assert r["attention"] == pytest.approx(1.0) and r["engagement"] == pytest.approx(1.0)
    assert sum(r[f"raw_{k}"] for k in EMOTIONS) == pytest.approx(1.0, abs=1e-5)
    json.dumps(rows, allow_nan=False)


def test_averages_weigh_each_frame_by_the_time_it_stands_for():
    """A burst of 10 happy frames in 100 ms, then 10 sad frames 100 ms apart: by time, sad dominates."""
    sad = EMOTIONS.index("sad")
    ts = list(np.arange(10) * 10.0) + list(100 + np.arange(10) * 100.0)
    frames = []
    for i, t in enumerate(ts):
        p = np.eye(7)[[HAPPY if i < 10 else sad]]
        frames.append(Faces(np.array([[20, 30, 90, 110]]), np.ones(1), FRONTAL[None], p, EMOTIONS, np.array([1]),
                            info=FrameInfo("vfr.mp4", i, t, (200, 200))))
    dur = frame_durations(ts)
    assert np.allclose(dur[:10], 10) and np.allclose(dur[10:19], 100)
    assert dur[19] == 10, "the last frame takes the median step"
    summary = summarize(frames)
    track = summary["tracks"][0]
    assert track["dominant"] == "sad"
    assert track["shares"]["sad"] == pytest.approx(910 / 1010) and track["mean_probs"]["happy"] == pytest.approx(
        100 / 1010)
    row = aggregate_intervals(frames, interval_s=10.0)[0]
    assert row["frames_with_face"] == 20 and row["share_happy"] == pytest.approx(100 / 1010)
    # a frame that stands for a long gap (a stalled stream) is capped
    assert frame_durations([0, 40, 80, 120, 10_000])[3] == pytest.approx(max(MAX_STEP_FACTOR * 40, MAX_STEP_MS))
    assert frame_durations([0, 2000, 4000, 60_000])[2] == pytest.approx(MAX_STEP_FACTOR * 2000)


def test_presence_is_the_share_of_time_with_the_face():
    """The face is in the first 5 frames (dense, 10 ms apart) and absent from 5 sparse ones: present 50 of 450 ms."""
    ts = [0, 10, 20, 30, 40, 50, 150, 250, 350, 450]
    frames = []
    for i, t in enumerate(ts):
        info = FrameInfo("vfr.mp4", i, float(t), (200, 200))
        if i < 5 or i == 9:
            frames.append(Faces(np.array([[20, 30, 90, 110]]), np.ones(1), FRONTAL[None], np.eye(7)[[HAPPY]], EMOTIONS,
                                np.array([1]), info=info))
        else:
            frames.append(Faces.empty(EMOTIONS, info))
    track = summarize(frames)["tracks"][0]
    dur = frame_durations(ts)
    assert track["presence_ratio"] == pytest.approx((dur[:5].sum() + dur[9]) / dur.sum(), abs=1e-6)
    assert track["presence_ratio"] < 0.3 and track["lifespan_frames"] == 10 and track["frames_with_face"] == 6


def test_engagement_leaves_out_unreliable_faces_and_keeps_missing_ones_as_zero():
    """Track 1 is frontal and happy (engagement 1 when present); frames 0-9 of it are marked
    unreliable: they leave the average instead of counting their untrusted expressiveness."""
    frames = [f.with_data(reliable=np.array([not (tid == 1 and f.info.frame_index < 10) for tid in f.track_id]))
              if len(f) else f for f in make_frames()]
    rows = aggregate_intervals(frames, interval_s=0.4)  # 10 frames of 40 ms per interval
    first = [r for r in rows if r["track_id"] == 1 and r["interval"] == 0][0]
    assert first["engagement"] is None and first["dominant"] is None  # every frame there unreliable
    second = [r for r in rows if r["track_id"] == 1 and r["interval"] == 2][0]  # frames 20-29 of the lifespan 0-27
    assert second["frames_in_lifespan"] == 8 and second["engagement"] < 1.0
    whole = {t["track_id"]: t for t in summarize(frames, rows)["tracks"]}[1]
    reliable_all = summarize(make_frames())["tracks"][0]["engagement"]
    # lifespan frames 0-27: 22 frontal (1), 3 missing (0), 3 turned away (0); with frames 0-9
    # unreliable, 10 frontal of the 18 that are left
    assert reliable_all == pytest.approx(22 / 28, abs=1e-5)
    assert whole["engagement"] == pytest.approx(12 / 18, abs=1e-5)


def test_a_face_unreliable_because_it_is_turned_away_counts_zero_not_left_out():
    """Frames 25-27 of track 1 are turned away; marked unreliable for pose they still count 0
    (looking away is what engagement measures), so leaving them out cannot raise the score."""
    def mark(f):
        if not len(f):
            return f
        turned = np.array([tid == 1 and f.info.frame_index >= 25 for tid in f.track_id])
        return f.with_data(reliable=~turned, quality_reason=np.where(turned, "pose", "").astype(object))
    frames = [mark(f) for f in make_frames()]
    whole = summarize(frames)["tracks"][0]
    assert whole["engagement"] == pytest.approx(22 / 28, abs=1e-5)  # as if all were reliable
