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
:data:`UNSTABLE_ERROR` (6%) it shrinks by one, down to the smallest (2). Measured on the shared
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
        #: Frames between windowed passes now (``regions_every``, or the adaptive gap).
        self.gap = self.regions_every or AUTO_GAPS[0]

    def observe(self, prediction_error: float) -> None:
        """Adapt the gap (``regions_every=0`` only) to how far the tracker's prediction was from
        the boxes measured by the windowed pass just run: the median over the tracks of the
        largest centre or size difference, as a fraction of the face's side."""
        if self.regions_every:
            return
        if prediction_error < STABLE_ERROR:
            self.gap = min(self.gap + 1, AUTO_GAPS[1])
        elif prediction_error > UNSTABLE_ERROR:
            self.gap = max(self.gap - 1, AUTO_GAPS[0])

    def plan(self, timestamp_ms: float, have_tracks: bool) -> str:
        """The pass for this frame (call once per analysed frame, in time order): a full scan
        when there are no tracks to follow, on the first frame, every ``every``-th frame, or
        (``auto``) when ``rescan_ms`` has passed; otherwise windows around the tracks
        (``auto``, every ``regions_every``-th frame) or the tracks' predicted boxes."""
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
