"""The learned temporal smoother: a small GRU per face track, on ONNX Runtime, frame by frame.

The models (``temporal-gru-ferplus.onnx`` for the default 8-label FER+ family, ``temporal-gru.onnx``
for the 7-label ``fer-vgg48s*`` models, each with its spec JSON, trained by ``affectlens
train-temporal``; :func:`pick_temporal_model` picks one by the emotion model's labels and name) are
one streaming step with explicit state: inputs ``x (n, C + 5)`` — each track's classifier
probabilities, detection score, face box width (px), head yaw and pitch proxies and the time
since the track's previous frame (ms, 0 on its first) — and ``h (n, hidden)``; outputs the
smoothed ``probs (n, C)`` and ``h_out``. All tracks of a frame run in one call; the state of
each track is kept here between frames, so the same graph serves Python, a browser or a phone.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnxruntime as ort

from affectlens.errors import ModelLoadError
from affectlens.faces import Faces
from affectlens.models.spec import sha256_of
from affectlens.smoothing import TrackSmoother

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: The temporal model used when none is named and no emotion model is known to pick by: the one
#: trained on the default emotion model's outputs (``pick_temporal_model`` picks it for that model).
DEFAULT_TEMPORAL_MODEL = "temporal-gru-ferplus"


def _family(name: str) -> str:
    """A classifier name without its precision suffix (``ferplus-vgg48s-ens-zoom-int8`` -> ``…-zoom``)."""
    return name.removesuffix("-int8")


def shipped_temporal_specs() -> dict[str, dict]:
    """Every shipped temporal model's spec by name (unreadable or non-temporal JSONs skipped); read
    once per change of the weights folder (the service asks on every request that smooths)."""
    return dict(_read_shipped_specs(WEIGHTS_DIR.stat().st_mtime_ns))


@functools.lru_cache(maxsize=2)
def _read_shipped_specs(folder_mtime_ns: int) -> dict[str, dict]:
    out = {}
    for p in sorted(WEIGHTS_DIR.glob("*.json")):
        try:
            spec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if spec.get("kind") == "temporal-smoother":
            out[p.stem] = spec
    return out


def pick_temporal_model(labels: Sequence[str], classifier: str | None = None) -> str:
    """The shipped temporal model for an emotion model: same labels, and of those the one trained
    on the same classifier, else on the same family (int8 or fp32 file), else the first by name.

    Args:
        labels: the emotion model's labels, in order.
        classifier: the emotion model's name (e.g. ``ferplus-vgg48s-ens-zoom-int8``), if known.

    Returns:
        The shipped temporal model's name, e.g. ``temporal-gru-ferplus``.

    Raises:
        ModelLoadError: no shipped temporal model has these labels (names each one's labels
            and the fix).
    """
    specs = shipped_temporal_specs()
    same = [n for n, s in specs.items() if tuple(s["labels"]) == tuple(labels)]
    if not same:
        have = "; ".join(f"{n}: {s['labels']} (from {s.get('classifier', {}).get('name', '?')})"
                         for n, s in specs.items()) or "none"
        raise ModelLoadError(
            f"no shipped temporal model was trained for the labels {list(labels)}"
            f"{f' of {classifier}' if classifier else ''} (shipped: {have}); train one with "
            "`affectlens train-temporal --set classifier=NAME` and pass it with --temporal-model, "
            "or use --smooth hmm / ema / moving-average")
    if classifier:
        for match in (lambda c: c == classifier, lambda c: _family(c) == _family(classifier)):
            hit = [n for n in same if match(specs[n].get("classifier", {}).get("name", ""))]
            if hit:
                return hit[0]
    return same[0]


def resolve_temporal_spec(model: str | Path | None = None) -> tuple[dict, Path]:
    """The spec dict and ONNX path of a shipped temporal model name, a spec JSON or an ONNX path.

    Raises:
        ModelLoadError: missing files, a spec that is not a temporal smoother's, sha256 mismatch.
    """
    ref = DEFAULT_TEMPORAL_MODEL if model is None else str(model)
    p = Path(ref)
    if p.suffix.lower() == ".onnx":
        p = p.with_suffix(".json")
    elif p.suffix.lower() != ".json":
        p = WEIGHTS_DIR / f"{ref}.json"
    if not p.exists():
        shipped = sorted(q.stem for q in WEIGHTS_DIR.glob("*.json"))
        what = ref if p.parent == WEIGHTS_DIR and p.stem == ref else str(p)
        raise ModelLoadError(f"{what}: temporal model not found (shipped: {', '.join(shipped) or 'none'}; or a "
                             "spec .json / .onnx path); train one with `affectlens train-temporal`")
    try:
        spec = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{p}: unreadable temporal model spec ({exc})") from None
    if spec.get("kind") != "temporal-smoother":
        raise ModelLoadError(f"{p}: expected a spec with kind 'temporal-smoother', got {spec.get('kind')!r}")
    for key in ("file", "sha256", "labels", "features", "hidden"):
        if key not in spec:
            raise ModelLoadError(f"{p}: temporal model spec lacks the field {key!r}")
    onnx_path = p.parent / spec["file"]
    if not onnx_path.exists():
        raise ModelLoadError(f"{onnx_path}: model file not found (named by spec {p.name})")
    digest = sha256_of(onnx_path)
    if digest != spec["sha256"]:
        raise ModelLoadError(f"{onnx_path}: sha256 mismatch: the spec expects {spec['sha256'][:12]}…, the file has "
                             f"{digest[:12]}…; the file is corrupt or not the model this spec describes")
    return spec, onnx_path


def track_features(faces: Faces) -> np.ndarray:
    """``(n, 4)`` float32 quality signals per face: det_score, face box width (px), yaw, pitch.

    Yaw and pitch are the normalised proxies of
    :func:`~affectlens.video.aggregate.head_pose_from_landmarks` (0 where undefined).
    """
    from affectlens.video.aggregate import head_pose_from_landmarks

    pose = np.nan_to_num(head_pose_from_landmarks(faces.landmarks), nan=0.0) if len(faces) else np.zeros((0, 2))
    width = faces.xyxy[:, 2] - faces.xyxy[:, 0]
    return np.column_stack([faces.det_score, width, pose]).astype(np.float32)


class LearnedSmoother(TrackSmoother):
    """Per-track GRU smoothing with the ONNX temporal model.

    Args:
        model: shipped temporal model name, spec JSON or ONNX path (``None``: the shipped one
            for ``labels`` and ``classifier``, see :func:`pick_temporal_model`; without
            ``labels``, :data:`DEFAULT_TEMPORAL_MODEL`).
        labels: the emotion model's labels; must equal the temporal model's (it learned the
            noise of one label set). ``None`` skips the check (the faces' labels are still
            checked on every update).
        threads: ONNX Runtime intra-op threads (1: the model is tiny).
        classifier: the emotion model's name, to pick the temporal model trained on its outputs.

    Raises:
        ModelLoadError: model missing or corrupt, or trained for other labels.

    Example:
        >>> smoother = LearnedSmoother(labels=recognizer.labels)
        >>> faces = smoother.update(tracker.update(faces))
    """

    def __init__(self, model: str | Path | None = None, labels: Sequence[str] | None = None, threads: int = 1,
                 classifier: str | None = None):
        super().__init__()
        if model is None and labels is not None:
            model = pick_temporal_model(labels, classifier)
        self.spec, self.path = resolve_temporal_spec(model)
        self.labels = tuple(self.spec["labels"])
        self.hidden = int(self.spec["hidden"])
        if labels is not None:
            self._check_labels(tuple(labels))
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = max(1, int(threads))
        try:
            self._session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's exception types are not public
            raise ModelLoadError(f"{self.path}: ONNX Runtime cannot load the model ({exc})") from None
        names = [i.name for i in self._session.get_inputs()], [o.name for o in self._session.get_outputs()]
        if names != (["x", "h"], ["probs", "h_out"]):
            raise ModelLoadError(f"{self.path}: expected inputs ['x', 'h'] and outputs ['probs', 'h_out'], "
                                 f"got {names[0]} and {names[1]}")

    def _check_labels(self, labels: tuple[str, ...]) -> None:
        if labels != self.labels:
            clf = self.spec.get("classifier", {}).get("name", "another model")
            raise ModelLoadError(
                f"{self.path.name}: the temporal model was trained on the outputs of {clf} with labels "
                f"{list(self.labels)}, but the emotion model gives {list(labels)}; retrain it for this model "
                f"(`affectlens train-temporal --set classifier=NAME`) or use --smooth hmm / ema / moving-average")

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame for ``n`` tracks: ``x (n, C + 5)``, ``h (n, hidden)`` -> ``(probs, h_out)``."""
        probs, h_out = self._session.run(None, {"x": np.ascontiguousarray(x, np.float32),
                                                "h": np.ascontiguousarray(h, np.float32)})
        return probs, h_out

    def update(self, faces: Faces) -> Faces:
        """Smooth ``faces.probs`` per ``track_id`` (see :meth:`TrackSmoother.update`).

        Raises:
            ValueError: the faces are not classified.
            ModelLoadError: the faces' labels differ from the temporal model's.
        """
        if len(faces) and not faces.classified:
            raise ValueError("expected classified faces (probs of shape (n, len(labels))), got probs of shape "
                             f"{faces.probs.shape}; run the classifier first")
        t_ms = self._time_ms(faces)
        raw = faces.probs
        out = raw.astype(np.float32, copy=True)
        rows = np.flatnonzero(faces.track_id >= 0)
        if len(rows):
            self._check_labels(tuple(faces.labels))
            q = track_features(faces[rows])
            ids = [int(t) for t in faces.track_id[rows]]
            prev = [self._state.get(t) for t in ids]
            h = np.stack([np.zeros(self.hidden, np.float32) if s is None else s[0] for s in prev])
            dt = np.array([0.0 if s is None else max(0.0, t_ms - s[1]) for s in prev], np.float32)
            x = np.column_stack([raw[rows].astype(np.float32), q, dt])
            probs, h_out = self.step(x, h)
            out[rows] = probs / np.maximum(probs.sum(1, keepdims=True), 1e-12)
            for k, t in enumerate(ids):
                self._state[t] = (h_out[k], t_ms)
        kept = faces.data.get("probs_raw")
        raw_col = kept if kept is not None and kept.shape == raw.shape else raw.copy()
        return faces.replace(probs=out).with_data(probs_raw=raw_col)

    def smooth_sequence(self, probs: np.ndarray, quality: np.ndarray, t_ms: Iterable[float]) -> np.ndarray:
        """Smooth one track's whole sequence (the offline form of :meth:`update`).

        Args:
            probs: ``(T, C)`` classifier probabilities; quality: ``(T, 4)`` det_score, face_px,
                yaw, pitch; t_ms: ``T`` timestamps.

        Returns:
            ``(T, C)`` smoothed probabilities, equal to feeding the frames one by one.
        """
        t = np.asarray(list(t_ms), np.float64)
        dt = np.diff(t, prepend=t[:1]).astype(np.float32)
        h = np.zeros((1, self.hidden), np.float32)
        out = np.zeros(probs.shape, np.float32)
        for i in range(len(t)):
            x = np.concatenate([probs[i], quality[i], dt[i:i + 1]]).astype(np.float32)[None]
            p, h = self.step(x, h)
            out[i] = p[0]
        return out
