"""When to run the face detector on a video, and on what: the whole frame, windows around the
tracked faces, or not at all.

A full-frame pass is the most expensive step of a video run (about 25–55 ms at 640×480 and
100–150 ms on a 1080p frame on 2 cores), while the tracker already knows roughly where every
followed face is. ``detect_every="auto"`` (0, the default) scans the whole frame when there are
no tracks and at least every ``rescan_ms`` of video time (so new faces appear within that
delay); on the frames in between the detector runs only on small windows around the tracks'
predicted boxes, batched into one pass (:meth:`~affectlens.detection.RetinaFaceDetector.detect_regions`,
a few milliseconds per face), so every face keeps a measured box and landmarks on every frame.
``detect_every=k`` (k >= 1) scans every k-th analysed frame and moves the faces with the
tracker's motion model in between, as before.
"""

from __future__ import annotations

#: ``detect_every`` value meaning "full scans every ``rescan_ms``, windows around tracks between".
AUTO = 0

FULL, REGIONS, PREDICT = "full", "regions", "predict"


class DetectionScheduler:
    """Per-frame choice of detector pass: :data:`FULL`, :data:`REGIONS` or :data:`PREDICT`.

    Args:
        every: ``k >= 1`` for a full scan every k-th frame (1 = every frame) and predicted boxes
            between, or :data:`AUTO` (0).
        rescan_ms: ``auto`` scans the whole frame at least this often (video time, ms).
        regions_every: ``auto`` looks around the tracks on every this-many-th frame between two
            scans and predicts the boxes on the others (1 = every frame).

    Raises:
        ValueError: ``every`` < 0, ``rescan_ms`` <= 0 or ``regions_every`` < 1.
    """

    def __init__(self, every: int = 1, rescan_ms: float = 250.0, regions_every: int = 1):
        if every < 0 or not rescan_ms > 0 or regions_every < 1:
            raise ValueError(f"expected every >= 0 (0 = auto), rescan_ms > 0 and regions_every >= 1; got {every}, "
                             f"{rescan_ms} and {regions_every}")
        self.every, self.rescan_ms, self.regions_every = every, float(rescan_ms), int(regions_every)
        self.reset()

    def reset(self) -> None:
        """Start over (a new stream, or a scene cut): the next frame gets a full scan."""
        self._since: int | None = None  # frames since the last full scan (None: none yet)
        self._last_full_ms: float | None = None

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
        if full:
            self._last_full_ms = timestamp_ms
            return FULL
        if self.every == AUTO and self._since % self.regions_every == 0:
            return REGIONS
        return PREDICT
