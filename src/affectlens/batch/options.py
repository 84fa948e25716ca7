"""Options of a batch run: the engine, its workers, retries and what each item runs with."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

from affectlens.detection import DetectorOptions
from affectlens.recognizer import RecognizerOptions
from affectlens.video.analyzer import VideoOptions
from affectlens.video.session import RunOptions

ENGINES = ("local", "ray")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: Fields added after batches were first written, with their defaults (see ``results_key``).
_LATER_FIELDS = {"thumbnails": True, "min_track_s": 2.0, "scene_cut_distance": 0.35, "codec": "auto"}


@dataclass(frozen=True)
class BatchOptions:
    """How :func:`~affectlens.batch.run.run_batch` processes its items.

    Attributes:
        engine: ``"local"`` (a process pool on this machine) or ``"ray"``.
        address: Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None`` starts a
            local Ray instance (or uses the one this process already initialised).
        workers: parallel workers (0 = one per available CPU on ``local``, one per
            ``threads`` CPUs of the cluster on ``ray``).
        threads: ONNX Runtime threads per worker (0 = the worker's share of the CPUs, at least 1).
        max_attempts: tries per item when a worker crashes or raises unexpectedly; unreadable
            inputs are recorded at once (retrying them cannot help).
        model / precision / min_score / min_face_px / max_faces: emotion model and detector, as
            ``affectlens image``.
        every / fps / interval_s / smooth / window_s / window / ema_tau_s / hmm_hold_s /
            temporal_model / detect_every / classify_per_s: video sampling, smoothing and analytics, as
            ``affectlens video`` (:class:`~affectlens.video.analyzer.VideoOptions`).
        annotate / blur_faces: annotated copies (images) and ``annotated.mp4`` (videos).
        thumbnails / min_track_s / scene_cut_distance / codec: videos' reports and scene cuts, as
            ``affectlens video`` (``thumbnails=False`` keeps faces out of the reports).

    Raises:
        ValueError: unknown engine, or workers / threads / attempts below their minimum.
    """

    engine: str = "local"
    address: str | None = None
    workers: int = 0
    threads: int = 0
    max_attempts: int = 3
    model: str | None = None
    precision: str = "auto"
    min_score: float = 0.6
    min_face_px: float = 0.0
    max_faces: int = 0
    every: int = 1
    fps: float | None = None
    interval_s: float = 5.0
    smooth: str = "hmm"
    window_s: float = 0.5
    window: int | None = None
    ema_tau_s: float = 0.3
    hmm_hold_s: float = 0.8
    temporal_model: str | None = None
    detect_every: int = 0
    classify_per_s: float = 30.0
    annotate: bool = False
    blur_faces: bool = False
    thumbnails: bool = True
    min_track_s: float = 2.0
    scene_cut_distance: float | None = 0.35
    codec: str = "auto"

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {self.engine!r}")
        if self.address is not None and self.engine != "ray":
            raise ValueError(f"address ({self.address!r}) is a Ray cluster's: it needs engine='ray' (--engine ray)")
        if self.workers < 0 or self.threads < 0:
            raise ValueError(f"workers and threads must be >= 0 (0 = automatic), got {self.workers} and {self.threads}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        self.video_options(1)  # validate the video options now, not in a worker
        self.run_options()

    def local_plan(self) -> tuple[int, int]:
        """``(workers, threads per worker)`` for the local engine: the CPUs shared out evenly."""
        cpus = available_cpus()
        workers = self.workers or max(1, cpus // max(1, self.threads or 1))
        threads = self.threads or max(1, cpus // workers)
        return workers, threads

    def model_name(self) -> str:
        """The emotion model the workers run: ``model`` in the variant ``precision`` picks for this CPU.

        Raises:
            ValueError: no shipped variant of that precision.
        """
        from affectlens.models.registry import select_variant

        return select_variant(self.model, self.precision)[0]

    def recognizer_options(self, threads: int) -> RecognizerOptions:
        det = DetectorOptions(min_score=self.min_score, min_face_px=self.min_face_px, max_faces=self.max_faces,
                              threads=threads)
        return RecognizerOptions(model=self.model, precision=self.precision, detector=det, threads=threads)

    def video_options(self, threads: int) -> VideoOptions:
        return VideoOptions(recognizer=self.recognizer_options(threads), smooth=self.smooth, window_s=self.window_s,
                            window=self.window, ema_tau_s=self.ema_tau_s, hmm_hold_s=self.hmm_hold_s,
                            temporal_model=self.temporal_model, detect_every=self.detect_every,
                            classify_per_s=self.classify_per_s, scene_cut_distance=self.scene_cut_distance)

    def run_options(self) -> RunOptions:
        return RunOptions(every=self.every, fps=self.fps, interval_s=self.interval_s, annotate=self.annotate,
                          blur_faces=self.blur_faces, thumbnails=self.thumbnails, min_track_s=self.min_track_s,
                          codec=self.codec)

    def results_key(self, model_sha256: str) -> str:
        """A hash of everything that changes an item's results (not the engine, workers or threads):
        a rerun with another key redoes the items."""
        keep = {k: v for k, v in asdict(self).items() if k not in ("engine", "address", "workers", "threads",
                                                                    "max_attempts")}
        keep["model"] = model_sha256
        for k, default in _LATER_FIELDS.items():  # added later: at their defaults, earlier batches keep their key
            if keep.get(k) == default:
                del keep[k]
        return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]
