"""Per-track analytics over a video's analysed frames: intervals, a session summary, flat rows.

Input is what :class:`~affectlens.video.analyzer.VideoAnalyzer` yields: one
:class:`~affectlens.faces.Faces` per analysed frame (empty when the frame has no face), in time
order, with ``info.timestamp_ms`` set, ``track_id`` (``>= 1`` confirmed, ``-1`` not yet
confirmed), smoothed ``probs`` and raw ``data["probs_raw"]`` (optional, defaults to ``probs``).
Only confirmed tracks enter intervals and summaries; :func:`frame_rows` lists every face.
Faces below the quality threshold (``data["reliable"]`` False, :mod:`affectlens.quality`) count
as present but are left out of every emotion statistic (means, shares, valence, arousal).

**Duration weighting.** Every average over time weighs each analysed frame by the time it
stands for, so denser stretches (a variable frame rate, a burst of frames) do not count more:
``duration[i] = timestamp[i + 1] - timestamp[i]``, the last frame taking the median step, each
capped at :data:`MAX_STEP_FACTOR` times the median step or :data:`MAX_STEP_MS`, whichever is
longer (a stalled stream or a long cut does not let one frame dominate). With evenly spaced frames this is the plain mean. Frame *counts*
(``frames_with_face`` ...) stay counts.

Definitions (the same words appear in the HTML report, see :data:`DEFINITIONS`):

**Valence and arousal.** Each emotion has fixed coordinates in [-1, 1] (:data:`VALENCE_AROUSAL`,
the pleasure and arousal axes of Russell & Mehrabian's 1977 PAD ratings). A face's valence and
arousal are the probability-weighted means of its labels' coordinates,
``valence = sum(p[label] * VALENCE_AROUSAL[label][0])``, computed from the smoothed
probabilities. Labels without coordinates are skipped and the remaining probabilities
renormalised (NaN when none is left). Limits: the coordinates are average ratings of emotion
*words* by US students, not measurements of faces; a mixture of labels lands between them
(``0.5 happy + 0.5 sad`` gives valence 0.09, close to a neutral face's 0);
the values are only as good as the classifier's probabilities.

**Head pose.** :func:`head_pose_from_landmarks` returns normalised proxies in [-1, 1], *not*
degrees. In a frame rotated so that the eyes lie on a horizontal line:
``yaw = (nose_x - eye_mid_x) / (0.5 * eye_distance)``, so 0 is frontal and +/-1 puts the nose
tip over an eye (positive: nose towards the image-right eye); ``pitch`` compares how far the nose
sits between the eye line (0) and the mouth line (1), ``r``, with a frontal face's
``FRONTAL_NOSE_RATIO = 0.495``: ``pitch = (0.495 - r) / 0.495`` when ``r < 0.495`` (chin up,
positive) and ``(0.495 - r) / 0.505`` otherwise (chin down, negative), clipped to [-1, 1].
With average facial proportions, |yaw| 0.2 is roughly 10 degrees and 0.8 roughly 35 degrees;
faces with other proportions, strong expressions (an open mouth moves the mouth line) or
landmark noise shift the proxies by about 0.1-0.2.

**Attention** (in [0, 1], 1 = facing the camera): ``attention = f(yaw) * f(pitch)`` with
``f(x) = clip((0.8 - |x|) / (0.8 - 0.2), 0, 1)``: 1 while both proxies stay within +/-0.2
(:data:`POSE_TOLERANCE`), falling linearly to 0 at +/-0.8 (:data:`POSE_LIMIT`) and beyond.
A face whose pose cannot be computed (coincident eyes, mouth not below the eyes) gets 0.

**Engagement** (per track and frame, in [0, 1]):
``engagement = presence * attention * expressiveness`` with ``presence`` 1 when the track's face
is in the frame and 0 when it is not, and ``expressiveness = 0.5 + 0.5 * (1 - p[neutral])``
from the smoothed probabilities (1 when the label set has no ``neutral``). A face looking at the
camera scores 0.5 when fully neutral and up to 1 when clearly expressive; a turned-away or
missing face scores 0. Averages over time (per interval and per track) run over the frames of
the track's *lifespan*, from its first to its last appearance: frames in between where its face
is missing count as 0, frames before it first appears or after it was last seen do not count,
and neither do frames where the face is unreliable for its size, sharpness or detection score
(below the quality threshold: its reading is not trusted); a face unreliable because it is
turned away counts 0, like a missing one. So an interval's engagement may exceed its
``face_present_ratio``, which divides by all analysed frames of the interval, not only the
track's lifespan.
It describes visible, camera-facing, expressive behaviour; it does not measure interest,
attention in the cognitive sense, or learning.

**Intervals.** Interval ``k`` covers ``[k * interval_s, (k + 1) * interval_s)`` seconds of video
time (by ``timestamp_ms``, aligned to t = 0). A track has one row per interval that holds at
least one analysed frame of its lifespan, so a row may have ``frames_with_face == 0`` (the face
left and came back); such rows carry ``None`` for means, dominant label, valence, arousal and
attention, zero shares and engagement 0. Summing ``frames_with_face`` over a track's rows gives
the number of frames its face appears in.

Example:
    >>> frames = list(VideoAnalyzer().analyze("call.mp4", fps=10))
    >>> rows = aggregate_intervals(frames, interval_s=5.0)
    >>> summary = summarize(frames, rows)
    >>> summary["tracks"][0]["dominant"], summary["tracks"][0]["engagement"]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from affectlens.faces import UNRELIABLE, Faces
from affectlens.labels import EMOTIONS

#: (valence, arousal) per emotion in [-1, 1]: pleasure and arousal of Russell & Mehrabian (1977),
#: "Evidence for a three-factor theory of emotions", J. Research in Personality 11:273-294.
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "angry": (-0.51, 0.59), "disgust": (-0.60, 0.35), "fear": (-0.64, 0.60), "happy": (0.81, 0.51),
    "neutral": (0.0, 0.0), "sad": (-0.63, -0.27), "surprise": (0.40, 0.67), "contempt": (-0.55, 0.25),
}

#: A frame stands for at most this many median frame steps of time (see "Duration weighting").
MAX_STEP_FACTOR = 5.0
#: ... or at most this many milliseconds, whichever is longer.
MAX_STEP_MS = 1000.0

#: Nose position between eye line (0) and mouth line (1) of a frontal face (ArcFace 5-point template).
FRONTAL_NOSE_RATIO = 0.495
#: |yaw| and |pitch| up to which a face counts as fully facing the camera.
POSE_TOLERANCE = 0.2
#: |yaw| or |pitch| from which attention is 0.
POSE_LIMIT = 0.8

NOTICE = ("Emotion estimates read facial appearance, not inner state: the same expression can mean different "
          "things for different people, cultures and situations, and the models make mistakes. Use only with "
          "the informed consent of the people recorded, and never as the sole basis for decisions about them.")

#: Plain-language definitions, shared by ``summary.json`` and the HTML report.
DEFINITIONS: dict[str, str] = {
    "engagement": ("engagement = presence x attention x expressiveness, between 0 and 1. Presence is 1 when the "
                   "face is in the frame, 0 when not. Attention is 1 when the head faces the camera and falls to 0 "
                   "as it turns away. Expressiveness = 0.5 + 0.5 x (1 - probability of 'neutral'): 0.5 for a fully "
                   "neutral face, up to 1 for a clearly expressive one. Averages over time count the frames between "
                   "a person's first and last appearance, with frames where the face is missing or turned away as "
                   "0 and frames where it is too small or blurred to be read (unreliable) left out. It describes "
                   "visible behaviour towards the camera, not interest or learning."),
    "valence_arousal": ("Each emotion has a fixed position: valence (unpleasant -1 to pleasant +1) and arousal "
                        "(calm -1 to excited +1), from Russell & Mehrabian (1977). A face's valence and arousal are "
                        "the averages of those positions weighted by the emotion probabilities. They summarise the "
                        "probabilities; they are not separate measurements."),
    "attention": ("Head pose is estimated from five points (eyes, nose tip, mouth corners): how far the nose sits "
                  "from the centre between the eyes (turning left/right) and between eyes and mouth (tilting up/"
                  "down). Attention is 1 for small deviations (up to about 10 degrees) and reaches 0 at about 35 "
                  "degrees. It is a rough proxy: it does not track the eyes' gaze."),
    "shares": ("Share of an emotion: the fraction of the time with the face in which that emotion was the most "
               "probable. The main emotion is the one with the highest average probability."),
    "intervals": ("Intervals are fixed windows of video time starting at 0 s. Averages weigh each analysed frame by "
                  "the time it stands for (until the next analysed frame), so stretches with more frames do not "
                  "count more."),
}


# ----- per-face metrics --------------------------------------------------------------------
def valence_arousal(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Probability-weighted (valence, arousal) of each face.

    Args:
        probs: ``(n, len(labels))`` probabilities.
        labels: names of the ``probs`` columns; those missing from :data:`VALENCE_AROUSAL` are
            skipped and the remaining probabilities renormalised.

    Returns:
        ``(n, 2)`` float64 valence and arousal in [-1, 1]; NaN rows where no probability mass
        falls on a known label.

    Raises:
        ValueError: ``probs`` is not ``(n, len(labels))``.

    Example:
        >>> valence_arousal(np.eye(7)[[3]], EMOTIONS)   # pure happy
        array([[0.81, 0.51]])
    """
    labels = tuple(labels)
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or p.shape[1] != len(labels):
        raise ValueError(f"probs: expected shape (n, {len(labels)}) for labels {labels}, got {p.shape}")
    known = [i for i, name in enumerate(labels) if name in VALENCE_AROUSAL]
    coords = np.array([VALENCE_AROUSAL[labels[i]] for i in known], np.float64).reshape(-1, 2)
    w = p[:, known]
    mass = w.sum(1)
    out = np.full((len(p), 2), np.nan)
    ok = mass > 0
    out[ok] = (w[ok] @ coords) / mass[ok, None]
    return out


def head_pose_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Yaw and pitch proxies from 5-point landmarks (see the module docstring for the formulas).

    Args:
        landmarks: ``(n, 5, 2)`` pixels: image-left eye, image-right eye, nose tip, image-left and
            image-right mouth corner.

    Returns:
        ``(n, 2)`` float64 ``(yaw, pitch)``, normalised to [-1, 1] (not degrees); 0 is frontal,
        yaw > 0 when the nose is shifted towards the image-right eye, pitch > 0 chin up. NaN where
        the pose is undefined (eyes coincide, or the mouth is not below the eyes).

    Raises:
        ValueError: ``landmarks`` is not ``(n, 5, 2)``.
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (5, 2):
        raise ValueError(f"landmarks: expected shape (n, 5, 2), got {lm.shape}")
    eye_mid = (lm[:, 0] + lm[:, 1]) / 2
    mouth_mid = (lm[:, 3] + lm[:, 4]) / 2
    across = lm[:, 1] - lm[:, 0]
    iod = np.linalg.norm(across, axis=1)
    ok = iod > 1e-6
    iod_safe = np.where(ok, iod, 1.0)
    u = across / iod_safe[:, None]                 # along the eye line, towards the image-right eye
    v = np.stack([-u[:, 1], u[:, 0]], 1)           # perpendicular, from the eyes towards the mouth
    nose = lm[:, 2] - eye_mid
    yaw = np.clip((nose * u).sum(1) / (0.5 * iod_safe), -1.0, 1.0)
    mouth_down = ((mouth_mid - eye_mid) * v).sum(1)
    ok &= mouth_down > 1e-6
    r = (nose * v).sum(1) / np.where(ok, mouth_down, 1.0)
    ref = FRONTAL_NOSE_RATIO
    pitch = np.clip(np.where(r < ref, (ref - r) / ref, (ref - r) / (1 - ref)), -1.0, 1.0)
    out = np.stack([yaw, pitch], 1)
    out[~ok] = np.nan
    return out


def attention_from_pose(yaw: np.ndarray, pitch: np.ndarray, tolerance: float = POSE_TOLERANCE,
                        limit: float = POSE_LIMIT) -> np.ndarray:
    """How squarely faces look at the camera, in [0, 1]: ``f(yaw) * f(pitch)`` with
    ``f(x) = clip((limit - |x|) / (limit - tolerance), 0, 1)``.

    Args:
        yaw, pitch: normalised proxies from :func:`head_pose_from_landmarks` (same shape).
        tolerance: deviation still counted as fully frontal.
        limit: deviation from which attention is 0.

    Returns:
        float64 array in [0, 1] of the broadcast shape; 0 where yaw or pitch is NaN.

    Raises:
        ValueError: not ``0 <= tolerance < limit``.
    """
    if not 0 <= tolerance < limit:
        raise ValueError(f"expected 0 <= tolerance < limit, got tolerance={tolerance}, limit={limit}")

    def f(x):
        return np.clip((limit - np.abs(np.asarray(x, np.float64))) / (limit - tolerance), 0.0, 1.0)

    out = f(yaw) * f(pitch)
    return np.where(np.isnan(out), 0.0, out)


def expressiveness(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """``0.5 + 0.5 * (1 - p[neutral])`` per face (1 when ``labels`` has no ``neutral``); ``(n,)`` float64."""
    p = np.asarray(probs, np.float64)
    labels = tuple(labels)
    if "neutral" not in labels or p.shape[-1] != len(labels):
        return np.ones(len(p))
    return 0.5 + 0.5 * (1.0 - np.clip(p[:, labels.index("neutral")], 0.0, 1.0))


def face_metrics(faces: Faces) -> dict[str, np.ndarray]:
    """Per-face ``valence``, ``arousal``, ``yaw``, ``pitch``, ``attention``, ``expressiveness`` and
    ``engagement`` (of a present face: ``attention * expressiveness``), each ``(n,)`` float64.

    Raises:
        ValueError: ``faces`` is not classified.
    """
    if len(faces) and not faces.classified:
        raise ValueError(f"expected classified faces (probs of shape ({len(faces)}, {len(faces.labels)})), "
                         f"got probs of shape {faces.probs.shape}; run the emotion classifier first")
    return _metrics(faces.landmarks, faces.probs.reshape(len(faces), len(faces.labels)), faces.labels)


def _metrics(landmarks: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> dict[str, np.ndarray]:
    va = valence_arousal(probs, labels)
    pose = head_pose_from_landmarks(landmarks)
    att = attention_from_pose(pose[:, 0], pose[:, 1])
    expr = expressiveness(probs, labels)
    return {"valence": va[:, 0], "arousal": va[:, 1], "yaw": pose[:, 0], "pitch": pose[:, 1],
            "attention": att, "expressiveness": expr, "engagement": att * expr}


# ----- all faces of a video as one table ---------------------------------------------------
@dataclass(frozen=True)
class _Table:
    labels: tuple[str, ...]
    frame_ts: np.ndarray     # (F,) ms of every analysed frame
    frame_dur: np.ndarray    # (F,) ms each analysed frame stands for (duration weights)
    pos: np.ndarray          # (N,) position of each face's frame in the sequence
    frame_index: np.ndarray  # (N,)
    track_id: np.ndarray     # (N,)
    xyxy: np.ndarray
    det_score: np.ndarray
    landmarks: np.ndarray
    probs: np.ndarray        # (N, C) smoothed
    raw: np.ndarray          # (N, C) per-frame
    m: dict[str, np.ndarray]
    reliable: np.ndarray | None = None  # (N,) False for faces below the quality threshold
    quality: np.ndarray | None = None   # (N,) affectlens.quality's score, NaN when not assessed
    read: np.ndarray | None = None      # (N,) False where the face kept its latest reading
    quality_reason: np.ndarray | None = None  # (N,) the weakest quality signal's name ("" when not assessed)

    @property
    def track_ids(self) -> list[int]:
        return [int(t) for t in np.unique(self.track_id[self.track_id >= 1])]


def _collect(frames: Sequence[Faces]) -> _Table:
    frames = list(frames)
    labels: tuple[str, ...] | None = None
    ts = np.zeros(len(frames))
    for i, f in enumerate(frames):
        if f.info.timestamp_ms is None:
            raise ValueError(f"frame {i}: expected info.timestamp_ms, got None; analyse videos with VideoAnalyzer")
        ts[i] = f.info.timestamp_ms
        if not len(f):
            continue
        if not f.classified:
            raise ValueError(f"frame {i}: expected classified faces (probs of shape ({len(f)}, {len(f.labels)})), "
                             f"got {f.probs.shape}")
        raw = f.data.get("probs_raw")
        if raw is not None and np.shape(raw) != f.probs.shape:
            raise ValueError(f"frame {i}: data['probs_raw'] expected shape {f.probs.shape}, got {np.shape(raw)}")
        if labels is None:
            labels = f.labels
        elif f.labels != labels:
            raise ValueError(f"frame {i}: labels {f.labels} differ from earlier frames' {labels}")
    back = np.flatnonzero(np.diff(ts) < 0)
    if len(back):
        j = int(back[0]) + 1
        raise ValueError(f"frames must be in time order: frame {j} at {ts[j]} ms follows {ts[j - 1]} ms")
    labels = labels or (frames[0].labels if frames else EMOTIONS)
    c = len(labels)
    full = [f for f in frames if len(f)]

    def cat(get, tail, dtype):
        return np.concatenate([np.asarray(get(f), dtype) for f in full]) if full else np.zeros((0,) + tail, dtype)

    pos = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
    fidx = np.array([i if f.info.frame_index is None else f.info.frame_index for i, f in enumerate(frames)],
                    np.int64)
    probs = cat(lambda f: f.probs, (c,), np.float64)
    landmarks = cat(lambda f: f.landmarks, (5, 2), np.float64)
    return _Table(labels, ts, frame_durations(ts), pos, fidx[pos] if len(frames) else np.zeros(0, np.int64),
                  cat(lambda f: f.track_id, (), np.int64), cat(lambda f: f.xyxy, (4,), np.float64),
                  cat(lambda f: f.det_score, (), np.float64), landmarks, probs,
                  cat(lambda f: f.data.get("probs_raw", f.probs), (c,), np.float64),
                  _metrics(landmarks, probs, labels), cat(lambda f: f.reliable, (), bool),
                  cat(lambda f: f.data.get("quality", np.full(len(f), np.nan)), (), np.float64),
                  cat(lambda f: f.data.get("read", np.ones(len(f), bool)), (), bool),
                  cat(lambda f: f.data.get("quality_reason", np.full(len(f), "", object)), (), object))


def frame_durations(timestamps_ms: Sequence[float], max_step_factor: float = MAX_STEP_FACTOR,
                    max_step_ms: float = MAX_STEP_MS) -> np.ndarray:
    """The time each analysed frame stands for: until the next frame, the last one the median step.

    Args:
        timestamps_ms: frame times in milliseconds, in order.
        max_step_factor, max_step_ms: each duration is capped at the longer of
            ``max_step_factor`` median steps and ``max_step_ms``.

    Returns:
        ``(F,)`` float64 milliseconds, all > 0 (1 ms each for a single frame or no elapsed time).

    Example:
        >>> frame_durations([0, 10, 40, 50])
        array([10., 30., 10., 10.])
    """
    ts = np.asarray(timestamps_ms, np.float64)
    if len(ts) < 2:
        return np.ones(len(ts))
    d = np.diff(ts)
    step = float(np.median(d))
    if step <= 0:
        return np.ones(len(ts))
    return np.clip(np.append(d, step), 1e-3, max(max_step_factor * step, max_step_ms))


def _wmean(a: np.ndarray, w: np.ndarray) -> float | None:
    """Weighted mean of the non-NaN entries, ``None`` when none."""
    ok = ~np.isnan(a)
    return _r(np.average(a[ok], weights=w[ok])) if ok.any() and w[ok].sum() > 0 else None


def _r(x: Any, nd: int = 6) -> float | None:
    """A rounded Python float, ``None`` for missing or NaN."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, nd)


def _mean(a: np.ndarray) -> float | None:
    a = a[~np.isnan(a)]
    return _r(a.mean()) if a.size else None


def _face_stats(t: _Table, idx: np.ndarray) -> dict[str, Any]:
    """Duration-weighted means over the given faces: probabilities, dominant, shares, valence,
    arousal, attention. Faces below the quality threshold (``reliable`` False) are left out."""
    if t.reliable is not None:
        idx = idx[t.reliable[idx]]
    c, n = len(t.labels), len(idx)
    if n == 0:
        return {"mean": [None] * c, "dominant": None, "shares": [0.0] * c,
                "valence": None, "arousal": None, "attention": None}
    w = t.frame_dur[t.pos[idx]]
    mean = np.average(t.probs[idx], axis=0, weights=w)
    shares = np.bincount(t.probs[idx].argmax(1), weights=w, minlength=c) / w.sum()
    return {"mean": [_r(v) for v in mean], "dominant": t.labels[int(mean.argmax())],
            "shares": [_r(v) for v in shares], "valence": _wmean(t.m["valence"][idx], w),
            "arousal": _wmean(t.m["arousal"][idx], w), "attention": _wmean(t.m["attention"][idx], w)}


def _engagement(t: _Table, idx: np.ndarray, life_pos: np.ndarray) -> float | None:
    """Duration-weighted mean engagement over the frames ``life_pos``. A frame without the face
    counts 0, and so does one where the face is unreliable because it is turned away (``pose``:
    not facing the camera is what engagement measures). A frame where the face is unreliable for
    another reason (too small, blurred, a doubtful detection) is left out: its expressiveness
    comes from a reading that is not trusted. ``None`` when the face was there but never reliably
    read; 0.0 when it was never there."""
    total = t.frame_dur[life_pos].sum()
    values, dur = t.m["engagement"][idx], t.frame_dur[t.pos[idx]]
    if t.reliable is not None:
        doubtful = ~t.reliable[idx]
        turned = doubtful & (t.quality_reason[idx] == "pose") if t.quality_reason is not None else False
        unread = doubtful & ~turned
        if len(idx) and unread.all():
            return None
        total -= dur[unread].sum()
        values, dur = np.where(turned, 0.0, values)[~unread], dur[~unread]
    return _r((values * dur).sum() / total) if total > 1e-9 else 0.0


# ----- public aggregations -----------------------------------------------------------------
def interval_fields(labels: Sequence[str] = EMOTIONS) -> list[str]:
    """Column order of :func:`aggregate_intervals` rows for ``labels``."""
    return ["track_id", "interval", "start_ms", "end_ms", "frames_analysed", "frames_in_lifespan",
            "frames_with_face", "face_present_ratio", *[f"mean_{k}" for k in labels], "dominant",
            *[f"share_{k}" for k in labels], "valence", "arousal", "attention", "engagement"]


def aggregate_intervals(frames: Sequence[Faces], interval_s: float = 5.0) -> list[dict[str, Any]]:
    """One row per confirmed track and interval of video time (see the module docstring).

    Columns (in :func:`interval_fields` order): ``track_id``, ``interval`` (k), ``start_ms`` and
    ``end_ms`` (``k * interval`` and ``(k + 1) * interval``, the last one cut at the end of the
    analysed video time: last timestamp plus the median frame step), ``frames_analysed`` (all analysed
    frames in the interval), ``frames_in_lifespan`` (those between the track's first and last
    appearance), ``frames_with_face``, ``face_present_ratio`` (time of the frames with the face /
    time of all analysed frames of the interval), ``mean_<label>`` (smoothed probabilities
    averaged over frames with the face), ``dominant`` (label of the largest mean),
    ``share_<label>`` (fraction of the face's time in which it is the smoothed top label; they sum
    to 1), ``valence``, ``arousal`` and ``attention`` (means over frames with the face),
    ``engagement`` (mean over ``frames_in_lifespan``, missing face = 0, unreliable faces left out). Every mean and ratio is
    weighted by frame duration (see "Duration weighting" in the module docstring).

    Args:
        frames: one :class:`Faces` per analysed frame, in time order.
        interval_s: interval length in seconds.

    Returns:
        Rows sorted by track id then interval; JSON- and CSV-ready (``None`` where undefined).

    Raises:
        ValueError: ``interval_s <= 0``, frames without timestamps, out of time order,
            unclassified or with inconsistent labels.
    """
    if not (isinstance(interval_s, (int, float)) and math.isfinite(interval_s) and interval_s > 0):
        raise ValueError(f"interval_s: expected a positive number of seconds, got {interval_s!r}")
    t = _collect(frames)
    step_ms = float(interval_s) * 1000.0
    frame_k = np.floor(t.frame_ts / step_ms).astype(np.int64)
    face_k = frame_k[t.pos]
    ks, counts = np.unique(frame_k, return_counts=True)
    per_k = dict(zip(ks.tolist(), counts.tolist()))
    clip_end_ms = _clip_end_ms(t.frame_ts)
    dur_k = {int(k): float(t.frame_dur[frame_k == k].sum()) for k in ks}
    rows = []
    for tid in t.track_ids:
        sel = np.flatnonzero(t.track_id == tid)
        first, last = int(t.pos[sel].min()), int(t.pos[sel].max())
        life_pos = np.arange(first, last + 1)
        life_k = frame_k[first:last + 1]
        for k, n_life in zip(*np.unique(life_k, return_counts=True)):
            idx = sel[face_k[sel] == k]
            s = _face_stats(t, idx)
            n_all = per_k[int(k)]
            present = t.frame_dur[np.unique(t.pos[idx])].sum() / dur_k[int(k)]
            row = {"track_id": tid, "interval": int(k), "start_ms": _r(k * step_ms, 3),
                   "end_ms": _r(min((k + 1) * step_ms, clip_end_ms), 3), "frames_analysed": n_all, "frames_in_lifespan": int(n_life),
                   "frames_with_face": len(idx), "face_present_ratio": _r(min(1.0, present))}
            row.update({f"mean_{k_}": v for k_, v in zip(t.labels, s["mean"])})
            row["dominant"] = s["dominant"]
            row.update({f"share_{k_}": v for k_, v in zip(t.labels, s["shares"])})
            row.update({"valence": s["valence"], "arousal": s["arousal"], "attention": s["attention"],
                        "engagement": _engagement(t, idx, life_pos[life_k == k])})
            rows.append(row)
    return rows


def _clip_end_ms(frame_ts: np.ndarray) -> float:
    """End of the analysed video time: the last frame's timestamp plus the median frame step."""
    if not len(frame_ts):
        return 0.0
    step = float(np.median(np.diff(frame_ts))) if len(frame_ts) > 1 else 0.0
    return float(frame_ts[-1]) + step


def _switches(top: np.ndarray) -> int:
    return int(np.count_nonzero(top[1:] != top[:-1])) if len(top) > 1 else 0


def summarize(frames: Sequence[Faces], intervals: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """JSON-ready session summary.

    Keys: ``notice``, ``labels``, ``definitions`` (plain-language, see :data:`DEFINITIONS`),
    video-level ``frames_analysed``, ``first_ms``, ``last_ms``, ``duration_ms`` (last - first +
    the median frame step), ``faces_total``, ``faces_per_frame_mean``, ``frames_with_faces``,
    ``unconfirmed_faces`` (track id -1, left out of per-track figures), ``track_count``, and
    ``tracks``: a list with, per confirmed track, ``track_id``, ``first_ms``, ``last_ms``,
    ``frames_with_face``, ``lifespan_frames`` (analysed frames from first to last appearance),
    ``presence_ratio`` (time with the face / lifespan time), ``mean_probs`` and ``shares``
    (label → value), ``dominant``, ``valence``, ``arousal``, ``attention`` (means over frames
    with the face), ``engagement`` (mean over the lifespan, missing face = 0),
    ``switches_raw`` / ``switches_smoothed`` (changes of top label between consecutive
    appearances) and ``switches_per_min_raw`` / ``switches_per_min_smoothed`` (per minute of
    ``last_ms - first_ms``; ``None`` for a single instant). With ``intervals`` (rows of
    :func:`aggregate_intervals`), also ``interval_s`` and, per track, ``intervals`` (row count)
    and ``peak_engagement`` (``start_ms``, ``end_ms``, ``engagement`` of its best interval).

    Raises:
        ValueError: as :func:`aggregate_intervals`.
    """
    t = _collect(frames)
    n_frames = len(t.frame_ts)
    step = float(np.median(np.diff(t.frame_ts))) if n_frames > 1 else 0.0
    tids = t.track_ids
    out: dict[str, Any] = {
        "notice": NOTICE, "labels": list(t.labels), "definitions": dict(DEFINITIONS),
        "frames_analysed": n_frames,
        "first_ms": _r(t.frame_ts[0], 3) if n_frames else None,
        "last_ms": _r(t.frame_ts[-1], 3) if n_frames else None,
        "duration_ms": _r(t.frame_ts[-1] - t.frame_ts[0] + step, 3) if n_frames else 0.0,
        "faces_total": int(len(t.pos)),
        "faces_per_frame_mean": _r(len(t.pos) / n_frames if n_frames else 0.0, 4),
        "frames_with_faces": int(len(np.unique(t.pos))),
        "unconfirmed_faces": int(np.count_nonzero(t.track_id < 1)),
        "track_count": len(tids)}
    by_track: dict[int, list[dict]] = {}
    for row in intervals or []:
        by_track.setdefault(int(row["track_id"]), []).append(row)
    tracks = []
    for tid in tids:
        sel = np.flatnonzero(t.track_id == tid)
        first, last = int(t.pos[sel].min()), int(t.pos[sel].max())
        life = last - first + 1
        s = _face_stats(t, sel)
        span_min = (t.frame_ts[last] - t.frame_ts[first]) / 60000.0
        sw_raw, sw_smooth = _switches(t.raw[sel].argmax(1)), _switches(t.probs[sel].argmax(1))
        entry = {"track_id": tid, "first_ms": _r(t.frame_ts[first], 3), "last_ms": _r(t.frame_ts[last], 3),
                 "frames_with_face": len(sel), "lifespan_frames": life,
                 "presence_ratio": _r(min(1.0, t.frame_dur[np.unique(t.pos[sel])].sum()
                                          / t.frame_dur[first:last + 1].sum())),
                 "mean_probs": dict(zip(t.labels, s["mean"])), "dominant": s["dominant"],
                 "shares": dict(zip(t.labels, s["shares"])), "valence": s["valence"], "arousal": s["arousal"],
                 "attention": s["attention"], "engagement": _engagement(t, sel, np.arange(first, last + 1)),
                 "switches_raw": sw_raw, "switches_smoothed": sw_smooth,
                 "switches_per_min_raw": _r(sw_raw / span_min, 3) if span_min > 0 else None,
                 "switches_per_min_smoothed": _r(sw_smooth / span_min, 3) if span_min > 0 else None}
        if intervals is not None:
            rows = by_track.get(tid, [])
            entry["intervals"] = len(rows)
            best = max(rows, key=lambda r: r["engagement"] or 0.0, default=None)
            entry["peak_engagement"] = (None if best is None else
                                        {k: best[k] for k in ("start_ms", "end_ms", "engagement")})
        tracks.append(entry)
    out["tracks"] = tracks
    if intervals:
        later = [r for r in intervals if r["interval"] > 0]  # the last interval may be cut at the clip end
        out["interval_s"] = _r(later[0]["start_ms"] / later[0]["interval"] / 1000.0 if later else
                               max(r["end_ms"] - r["start_ms"] for r in intervals) / 1000.0, 6)
    return out


def frame_row_fields(labels: Sequence[str] = EMOTIONS) -> list[str]:
    """Column order of :func:`frame_rows` for ``labels``."""
    return ["frame_index", "timestamp_ms", "track_id", "x1", "y1", "x2", "y2", "det_score",
            *[f"lm{i}_{a}" for i in range(5) for a in "xy"], *[f"raw_{k}" for k in labels], *labels,
            "emotion", "emotion_raw", "valence", "arousal", "yaw", "pitch", "attention", "engagement",
            "quality", "quality_reason", "reliable", "read"]


def frame_rows(frames: Sequence[Faces]) -> list[dict[str, Any]]:
    """One flat row per face per frame (every face, unconfirmed tracks included), for CSV/JSONL.

    Columns in :func:`frame_row_fields` order: pixels rounded to 0.01, probabilities to 1e-6;
    ``raw_<label>`` per-frame and ``<label>`` smoothed probabilities, ``emotion`` the smoothed top
    label (``"unreliable"`` for a face below the quality threshold, as everywhere else) and
    ``emotion_raw`` the raw top label, then the per-face metrics of the module docstring
    (``engagement`` of a present face, i.e. ``attention * expressiveness``), the face's
    ``quality`` (:mod:`affectlens.quality`; empty when not assessed) and ``quality_reason`` (its
    weakest signal: size, sharpness, pose or detection), ``reliable`` (1 or 0) and
    ``read`` (1 when the emotion model read the face on this frame, 0 when it kept its latest
    reading: ``VideoOptions.classify_per_s``).

    Raises:
        ValueError: as :func:`aggregate_intervals`.
    """
    t = _collect(frames)
    fields = frame_row_fields(t.labels)
    top, top_raw = t.probs.argmax(1), t.raw.argmax(1)
    rows = []
    for i in range(len(t.pos)):
        vals = [int(t.frame_index[i]), _r(t.frame_ts[t.pos[i]], 3), int(t.track_id[i]),
                *[_r(v, 2) for v in t.xyxy[i]], _r(t.det_score[i]),
                *[_r(v, 2) for v in t.landmarks[i].reshape(-1)], *[_r(v) for v in t.raw[i]],
                *[_r(v) for v in t.probs[i]], t.labels[top[i]] if t.reliable[i] else UNRELIABLE,
                t.labels[top_raw[i]],
                *[_r(t.m[k][i], 4) for k in ("valence", "arousal", "yaw", "pitch", "attention", "engagement")],
                None if np.isnan(t.quality[i]) else _r(t.quality[i], 4), t.quality_reason[i] or None,
                int(t.reliable[i]), int(t.read[i])]
        rows.append(dict(zip(fields, vals)))
    return rows
