"""Synthetic face-track sequences from real labelled faces, scored by the real classifier.

We have no video with per-frame emotion labels, so training and evaluation sequences are built
from FER-2013 / FER+ faces (48x48 crops, the classifier's own input domain):

1. **Segments.** A sequence is a series of expression segments (each 0.8-4 s, one labelled face
   per segment; half of the segments after the first are ``neutral`` when the label set has it,
   so "neutral -> expression -> neutral" episodes are common).
2. **Onset / offset.** Between two segments the image cross-fades (smoothstep) from one face to
   the next over 0.15-1.0 s; the true label switches when the new face's weight passes 0.5.
   Different segments show different people (FER has no identities), so a change of expression
   is also a change of face: a known limit of the recipe.
3. **Temporally correlated perturbations** (Ornstein-Uhlenbeck random walks, so neighbouring
   frames look alike): shift (+/-3 px), scale (+/-8%), roll (+/-6 deg), simulated yaw/pitch
   (a horizontal/vertical squeeze of up to 9% and shift of up to 5%), lighting gain and gamma drift, blur,
   sensor noise, partial occlusion events (a bar over 15-35% of the face from one side, e.g. a
   hand), JPEG compression (quality 25-98) and face size (28-200 px box width; small faces are
   downsampled before the crop is scaled back to the model's input).
4. **Frame timing.** A base rate of 5-30 frames/s with +/-20% jitter, and dropped detections
   (bursts of missing frames, as when the detector misses a face): a dropped frame is absent
   from the sequence, so the next frame's ``dt_ms`` is longer.
5. **Classifier outputs.** Every kept frame goes through the real emotion model
   (:meth:`EmotionClassifier.classify_crops`), so the noise the smoothers see is its own.

Per frame we keep the probabilities and the quality signals the live pipeline has:
detection score (a synthetic stand-in: lowered by occlusion, blur and small size), face box
width in pixels, head yaw and pitch proxies, and the time since the track's previous frame.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Sequence

import cv2
import numpy as np

logger = logging.getLogger(__name__)

#: Quality features after the probabilities, in this order, in every temporal-model input.
FEATURES: tuple[str, ...] = ("det_score", "face_px", "yaw", "pitch", "dt_ms")


@dataclass(frozen=True)
class SynthRecipe:
    """Parameters of :func:`make_sequences` (stored in the temporal model's spec)."""

    frames: int = 64
    fps_range: tuple[float, float] = (5.0, 30.0)
    fps_jitter: float = 0.2
    segment_s: tuple[float, float] = (0.8, 4.0)
    onset_s: tuple[float, float] = (0.15, 1.0)
    neutral_share: float = 0.5
    drop_prob: float = 0.04
    drop_burst: tuple[int, int] = (1, 6)
    occlusion_rate_per_s: float = 0.05
    occlusion_s: tuple[float, float] = (0.3, 2.0)
    face_px: tuple[float, float] = (28.0, 200.0)

    def to_dict(self) -> dict:
        return asdict(self)


def _ou(rng: np.random.Generator, t_s: np.ndarray, tau_s: float, sigma: float) -> np.ndarray:
    """An Ornstein-Uhlenbeck path sampled at ``t_s`` (stationary std ``sigma``, time constant ``tau_s``)."""
    x = np.empty(len(t_s))
    x[0] = rng.normal(0, sigma)
    for i in range(1, len(t_s)):
        a = np.exp(-(t_s[i] - t_s[i - 1]) / tau_s)
        x[i] = a * x[i - 1] + np.sqrt(1 - a * a) * sigma * rng.normal()
    return x


def _timeline(rng, recipe: SynthRecipe, n_classes: int, neutral: int | None, pool_by_class, n_ticks: int,
              t_s: np.ndarray):
    """Per tick: face A index, face B index, blend weight of B, true label."""
    face_a = np.zeros(n_ticks, np.int64)
    face_b = np.zeros(n_ticks, np.int64)
    w = np.zeros(n_ticks)
    y = np.zeros(n_ticks, np.int64)
    classes = [c for c in range(n_classes) if len(pool_by_class[c])]

    def pick(prev):
        if prev is not None and neutral is not None and prev != neutral and rng.random() < recipe.neutral_share:
            c = neutral
        else:
            c = int(rng.choice([k for k in classes if k != prev] or classes))
        return c, int(rng.choice(pool_by_class[c]))

    cls, face = pick(None)
    prev_cls, prev_face, fade_start, fade_len = cls, face, -1.0, 0.0
    seg_end = rng.uniform(*recipe.segment_s)
    for i, t in enumerate(t_s):
        while t >= seg_end:  # a new segment starts with an onset from the previous face
            prev_cls, prev_face = cls, face
            cls, face = pick(cls)
            fade_start, fade_len = seg_end, rng.uniform(*recipe.onset_s)
            seg_end += max(rng.uniform(*recipe.segment_s), fade_len + 0.3)
        a = 1.0 if fade_len <= 0 else np.clip((t - fade_start) / fade_len, 0.0, 1.0)
        a = a * a * (3 - 2 * a)
        face_a[i], face_b[i], w[i] = prev_face, face, a
        y[i] = cls if a >= 0.5 else prev_cls
    return face_a, face_b, w, y


def _render(rng, images: np.ndarray, face_a, face_b, w, t_s: np.ndarray, recipe: SynthRecipe, out_hw):
    """Perturbed crops ``(n, H, W)`` uint8 and the quality features ``(n, 4)`` (without dt)."""
    n = len(t_s)
    h, wd = images.shape[1:3]
    dx, dy = _ou(rng, t_s, 1.5, 1.5), _ou(rng, t_s, 1.5, 1.5)
    scale = 1 + _ou(rng, t_s, 2.0, 0.04)
    roll = _ou(rng, t_s, 2.0, 3.0)
    yaw = np.clip(_ou(rng, t_s, 2.5, 0.2), -0.6, 0.6)
    pitch = np.clip(_ou(rng, t_s, 2.5, 0.12), -0.5, 0.5)
    gain = np.exp(_ou(rng, t_s, 3.0, 0.15))
    gamma = np.exp(_ou(rng, t_s, 3.0, 0.1))
    blur = np.clip(_ou(rng, t_s, 1.0, 0.5), 0, None) * (rng.random() < 0.4)
    noise = abs(rng.normal(0, 2.0))
    quality = np.clip(_ou(rng, t_s, 3.0, 15.0) + rng.uniform(40, 95), 25, 98)
    log_px = rng.uniform(*np.log(recipe.face_px))
    face_px = np.clip(np.exp(log_px + _ou(rng, t_s, 3.0, 0.15)), recipe.face_px[0], recipe.face_px[1] * 1.2)
    occl = np.zeros(n)
    occl_side = np.zeros(n, np.int64)
    t, end = 0.0, float(t_s[-1])
    while True:
        t += rng.exponential(1 / recipe.occlusion_rate_per_s)
        if t >= end:
            break
        dur = rng.uniform(*recipe.occlusion_s)
        sel = (t_s >= t) & (t_s < t + dur)
        occl[sel] = rng.uniform(0.15, 0.35)
        occl_side[sel] = rng.integers(0, 4)
        t += dur
    crops = np.empty((n, *out_hw), np.uint8)
    for i in range(n):
        img = (1 - w[i]) * images[face_a[i]].astype(np.float32) + w[i] * images[face_b[i]].astype(np.float32)
        sx = scale[i] * (1 - 0.15 * abs(yaw[i]))
        sy = scale[i] * (1 - 0.15 * abs(pitch[i]))
        m = cv2.getRotationMatrix2D((wd / 2, h / 2), roll[i], 1.0)
        m[:, :2] *= np.array([[sx], [sy]])
        m[0, 2] += dx[i] + 0.08 * wd * yaw[i]
        m[1, 2] += dy[i] - 0.08 * h * pitch[i]
        img = cv2.warpAffine(img, m, (wd, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        img = 255.0 * np.clip(img * gain[i] / 255.0, 0, 1) ** gamma[i]
        if blur[i] > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), float(blur[i]))
        if occl[i] > 0:
            k = int(round(occl[i] * (h if occl_side[i] < 2 else wd)))
            fill = float(rng.uniform(40, 200))
            if occl_side[i] == 0:
                img[h - k:] = fill
            elif occl_side[i] == 1:
                img[:k] = fill
            elif occl_side[i] == 2:
                img[:, :k] = fill
            else:
                img[:, wd - k:] = fill
        res = float(np.clip(face_px[i] / 60.0, 0.3, 1.0))
        if res < 1.0:
            small = (max(8, int(wd * res)), max(8, int(h * res)))
            img = cv2.resize(cv2.resize(img, small, interpolation=cv2.INTER_AREA), (wd, h),
                             interpolation=cv2.INTER_LINEAR)
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
        img = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)
        if (h, wd) != tuple(out_hw):
            img = cv2.resize(img, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
        crops[i] = img
    det = np.clip(0.97 - 0.5 * occl - 0.05 * blur - 0.1 * np.clip((40 - face_px) / 20, 0, 1)
                  - 0.1 * np.abs(yaw) + rng.normal(0, 0.02, n), 0.6, 0.999)
    return crops, np.stack([det, face_px, yaw, pitch], 1)


def make_sequences(classifier, images: np.ndarray, labels: np.ndarray, label_names: Sequence[str], n_seq: int,
                   seed: int, recipe: SynthRecipe | None = None, batch_seqs: int = 8) -> dict[str, np.ndarray]:
    """Build ``n_seq`` sequences of ``recipe.frames`` kept frames each, scored by ``classifier``.

    Args:
        classifier: an :class:`~affectlens.classifier.EmotionClassifier` whose labels are ``label_names``.
        images: ``(n, 48, 48)`` uint8 faces; labels: ``(n,)`` indices into ``label_names``.
        seed: everything (timeline, perturbations) follows from it.

    Returns:
        ``probs (S, T, C)`` float32, ``feats (S, T, 5)`` float32 (:data:`FEATURES`), ``y (S, T)``
        int64 true labels, ``t_ms (S, T)`` float64 timestamps.
    """
    recipe = recipe or SynthRecipe()
    rng = np.random.default_rng(seed)
    c = len(label_names)
    neutral = list(label_names).index("neutral") if "neutral" in label_names else None
    pools = [np.flatnonzero(labels == k) for k in range(c)]
    out_hw = tuple(classifier.crop_size_hw)
    T = recipe.frames
    P = np.zeros((n_seq, T, c), np.float32)
    F = np.zeros((n_seq, T, len(FEATURES)), np.float32)
    Y = np.zeros((n_seq, T), np.int64)
    TS = np.zeros((n_seq, T), np.float64)
    pending: list[tuple[int, np.ndarray]] = []

    def flush():
        if not pending:
            return
        crops = np.concatenate([cr for _, cr in pending])
        probs = classifier.classify_crops(crops)
        k = 0
        for s, cr in pending:
            P[s] = probs[k:k + len(cr)]
            k += len(cr)
        pending.clear()

    for s in range(n_seq):
        fps = rng.uniform(*recipe.fps_range)
        n_ticks = int(T * 1.6) + 8
        dt = 1000.0 / fps * (1 + rng.uniform(-recipe.fps_jitter, recipe.fps_jitter, n_ticks))
        tick_ms = np.concatenate([[0.0], np.cumsum(dt[1:])])
        keep = np.ones(n_ticks, bool)
        i = 1
        while i < n_ticks:
            if rng.random() < recipe.drop_prob:
                b = int(rng.integers(*recipe.drop_burst, endpoint=True))
                keep[i:i + b] = False
                i += b
            i += 1
        kept = np.flatnonzero(keep)[:T]
        if len(kept) < T:  # (practically never) pad by keeping the earliest dropped ticks
            kept = np.sort(np.concatenate([kept, np.flatnonzero(~keep)[:T - len(kept)]]))
        t_ms = tick_ms[kept]
        t_s = t_ms / 1000.0
        fa, fb, w, y = _timeline(rng, recipe, c, neutral, pools, len(t_s), t_s)
        crops, q = _render(rng, images, fa, fb, w, t_s, recipe, out_hw)
        dts = np.diff(t_ms, prepend=t_ms[0])  # 0 on a track's first frame, as in the live smoother
        F[s] = np.concatenate([q, dts[:, None]], 1)
        Y[s], TS[s] = y, t_ms
        pending.append((s, crops))
        if len(pending) >= batch_seqs:
            flush()
        if (s + 1) % 50 == 0:
            logger.info("sequence %d / %d", s + 1, n_seq)
    flush()
    return {"probs": P, "feats": F, "y": Y, "t_ms": TS}
