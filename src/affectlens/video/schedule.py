"""When to run the face detector on a video, and on what: the whole frame, windows around the
tracked faces, or not at all.

A full-frame pass is the most expensive step of a video run (about 25–55 ms at 640×480 and
100–150 ms on a 1080p frame on 2 cores), while the tracker already knows roughly where every
followed face is. ``detect_every="auto"`` (0, the default) scans the whole frame when there are
no tracks and at least every ``rescan_ms`` of video time (so new faces appear within that
delay); on the frames in between the detector runs only on small windows around the tracks'
predicted boxes, batched into one pass (:meth:`~affectlens.detection.RetinaFaceDetector.detect_regions`,
a few milliseconds per face), so every face keeps a measured box and landmarks on every frame.
How often the windows are looked at follows the tracks' stability (``regions_every=0``, the
default): after each windowed pass the analyzer reports how far the tracker's predicted boxes
were from the measured ones (:meth:`DetectionScheduler.observe`, the median over the tracks of
the largest centre or size difference, as a fraction of the face's side). Below
:data:`STABLE_ERROR` (3%, about the detector's own landmark jitter with one or two windows) the
gap between windowed passes grows by a frame, up to :data:`AUTO_GAPS`' largest (4); above
:data:`UNSTABLE_ERROR` (6%), or when a followed face was not found in its window, it shrinks by
one, down to the smallest (2). The gap never spans more than :data:`AUTO_MAX_GAP_MS` of video
(4 frames at 24-30 frames/s, 2 at 10 frames/s or fewer: the old fixed default), so a face
missed in one windowed pass is still searched in the next (the tracker looks for faces missed
within the last 150 ms). Measured on the shared
clips: a talking head is predicted within 2% over two frames and 3.4% over three; walkers in a
1080p crowd are 7% off even when measured on every frame (small faces jitter), so a shorter gap
buys no accuracy there and the crowd stays at 2.

``detect_every=k`` (k >= 1) scans every k-th analysed frame and moves the faces with the
tracker's motion model in between, as before.
"""

from __future__ import annotations

#: ``detect_every`` value meaning "full scans every ``rescan_ms``, windows around tracks between".
AUTO = 0

FULL, REGIONS, PREDICT = "full", "regions", "predict"
#: Smallest and largest gap (frames) between windowed passes with ``regions_every=0``.
AUTO_GAPS = (2, 4)
#: Prediction error (fraction of the face's side) below which the gap grows, and above which it shrinks.
STABLE_ERROR, UNSTABLE_ERROR = 0.03, 0.06
#: Longest video time (ms) an adaptive gap may span (above the smallest gap).
AUTO_MAX_GAP_MS = 170.0


class DetectionScheduler:
    """Per-frame choice of detector pass: :data:`FULL`, :data:`REGIONS` or :data:`PREDICT`.

    Args:
        every: ``k >= 1`` for a full scan every k-th frame (1 = every frame) and predicted boxes
            between, or :data:`AUTO` (0).
        rescan_ms: ``auto`` scans the whole frame at least this often (video time, ms).
        regions_every: ``auto`` looks around the tracks on every this-many-th frame between two
            scans and predicts the boxes on the others (1 = every frame), or ``0`` for a gap
            that follows the tracks' stability (see the module docstring and :meth:`observe`).

    Raises:
        ValueError: ``every`` < 0, ``rescan_ms`` <= 0 or ``regions_every`` < 0.
    """

    def __init__(self, every: int = 1, rescan_ms: float = 250.0, regions_every: int = 1):
        if every < 0 or not rescan_ms > 0 or regions_every < 0:
            raise ValueError(f"expected every >= 0 (0 = auto), rescan_ms > 0 and regions_every >= 0 (0 = auto); "
                             f"got {every}, {rescan_ms} and {regions_every}")
        self.every, self.rescan_ms, self.regions_every = every, float(rescan_ms), int(regions_every)
        self.reset()

    def reset(self) -> None:
        """Start over (a new stream, or a scene cut): the next frame gets a full scan."""
        self._since: int | None = None  # frames since the last full scan (None: none yet)
        self._last_full_ms: float | None = None
        self._since_measured = 0  # frames since the last full or windowed pass
        self._last_ms: float | None = None
        self._frame_ms: float | None = None  # time between the last two analysed frames
        #: Frames between windowed passes now (``regions_every``, or the adaptive gap).
        self.gap = self.regions_every or AUTO_GAPS[0]

    def observe(self, prediction_error: float, lost: bool = False) -> None:
        """Adapt the gap (``regions_every=0`` only) to how far the tracker's prediction was from
        the boxes measured by the windowed pass just run: ``prediction_error`` is the median over
        the tracks of the largest centre or size difference, as a fraction of the face's side
        (``inf`` or ``nan`` when no track was found); ``lost`` says a followed face was not found.
        The gap grows only while it spans at most :data:`AUTO_MAX_GAP_MS` of video."""
        if self.regions_every:
            return
        frame_ms = self._frame_ms or 1e9
        longest = max(AUTO_GAPS[0], min(AUTO_GAPS[1], int(AUTO_MAX_GAP_MS // frame_ms)))
        if lost or not prediction_error <= UNSTABLE_ERROR:
            self.gap -= 1
        elif prediction_error < STABLE_ERROR:
            self.gap += 1
        self.gap = max(AUTO_GAPS[0], min(self.gap, longest))

    def plan(self, timestamp_ms: float, have_tracks: bool) -> str:
        """The pass for this frame (call once per analysed frame, in time order): a full scan
        when there are no tracks to follow, on the first frame, every ``every``-th frame, or
        (``auto``) when ``rescan_ms`` has passed; otherwise windows around the tracks
        (``auto``, every :attr:`gap`-th frame: ``regions_every``, or adapted by :meth:`observe`)
        or the tracks' predicted boxes."""
        if self._last_ms is not None and timestamp_ms > self._last_ms:
            self._frame_ms = timestamp_ms - self._last_ms
        self._last_ms = timestamp_ms
        if self.every == AUTO:
            due = self._last_full_ms is None or timestamp_ms - self._last_full_ms >= self.rescan_ms
        else:
            due = self._since is None or self._since >= self.every - 1
        full = due or not have_tracks
        self._since = 0 if full else self._since + 1
        self._since_measured = 0 if full else self._since_measured + 1
        if full:
            self._last_full_ms = timestamp_ms
            return FULL
        if self.every == AUTO and self._since_measured >= self.gap:
            self._since_measured = 0
            return REGIONS
        return PREDICT
