"""Face tracks across video frames: ByteTrack-style association of boxes with motion prediction.

Tracks link boxes over time and carry **no identity**: there is no face recognition, so a
person who leaves and comes back after ``max_lost_ms`` gets a new track id.

Each track has a constant-velocity Kalman filter on its box centre and size. Every update:

1. end tracks not matched for more than ``max_lost_ms`` (time, not frame counts, so variable
   frame rates and skipped frames are handled), then predict the others to the frame's time;
2. match high-score detections to all tracks by IoU with the optimal (Hungarian) assignment;
3. match low-score detections to the remaining confirmed tracks (ByteTrack's second stage:
   it keeps tracks alive through blur and partial occlusion), at IoU ≥ max(min_iou, 0.5);
4. match the remaining high-score detections to the remaining tracks by IoU of boxes enlarged
   by ``iou_buffer`` (catches fast faces, and new tracks whose velocity is still unknown);
5. start tentative tracks from unmatched high-score detections; a track is confirmed after
   ``min_hits`` detections (at once in the first frame of a stream); a tentative track that
   misses a frame is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectlens.assignment import linear_assignment
from affectlens.faces import Faces
from affectlens.metrics import box_iou

#: Time unit of the Kalman velocities and noise (one frame at 30 fps), in milliseconds.
_FRAME_MS = 1000.0 / 30.0
#: IoU a low-score detection needs to continue a track (ByteTrack's second-stage threshold).
_MIN_LOW_IOU = 0.5


@dataclass(frozen=True)
class TrackerOptions:
    """Options of :class:`FaceTracker`.

    Attributes:
        min_high_score: detections at or above this score go to the first association stage
            and may start tracks.
        min_low_score: detections in ``[min_low_score, min_high_score)`` may only continue
            confirmed tracks; lower ones are ignored (returned with ``track_id`` -1).
        min_iou: lowest IoU between a predicted track box and a detection to match them
            (the assignment minimises the sum of ``1 - IoU``).
        max_lost_ms: a track unmatched for longer than this (milliseconds) ends; within it, the
            track may be matched again and keeps its id.
        min_hits: detections (the first included) before a new track is confirmed and reported.
        iou_buffer: for the last matching stage, boxes are enlarged by this fraction of their
            width and height on each side (0 turns the stage off).

    Raises:
        ValueError: values out of range.
    """

    min_high_score: float = 0.6
    min_low_score: float = 0.3
    min_iou: float = 0.2
    max_lost_ms: float = 1000.0
    min_hits: int = 2
    iou_buffer: float = 0.3

    def __post_init__(self):
        if not 0.0 <= self.min_low_score <= self.min_high_score <= 1.0:
            raise ValueError("expected 0 <= min_low_score <= min_high_score <= 1, got "
                             f"min_low_score={self.min_low_score}, min_high_score={self.min_high_score}")
        if not 0.0 < self.min_iou < 1.0:
            raise ValueError(f"expected min_iou in (0, 1), got {self.min_iou}")
        if not self.max_lost_ms >= 0:
            raise ValueError(f"expected max_lost_ms >= 0, got {self.max_lost_ms}")
        if int(self.min_hits) != self.min_hits or self.min_hits < 1:
            raise ValueError(f"expected an integer min_hits >= 1, got {self.min_hits}")
        if not 0.0 <= self.iou_buffer <= 2.0:
            raise ValueError(f"expected iou_buffer in [0, 2], got {self.iou_buffer}")


class _Track:
    """Kalman state ``[cx, cy, w, h, vcx, vcy, vw, vh]``: pixels, and pixels per ``_FRAME_MS``."""

    def __init__(self, track_id: int, box: np.ndarray, ts: float, confirmed: bool):
        cx, cy, w, h = _xyxy_to_cxcywh(box)
        self.id = track_id
        self.x = np.array([cx, cy, w, h, 0, 0, 0, 0], np.float64)
        s = max(w, h, 1.0)
        self.P = np.diag([(0.1 * s) ** 2] * 4 + [(0.2 * s) ** 2] * 4)
        self.ts = ts  # time of the state
        self.last_match_ts = ts
        self.hits = 1
        self.confirmed = confirmed

    def predict(self, ts: float) -> None:
        """Move the state forward to ``ts`` (ms) at constant velocity."""
        dt = max(0.0, ts - self.ts) / _FRAME_MS
        if dt == 0:
            return
        F = np.eye(8)
        F[:4, 4:] = dt * np.eye(4)
        s = max(self.x[2], self.x[3], 1.0)
        q = np.array([0.05 * s] * 4 + [0.01 * s] * 4) ** 2 * dt
        self.x = F @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        self.P = F @ self.P @ F.T + np.diag(q)
        self.ts = ts

    def correct(self, box: np.ndarray, ts: float) -> None:
        """Fuse a matched detection box (``xyxy``) observed at ``ts``."""
        z = _xyxy_to_cxcywh(box)
        H = np.zeros((4, 8))
        H[:, :4] = np.eye(4)
        s = max(z[2], z[3], 1.0)
        R = np.diag([(0.05 * s) ** 2] * 4)
        S = H @ self.P @ H.T + R
        K = self.P @ H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (z - H @ self.x)
        self.P = (np.eye(8) - K @ H) @ self.P
        self.last_match_ts = ts
        self.hits += 1

    @property
    def box(self) -> np.ndarray:
        """Predicted ``xyxy`` box in pixels."""
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _xyxy_to_cxcywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, np.float64)
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])


def _enlarge(xyxy: np.ndarray, buffer: float) -> np.ndarray:
    """Boxes grown by ``buffer`` × their width and height on each side."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    pad = np.tile(xyxy[:, 2:] - xyxy[:, :2], 2) * buffer
    return xyxy + pad * np.array([-1, -1, 1, 1])


class FaceTracker:
    """Give every face a persistent ``track_id`` across the frames of one stream.

    Call :meth:`update` once per analysed frame, in time order. Ids start at 1 and are never
    reused by one tracker, not even after :meth:`reset`.

    Example:
        >>> tracker = FaceTracker(TrackerOptions(max_lost_ms=1500))
        >>> for faces in per_frame_faces:             # Faces from the detector, in time order
        ...     faces = tracker.update(faces)         # uses faces.info.timestamp_ms
        ...     smoother.forget(tracker.ended_track_ids)
    """

    def __init__(self, options: TrackerOptions | None = None):
        self.options = options or TrackerOptions()
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Forget every track (e.g. before a new stream); ids keep increasing."""
        self._tracks: list[_Track] = []
        self._last_ts: float | None = None
        self._frames = 0
        #: Ids of confirmed tracks that ended in the most recent :meth:`update` (or :meth:`finish`).
        self.ended_track_ids: list[int] = []

    @property
    def active_tracks(self) -> list[int]:
        """Ids of confirmed tracks that are matched or lost but not yet ended."""
        return [t.id for t in self._tracks if t.confirmed]

    def predict(self, timestamp_ms: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes of the confirmed tracks matched in the latest update, moved by their motion model
        to ``timestamp_ms`` — for frames analysed without running the detector.

        Returns:
            ``(ids (n,), xyxy (n, 4))``; the tracks' state is advanced to ``timestamp_ms``.

        Raises:
            ValueError: the timestamp is earlier than the previous one.
        """
        live = self._advance(timestamp_ms, lambda t: t.confirmed and t.last_match_ts == self._last_ts)
        ids = np.array([t.id for t in live], np.int64)
        boxes = np.array([t.box for t in live], np.float32).reshape(-1, 4)
        return ids, boxes

    def search_boxes(self, timestamp_ms: float, max_missed_ms: float = 150.0) -> np.ndarray:
        """Where to look for this frame's faces: the predicted ``(n, 4)`` boxes of every track
        (tentative or confirmed) matched in the latest update or within the last ``max_missed_ms``, advanced to
        ``timestamp_ms``. Used to run the detector on windows around them only; tracks lost for
        longer wait for the next full-frame pass (until ``max_lost_ms`` ends them).

        Raises:
            ValueError: the timestamp is earlier than the previous one.
        """
        live = self._advance(timestamp_ms, lambda t: t.last_match_ts == self._last_ts
                             or timestamp_ms - t.last_match_ts <= max_missed_ms)
        return np.array([t.box for t in live], np.float32).reshape(-1, 4)

    def _advance(self, timestamp_ms: float, which) -> list[_Track]:
        """The tracks for which ``which(track)`` holds, moved by their motion model to ``timestamp_ms``.

        Raises:
            ValueError: the timestamp is earlier than the previous update's.
        """
        if self._last_ts is not None and timestamp_ms < self._last_ts:
            raise ValueError(f"expected timestamps that do not go backwards, got {timestamp_ms} ms after "
                             f"{self._last_ts} ms")
        live = [t for t in self._tracks if which(t)]
        for t in live:
            t.predict(float(timestamp_ms))
        return live

    def update(self, faces: Faces, timestamp_ms: float | None = None) -> Faces:
        """Associate one frame's faces with the tracks.

        Args:
            faces: detections of one frame (not changed).
            timestamp_ms: frame time in milliseconds; defaults to ``faces.info.timestamp_ms``,
                else to the number of earlier updates × 33.3 ms.

        Returns:
            A copy of ``faces`` with the same rows in the same order and ``track_id`` set.
            No face is dropped: faces whose track is not yet confirmed (fewer than ``min_hits``
            detections) or that match nothing (e.g. a low score) get ``track_id`` -1.
            :attr:`ended_track_ids` then lists the tracks that ended in this update.

        Raises:
            ValueError: the timestamp is earlier than the previous one.
        """
        ts = timestamp_ms if timestamp_ms is not None else faces.info.timestamp_ms
        ts = float(self._frames * _FRAME_MS if ts is None else ts)
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"expected timestamps that do not go backwards, got {ts} ms after {self._last_ts} ms; "
                             "call reset() to start a new stream")
        first_frame = self._last_ts is None
        self._last_ts = ts
        self._frames += 1
        opts = self.options

        self.ended_track_ids = [t.id for t in self._tracks if ts - t.last_match_ts > opts.max_lost_ms and t.confirmed]
        self._tracks = [t for t in self._tracks if ts - t.last_match_ts <= opts.max_lost_ms]
        for t in self._tracks:
            t.predict(ts)

        scores = faces.det_score
        high = np.flatnonzero(scores >= opts.min_high_score)
        low = np.flatnonzero((scores >= opts.min_low_score) & (scores < opts.min_high_score))
        free = list(range(len(self._tracks)))  # track indices not matched yet
        matched = self._associate(faces.xyxy, high, free, opts.min_iou)
        confirmed_free = [i for i in free if self._tracks[i].confirmed]
        low_matched = self._associate(faces.xyxy, low, confirmed_free, max(opts.min_iou, _MIN_LOW_IOU))
        free = [i for i in free if i not in low_matched.values()]
        matched.update(low_matched)
        if opts.iou_buffer > 0:
            rest = np.array([d for d in high if d not in matched], np.int64)
            matched.update(self._associate(faces.xyxy, rest, free, opts.min_iou, opts.iou_buffer))

        ids = np.full(len(faces), -1, np.int64)
        for d, ti in matched.items():
            t = self._tracks[ti]
            t.correct(faces.xyxy[d], ts)
            t.confirmed = t.confirmed or t.hits >= opts.min_hits
            if t.confirmed:
                ids[d] = t.id
        kept = []
        for i, t in enumerate(self._tracks):
            if i in free and not t.confirmed:
                continue  # a tentative track that missed a frame
            if i in free:
                t.x[6:8] = 0.0  # a lost face keeps moving but stops changing size
            kept.append(t)
        for d in high:
            if d not in matched:
                t = _Track(self._next_id, faces.xyxy[d], ts, confirmed=first_frame or opts.min_hits <= 1)
                self._next_id += 1
                kept.append(t)
                if t.confirmed:
                    ids[d] = t.id
        self._tracks = kept
        return faces.replace(track_id=ids)

    def _associate(self, xyxy: np.ndarray, dets: np.ndarray, free: list[int], min_iou: float,
                   buffer: float = 0.0) -> dict[int, int]:
        """Detection index → track index for pairs with IoU ≥ ``min_iou`` under the optimal
        assignment of ``dets`` to the tracks ``free``; matched tracks are removed from ``free``."""
        if len(dets) == 0 or not free:
            return {}
        boxes = np.stack([self._tracks[i].box for i in free])
        iou = box_iou(_enlarge(xyxy[dets], buffer), _enlarge(boxes, buffer))
        out = {int(dets[r]): free[c] for r, c in linear_assignment(1.0 - iou) if iou[r, c] >= min_iou}
        for ti in out.values():
            free.remove(ti)
        return out

    def finish(self) -> list[int]:
        """End every remaining track (at the end of a stream).

        Returns:
            The ids of the confirmed tracks ended (also in :attr:`ended_track_ids`).
        """
        self.ended_track_ids = [t.id for t in self._tracks if t.confirmed]
        self._tracks = []
        return list(self.ended_track_ids)
