"""Frame-by-frame video analysis: detect → track → classify → smooth, one :class:`Faces` per frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from affectlens.faces import Faces, FrameInfo
from affectlens.recognizer import EmotionRecognizer, RecognizerOptions
from affectlens.runtime import resolve_threads
from affectlens.smoothing import create_smoother
from affectlens.tracking import FaceTracker, TrackerOptions
from affectlens.video.budget import ReadingBudget
from affectlens.video.prefetch import prefetched, source_frames
from affectlens.video.scenecut import SceneCutDetector
from affectlens.video.schedule import AUTO, FULL, PREDICT, REGIONS, DetectionScheduler
from affectlens.video.source import VideoSource

SMOOTHERS = ("none", "moving-average", "ema", "hmm", "learned")


@dataclass(frozen=True)
class _Found:
    """One frame's faces as found and tracked, before reading: what :meth:`VideoAnalyzer._find`
    hands to :meth:`VideoAnalyzer._read`."""

    faces: Faces  # with the quality columns
    crops: np.ndarray  # aligned to the emotion model's template
    ended: list[int]  # tracks that ended at this frame
    scene_cut: bool
    timestamp_ms: float


@dataclass(frozen=True)
class VideoOptions:
    """Options of :class:`VideoAnalyzer`.

    Attributes:
        recognizer: detector + emotion model options (see :class:`RecognizerOptions`).
        tracker: :class:`TrackerOptions`.
        smooth: ``"none"``, ``"moving-average"``, ``"ema"``, ``"hmm"`` (default: the best
            hand-tuned smoother in docs/temporal.md) or ``"learned"``.
        window_s: moving-average window in seconds of video time (default 0.5).
        window: moving-average window in analysed frames instead (a frame-count alias, 10-30).
        ema_tau_s: time constant of ``"ema"`` in seconds (default 0.3).
        ema_alpha: a fixed weight of the newest frame for ``"ema"`` instead (frame-count alias).
        hmm_hold_s: mean time in seconds ``"hmm"`` expects an expression to be held (default 0.8).
        hmm_stay_prob: a fixed probability of keeping the emotion between frames instead (alias).
        temporal_model: the ``"learned"`` smoother's model (shipped name or path; ``None`` = the
            shipped one trained on the emotion model's outputs, picked by its labels and name);
            its labels must equal the emotion model's.
        detect_every: ``0`` (default, "auto") scans the whole frame for faces at least every
            ``rescan_s`` seconds and, in between, runs the detector only on small windows around
            the tracked faces (:mod:`affectlens.video.schedule`); ``k >= 1`` scans every k-th
            analysed frame (1 = every frame) and, in between, takes the faces from the tracks'
            motion model (boxes predicted, landmarks moved with them). ``benchmarks/bench_video.py``
            measures speed and agreement with every-frame detection.
        rescan_s: longest time between two full-frame scans with ``detect_every=0`` (new faces
            are found within this delay).
        regions_every: with ``detect_every=0``, look around the tracked faces on every this-many-th
            frame between two scans and move them with the tracker's motion model on the others;
            ``0`` (default) chooses that gap, 2 to 4 frames, from how well the motion model
            predicted the measured boxes (:mod:`affectlens.video.schedule`): steady faces are
            measured less often, moving ones more.
        classify_per_s: the emotion model reads at most about this many faces per second of
            video: faces without a reading always, then the tracked faces read longest ago; the
            others keep their latest reading for that frame (``data["read"]`` is False on
            those rows, and the smoother is not fed one reading twice;
            :mod:`affectlens.video.budget`). ``0`` reads every face on every frame. With the
            default 30, one face at up to 30 frames/s is read on every frame but its second (a
            new face's first reading is paid from the budget),
            two at 25 frames/s on 3 frames of 5, and a crowd of eight about 4 times a second each,
            which keeps a 1080p crowd real time on 2 cores; on the crowd clip the smoothed top labels
            agree with every-frame reading as often as at 40 (95.1% against 93.8%,
            ``benchmarks/bench_video.py``).
        scene_cut_distance: end every track at a hard cut between two analysed frames whose
            colour histograms differ by at least this Bhattacharyya distance (see
            :mod:`affectlens.video.scenecut`); ``None`` turns scene-cut detection off.

    Raises:
        ValueError: unknown smoother, a window outside 1..300 or a scene-cut distance outside (0, 1].
    """

    recognizer: RecognizerOptions = field(default_factory=RecognizerOptions)
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    smooth: str = "hmm"
    window_s: float = 0.5
    window: int | None = None
    ema_tau_s: float = 0.3
    ema_alpha: float | None = None
    hmm_hold_s: float = 0.8
    hmm_stay_prob: float | None = None
    temporal_model: str | None = None
    detect_every: int = AUTO
    rescan_s: float = 0.5
    regions_every: int = 0
    classify_per_s: float = 30.0
    scene_cut_distance: float | None = 0.35

    def __post_init__(self):
        if self.smooth not in SMOOTHERS:
            raise ValueError(f"smooth must be one of {', '.join(SMOOTHERS)}; got {self.smooth!r}")
        if self.detect_every < 0:
            raise ValueError(f"detect_every must be 0 (auto) or >= 1, got {self.detect_every}")
        if not 0 < self.rescan_s <= 60:
            raise ValueError(f"rescan_s must be in (0, 60] seconds (0.25-1 recommended), got {self.rescan_s}")
        if self.regions_every < 0:
            raise ValueError(f"regions_every must be 0 (from track stability) or >= 1 frames, got {self.regions_every}")
        if not 0 <= self.classify_per_s <= 10_000:
            raise ValueError(f"classify_per_s must be in [0, 10000] faces per second (0 = every face on every "
                             f"frame), got {self.classify_per_s}")
        if self.window is not None and not 1 <= self.window <= 300:
            raise ValueError(f"window must be 1..300 frames (10-30 recommended), got {self.window}")
        if self.scene_cut_distance is not None and not 0.0 < self.scene_cut_distance <= 1.0:
            raise ValueError(f"scene_cut_distance must be in (0, 1] or None, got {self.scene_cut_distance}")
        if self.window is not None and self.smooth != "moving-average":
            raise ValueError(f"window ({self.window} frames) is used only with smooth='moving-average', not "
                             f"{self.smooth!r}")
        if self.temporal_model is not None and self.smooth != "learned":
            raise ValueError(f"temporal_model ({self.temporal_model!r}) is used only with smooth='learned' "
                             f"(--smooth learned); got smooth={self.smooth!r}")
        if not 0 < self.window_s <= 60:
            raise ValueError(f"window_s must be in (0, 60] seconds (0.3-1 recommended), got {self.window_s}")

    def smoother_kwargs(self, labels: tuple[str, ...] | None = None, classifier: str | None = None) -> dict:
        """Keyword arguments of :func:`~affectlens.smoothing.create_smoother` for ``smooth``
        (frame-count aliases win when set); ``labels`` and ``classifier`` (the emotion model's
        name) let ``learned`` pick its temporal model."""
        ma = {"window": self.window} if self.window is not None else {"window_s": self.window_s}
        ema = {"alpha": self.ema_alpha} if self.ema_alpha is not None else {"tau_s": self.ema_tau_s}
        hmm = {"stay_prob": self.hmm_stay_prob} if self.hmm_stay_prob is not None else {"hold_s": self.hmm_hold_s}
        learned = {"model": self.temporal_model, "labels": labels, "classifier": classifier}
        return {"moving-average": ma, "ema": ema, "hmm": hmm, "learned": learned}.get(self.smooth, {})


class VideoAnalyzer:
    """Stateful per-stream analysis. Feed frames in time order with :meth:`process`, or iterate
    a whole source with :meth:`analyze`.

    Each returned :class:`Faces` has ``track_id`` (``-1`` until a track is confirmed), smoothed
    ``probs`` and the raw per-frame probabilities in ``data["probs_raw"]``. Tracks carry no
    identity: they link boxes over time, nothing more.

    Example:
        >>> va = VideoAnalyzer(VideoOptions(smooth="ema"))
        >>> for faces in va.analyze("call.mp4", fps=10):
        ...     print(faces.info.timestamp_ms, faces.track_id, faces.emotions)
    """

    def __init__(self, options: VideoOptions | None = None, recognizer: EmotionRecognizer | None = None):
        self.options = options or VideoOptions()
        self.recognizer = recognizer or EmotionRecognizer(self.options.recognizer)
        self.tracker = FaceTracker(self.options.tracker)
        self.smoother = create_smoother(self.options.smooth, **self.options.smoother_kwargs(
            self.recognizer.labels, self.recognizer.classifier.spec.name))
        self._last_ts: float | None = None
        self.scheduler = DetectionScheduler(self.options.detect_every, 1000.0 * self.options.rescan_s,
                                            self.options.regions_every)
        self._held: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}  # track → box, landmarks, score
        self.budget = ReadingBudget(self.options.classify_per_s)
        d = self.options.scene_cut_distance
        self.scene_cuts = None if d is None else SceneCutDetector(d)
        #: Timestamps (ms) of the frames that started a new shot; every track ended there.
        self.scene_cuts_ms: list[float] = []

    @property
    def labels(self) -> tuple[str, ...]:
        return self.recognizer.labels

    def reset(self) -> None:
        """Forget all tracks and smoothing state (e.g. before a new stream)."""
        self.tracker.reset()
        self.smoother.reset()
        self._last_ts = None
        self.scheduler.reset()
        self._held = {}
        self.budget.reset()
        self.scene_cuts_ms = []
        if self.scene_cuts is not None:
            self.scene_cuts.reset()

    def process(self, image_bgr: np.ndarray, timestamp_ms: float, frame_index: int | None = None,
                source: str | None = None) -> Faces:
        """Analyse one frame.

        Args:
            image_bgr: ``(h, w, 3)`` uint8 BGR frame.
            timestamp_ms: presentation time; must not go backwards.

        Raises:
            ValueError: timestamps going backwards, or not a BGR frame.
        """
        return self._read(self._find(image_bgr, timestamp_ms, frame_index, source))

    def process_frames(self, frames: Iterable, source: str | None = None,
                       overlap: bool | None = None) -> Iterator[tuple[object, Faces, bool]]:
        """:meth:`process` over ``frames`` (objects with ``image``, ``timestamp_ms`` and ``index``,
        e.g. :class:`~affectlens.video.source.VideoFrame`), in order.

        Args:
            frames: the frames, in time order.
            source: the name the results' :class:`FrameInfo` gives the source.
            overlap: find the faces of the next frames (detector, tracker, alignment, quality) in
                a background thread while this frame's faces are read (emotion model, smoother). The results are the
                same as without it; on 2 cores the two models then keep both cores busy, which
                single runs of these small networks do not (1.3-1.4x from a second intra-op
                thread, 2x from a second run). ``None`` (default): when the recognizer has 2 or
                more threads.

        Yields:
            ``(frame, faces, scene_cut)``: ``scene_cut`` says the frame started a new shot
            (see :attr:`VideoOptions.scene_cut_distance`).

        Closing the generator early (``break``, an exception) stops the thread and closes
        ``frames`` (if it has ``close``), so a source can be released safely afterwards. With
        ``overlap``, the finding half may then have looked at up to 3 frames beyond the last
        one yielded (tracks, :attr:`scene_cuts_ms` and the last timestamp are ahead of it): call
        :meth:`reset` before feeding this analyzer other frames.

        Raises:
            ValueError: timestamps going backwards, or not a BGR frame (where it happens).
        """
        if overlap is None:
            overlap = resolve_threads(self.recognizer.options.threads) >= 2
        upstream = iter(frames)
        found = ((f, self._find(f.image, f.timestamp_ms, f.index, source)) for f in upstream)
        staged = prefetched(found, depth=2, name="affectlens-find") if overlap else found
        try:
            for frame, step in staged:
                yield frame, self._read(step), step.scene_cut
        finally:
            if staged is not found:
                staged.close()  # stops the thread ahead (after the frame it is on)
            found.close()
            close = getattr(upstream, "close", None)
            if close is not None:  # e.g. source_frames: stop its decoding thread before the source is released
                close()

    def _find(self, image_bgr: np.ndarray, timestamp_ms: float, frame_index: int | None,
              source: str | None) -> _Found:
        """The first half of :meth:`process`: scene cut, detector schedule, detection or
        prediction, tracking, alignment and quality. Touches only the tracker, the schedule and
        the scene-cut state, so that it may run ahead of :meth:`_read` in another thread."""
        if self._last_ts is not None and timestamp_ms < self._last_ts:
            raise ValueError(f"timestamps must not go backwards: got {timestamp_ms} ms after {self._last_ts} ms; "
                             "call reset() to start a new stream")
        self._last_ts = timestamp_ms
        info = FrameInfo(source, frame_index, float(timestamp_ms), image_bgr.shape[:2])
        cut, cut_ended = self._end_tracks_at_cut(image_bgr, float(timestamp_ms))
        plan = self.scheduler.plan(float(timestamp_ms), have_tracks=bool(self._held))
        if plan == FULL:
            faces = self._detected_faces(image_bgr, float(timestamp_ms), info)
        elif plan == REGIONS:
            faces = self._detected_faces(image_bgr, float(timestamp_ms), info, near_tracks=True)
        else:
            faces = self._predicted_faces(float(timestamp_ms), info)
        ended = cut_ended + (list(self.tracker.ended_track_ids) if plan != PREDICT else [])
        faces, crops = self.recognizer.assess_faces(image_bgr, faces)
        return _Found(faces, crops, ended, cut, float(timestamp_ms))

    def _read(self, found: _Found) -> Faces:
        """The second half of :meth:`process`: forget the ended tracks, then read the emotions
        (emotion model) and smooth them. Touches only the smoother and the reading state."""
        if found.ended:
            self.smoother.forget(found.ended)
            self.budget.forget(found.ended)
        return self._classify_and_smooth(found.faces, found.crops, found.timestamp_ms)

    def _classify_and_smooth(self, faces: Faces, crops: np.ndarray, timestamp_ms: float) -> Faces:
        """Classify the faces the reading budget chooses (the others keep their latest raw and
        smoothed reading), smooth the fresh readings, and record them per track."""
        keep = self.budget.held(faces.track_id, timestamp_ms)
        held = {int(i): self.budget.get(faces.track_id[i]) for i in np.flatnonzero(keep)}
        held_raw = np.zeros((len(faces), len(self.labels)), np.float32)
        for i, reading in held.items():
            held_raw[i] = reading.raw
        faces = self.recognizer.read_crops(faces.replace(probs=held_raw), crops, keep=keep)
        fresh = np.flatnonzero(~keep)
        raw = faces.probs.copy()
        smoothed = faces.probs.copy()
        if len(fresh):
            smoothed[fresh] = self.smoother.update(faces[fresh]).probs
        for i, reading in held.items():
            smoothed[i] = reading.smoothed
        for i in fresh:
            if faces.track_id[i] > 0:
                self.budget.record(faces.track_id[i], raw[i], smoothed[i], timestamp_ms)
        return faces.replace(probs=smoothed).with_data(probs_raw=raw, read=~keep)

    def _detected_faces(self, image_bgr: np.ndarray, timestamp_ms: float, info: FrameInfo,
                        near_tracks: bool = False) -> Faces:
        """Run the detector on the whole frame, or (``near_tracks``) on windows around the tracks'
        predicted boxes, and update the tracks."""
        detector = self.recognizer.detector
        if near_tracks:  # low scores may continue a track (as in the tracker's second stage)
            low = min(self.tracker.options.min_low_score, detector.options.min_score)
            predicted = self.tracker.predict(timestamp_ms)
            found = detector.detect_regions(image_bgr, self.tracker.search_boxes(timestamp_ms), min_score=low)
        elif self._held and self.options.detect_every == AUTO:
            found = detector.detect(image_bgr, max_side_px=self._rescan_side(image_bgr.shape[:2]))
        else:
            found = detector.detect(image_bgr)
        faces = Faces(found.xyxy, found.scores, found.landmarks, None, self.labels, info=info)
        faces = self.tracker.update(faces, timestamp_ms)
        if near_tracks:  # a weak detection that continues no track is not reported
            faces = faces[(faces.track_id > 0) | (faces.det_score >= detector.options.min_score)]
            error, lost = prediction_error(*predicted, faces)
            self.scheduler.observe(error, lost)
        self._held = {int(t): (faces.xyxy[i], faces.landmarks[i], float(faces.det_score[i]))
                      for i, t in enumerate(faces.track_id) if t > 0}
        return faces

    def _rescan_side(self, image_hw: tuple[int, int]) -> int:
        """Working size of the periodic re-scan for new faces while tracks are followed: half the
        frame's longer side, at least 640 px and at most the detector's ``max_side_px``. A face needs
        ``quality.MIN_FACE_PX`` (24 px) to be read at all, which is still about 12 px there, within
        the detector's reach; the first scan and fixed ``detect_every`` use the full size."""
        full = self.recognizer.detector.options.max_side_px
        return int(min(full, max(640, max(image_hw) // 2)))

    def _end_tracks_at_cut(self, image_bgr: np.ndarray, timestamp_ms: float) -> tuple[bool, list[int]]:
        """Whether this frame starts a new shot, and the ids of the tracks that ended there (all)."""
        if self.scene_cuts is None or not self.scene_cuts.update(image_bgr):
            return False, []
        self.scene_cuts_ms.append(timestamp_ms)
        ended = self.tracker.finish()
        self.tracker.reset()  # ids keep increasing
        self._held = {}
        self.scheduler.reset()  # detect on this frame
        return True, ended

    def _predicted_faces(self, timestamp_ms: float, info: FrameInfo) -> Faces:
        """Faces of the held tracks at their predicted boxes; landmarks follow the box (scale and shift)."""
        ids, boxes = self.tracker.predict(timestamp_ms)
        rows = [(t, b) for t, b in zip(ids, boxes) if int(t) in self._held]
        if not rows:
            return Faces.empty(self.labels, info)
        xyxy, lms, scores = [], [], []
        for t, box in rows:
            old_box, old_lm, score = self._held[int(t)]
            old_c, new_c = (old_box[:2] + old_box[2:]) / 2, (box[:2] + box[2:]) / 2
            scale = (box[2:] - box[:2]) / np.maximum(old_box[2:] - old_box[:2], 1e-6)
            xyxy.append(box)
            lms.append(new_c + (old_lm - old_c) * scale)
            scores.append(score)
        return Faces(np.array(xyxy), np.array(scores), np.array(lms), None, self.labels,
                     track_id=np.array([t for t, _ in rows]), info=info)

    def analyze(self, source, every: int = 1, fps: float | None = None, start_s: float | None = None,
                end_s: float | None = None, video_source: VideoSource | None = None) -> Iterator[Faces]:
        """Yield one :class:`Faces` per sampled frame of a file, folder of frames, camera or URL
        (with :meth:`process_frames`: faces found ahead in a thread when there are 2 threads).

        Raises:
            InvalidVideoError: the source cannot be opened or holds no decodable frame.
        """
        src = video_source or VideoSource(source, every=every, fps=fps, start_s=start_s, end_s=end_s)
        with src:
            frames = self.process_frames(source_frames(src), src.source)
            try:
                for _, faces, _ in frames:
                    yield faces
            finally:
                frames.close()


def prediction_error(ids: np.ndarray, predicted_xyxy: np.ndarray, faces: Faces) -> tuple[float, bool]:
    """How far a tracker's predicted boxes were from the measured ones.

    Returns:
        ``(error, lost)``: per track found in ``faces`` (by ``track_id``), the largest difference
        of centre (x, y) or size (w, h) over the measured box's longer side, and the median of
        that over those tracks (``inf`` when none was found, or none was predicted); ``lost``
        says whether a predicted track was not found.
    """
    rows = {int(t): i for i, t in enumerate(faces.track_id) if t > 0}
    errors = []
    for tid, p in zip(ids, np.asarray(predicted_xyxy, np.float64)):
        i = rows.get(int(tid))
        if i is None:
            continue
        b = faces.xyxy[i].astype(np.float64)
        side = max(b[2] - b[0], b[3] - b[1], 1.0)
        diff = np.r_[(b[:2] + b[2:] - p[:2] - p[2:]) / 2, (b[2:] - b[:2]) - (p[2:] - p[:2])]
        errors.append(float(np.abs(diff).max() / side))
    return (float(np.median(errors)) if errors else float("inf")), len(errors) < len(ids)
