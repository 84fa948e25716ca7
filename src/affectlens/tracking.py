"""Face tracks across video frames: ByteTrack-style association of boxes with motion prediction.

Tracks link boxes over time and carry **no identity**: there is no face recognition, so a
person who leaves and comes back after ``max_lost_ms`` gets a new track id.

Each track has a constant-velocity Kalman filter on its box centre and size. Every update:

1. predict every track to the frame's timestamp (so variable frame rates and skipped frames
   are handled by time, not by frame counts);
2. match high-score detections to tracks by IoU with the optimal (Hungarian) assignment;
3. match the remaining low-score detections to the remaining confirmed tracks (ByteTrack's
   second stage: it keeps tracks alive through blur and partial occlusion);
4. start tentative tracks from unmatched high-score detections; a track is confirmed after
   ``min_hits`` matches (at once in the first frame of a stream);
5. end tracks that have not been matched for more than ``max_lost_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectlens.assignment import linear_assignment
from affectlens.faces import Faces
from affectlens.metrics import box_iou

_FRAME_MS = 1000.0 / 30.0


@dataclass(frozen=True)
class TrackerOptions:
    """Options of :class:`FaceTracker`.

    Attributes:
        min_high_score: detections at or above this score go to the first association stage
            and may start tracks.
        min_low_score: detections between this and ``min_high_score`` may only continue
            existing tracks.
        min_iou: lowest IoU between a predicted track box and a detection to match them.
        max_lost_ms: a track unmatched for longer than this (milliseconds) ends.
        min_hits: matches before a new track is confirmed (reported with an id).

    Raises:
        ValueError: values out of range.
    """

    min_high_score: float = 0.6
    min_low_score: float = 0.3
    min_iou: float = 0.2
    max_lost_ms: float = 1000.0
    min_hits: int = 2

    def __post_init__(self):
        if not 0.0 <= self.min_low_score <= self.min_high_score <= 1.0:
            raise ValueError("expected 0 <= min_low_score <= min_high_score <= 1, got "
                             f"{self.min_low_score} and {self.min_high_score}")
        if not 0.0 < self.min_iou < 1.0:
            raise ValueError(f"min_iou must be in (0, 1), got {self.min_iou}")
        if self.max_lost_ms < 0:
            raise ValueError(f"max_lost_ms must be >= 0, got {self.max_lost_ms}")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")


class _Track:
    """Kalman state ``[cx, cy, w, h, vcx, vcy, vw, vh]`` (pixels and pixels per frame-time)."""

    def __init__(self, track_id: int, box: np.ndarray, ts: float, confirmed: bool):
        cx, cy, w, h = _xyxy_to_cxcywh(box)
        self.id = track_id
        self.x = np.array([cx, cy, w, h, 0, 0, 0, 0], np.float64)
        s = max(w, h)
        self.P = np.diag([(0.1 * s) ** 2] * 4 + [(0.2 * s) ** 2] * 4)
        self.ts = ts
        self.last_match_ts = ts
        self.hits = 1
        self.confirmed = confirmed

    def predict(self, ts: float) -> None:
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
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _xyxy_to_cxcywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, np.float64)
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])


class FaceTracker:
    """Give every face a persistent ``track_id`` across frames.

    Example:
        >>> tracker = FaceTracker()
        >>> for faces in per_frame_faces:             # Faces from the detector, in time order
        ...     faces = tracker.update(faces)         # uses faces.info.timestamp_ms
        ...     print(faces.track_id, tracker.ended_track_ids)
    """

    def __init__(self, options: TrackerOptions | None = None):
        self.options = options or TrackerOptions()
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids keep increasing (never reused by this tracker)."""
        self._tracks: list[_Track] = []
        self._last_ts: float | None = None
        self._frames = 0
        self.ended_track_ids: list[int] = []
        if not hasattr(self, "_next_id"):
            self._next_id = 1

    @property
    def active_tracks(self) -> list[int]:
        """Ids of confirmed tracks that are matched or lost but not yet ended."""
        return [t.id for t in self._tracks if t.confirmed]

    def update(self, faces: Faces, timestamp_ms: float | None = None) -> Faces:
        """Associate this frame's faces with the tracks.

        Args:
            faces: detections of one frame.
            timestamp_ms: frame time; defaults to ``faces.info.timestamp_ms``, else frame
                count × 33.3 ms.

        Returns:
            A copy of ``faces`` (same rows, same order) with ``track_id`` set; ``-1`` for
            faces whose track is not yet confirmed or that matched nothing.

        Raises:
            ValueError: the timestamp is earlier than the previous one.
        """
        ts = timestamp_ms if timestamp_ms is not None else faces.info.timestamp_ms
        if ts is None:
            ts = self._frames * _FRAME_MS
        ts = float(ts)
        if self._last_ts is not None and ts < self._last_ts:
            raise ValueError(f"timestamps must not go backwards: got {ts} ms after {self._last_ts} ms; "
                             "call reset() for a new stream")
        first_frame = self._last_ts is None
        self._last_ts = ts
        self._frames += 1
        opts = self.options
        for t in self._tracks:
            t.predict(ts)

        n = len(faces)
        ids = np.full(n, -1, np.int64)
        scores = faces.det_score
        high = np.flatnonzero(scores >= opts.min_high_score)
        low = np.flatnonzero((scores >= opts.min_low_score) & (scores < opts.min_high_score))

        unmatched_tracks = list(range(len(self._tracks)))
        matched = self._associate(faces.xyxy, high, unmatched_tracks, opts.min_iou)
        unmatched_high = [d for d in high if d not in matched]
        confirmed_left = [i for i in unmatched_tracks if self._tracks[i].confirmed]
        matched_low = self._associate(faces.xyxy, low, confirmed_left, max(opts.min_iou, 0.5))
        matched.update(matched_low)

        for d, ti in matched.items():
            t = self._tracks[ti]
            t.correct(faces.xyxy[d], ts)
            if not t.confirmed and t.hits >= opts.min_hits:
                t.confirmed = True
            if t.confirmed:
                ids[d] = t.id
        for d in unmatched_high:
            t = _Track(self._next_id, faces.xyxy[d], ts, confirmed=first_frame or opts.min_hits <= 1)
            self._next_id += 1
            self._tracks.append(t)
            if t.confirmed:
                ids[d] = t.id

        # End tracks: tentative ones that missed a frame, confirmed ones lost too long.
        matched_set = set(matched.values())
        self.ended_track_ids = []
        keep = []
        for i, t in enumerate(self._tracks):
            lost_ms = ts - t.last_match_ts
            if i in matched_set or lost_ms == 0:
                keep.append(t)
            elif not t.confirmed:
                continue
            elif lost_ms > opts.max_lost_ms:
                self.ended_track_ids.append(t.id)
            else:
                keep.append(t)
        self._tracks = keep
        return faces.replace(track_id=ids)

    def _associate(self, xyxy: np.ndarray, dets: np.ndarray, track_idx: list[int], min_iou: float) -> dict[int, int]:
        """Detection index → track index for IoU ≥ ``min_iou`` under the optimal assignment;
        matched tracks are removed from ``track_idx``."""
        if len(dets) == 0 or not track_idx:
            return {}
        boxes = np.stack([self._tracks[i].box for i in track_idx])
        iou = box_iou(xyxy[dets], boxes)
        out = {}
        for r, c in linear_assignment(1.0 - iou):
            if iou[r, c] >= min_iou:
                out[int(dets[r])] = track_idx[c]
        for ti in out.values():
            track_idx.remove(ti)
        return out

    def finish(self) -> list[int]:
        """End every remaining track (at the end of a stream); returns their ids."""
        ended = [t.id for t in self._tracks if t.confirmed]
        self._tracks = []
        self.ended_track_ids = ended
        return ended
