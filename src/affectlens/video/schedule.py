"""When to run the face detector on a video: every frame, every k-th, or as tracks allow.

Detection is the most expensive step of a video run (about 25–55 ms at 640×480 on 2 cores
against under 10 ms to classify a face), and between two detections the tracker's motion
model already knows where a steadily moving face will be. ``detect_every="auto"`` (0) runs
the detector on every frame while tracks are young or moving unpredictably, and leaves out
up to ``max_every - 1`` frames in a row while they are stable: after each detection the
tracker's predicted box of every confirmed track is compared with the box the detector found
(IoU); the gap grows by one frame after a detection whose tracks all matched their prediction
with IoU >= ``min_iou`` and no track started or ended, and falls back to 1 otherwise. A
detection is also forced at least every ``max_gap_ms`` of video time, so new faces appear
within that delay.
"""

from __future__ import annotations

import numpy as np

from affectlens.metrics import box_iou

#: ``detect_every`` value meaning "choose from track stability".
AUTO = 0


class DetectionScheduler:
    """Per-frame decision to run the detector.

    Args:
        every: ``k >= 1`` for a fixed period (1 = every frame), or :data:`AUTO` (0).
        max_every: longest period ``auto`` may reach, in analysed frames.
        min_iou: predicted-vs-detected box IoU from which a track counts as stable.
        max_gap_ms: ``auto`` detects at least this often (video time).

    Raises:
        ValueError: ``every`` < 0, ``max_every`` < 1 or ``min_iou`` outside (0, 1].
    """

    def __init__(self, every: int = 1, max_every: int = 4, min_iou: float = 0.7, max_gap_ms: float = 250.0):
        if every < 0 or max_every < 1 or not 0 < min_iou <= 1:
            raise ValueError(f"expected every >= 0 (0 = auto), max_every >= 1 and 0 < min_iou <= 1; "
                             f"got {every}, {max_every}, {min_iou}")
        self.every, self.max_every, self.min_iou, self.max_gap_ms = every, max_every, min_iou, max_gap_ms
        self.reset()

    def reset(self) -> None:
        """Start over (a new stream, or a scene cut)."""
        self.period = 1
        self._since: int | None = None  # frames left out since the last detection (None: none yet)
        self._last_detect_ms: float | None = None

    def should_detect(self, timestamp_ms: float, have_tracks: bool) -> bool:
        """Whether to run the detector on this frame (call once per analysed frame, in order):
        yes when there are no tracks to follow, when ``period - 1`` frames were left out since
        the last detection, or (``auto``) when ``max_gap_ms`` of video time has passed."""
        auto = self.every == AUTO
        period = self.period if auto else self.every
        overdue = auto and self._last_detect_ms is not None and timestamp_ms - self._last_detect_ms >= self.max_gap_ms
        detect = not have_tracks or overdue or self._since is None or self._since >= period - 1
        self._since = 0 if detect else self._since + 1
        if detect:
            self._last_detect_ms = timestamp_ms
        return detect

    def observe(self, predicted_ids: np.ndarray, predicted_xyxy: np.ndarray, detected_ids: np.ndarray,
                detected_xyxy: np.ndarray, started_or_ended: bool) -> None:
        """After a detection: compare the tracks' predicted boxes with the detected ones and
        lengthen or reset the ``auto`` period."""
        if self.every >= 1:
            return
        confirmed = [i for i, t in enumerate(detected_ids) if t > 0]
        pred = {int(t): b for t, b in zip(predicted_ids, predicted_xyxy)}
        ious = [float(box_iou(pred[int(detected_ids[i])][None], detected_xyxy[i][None])[0, 0])
                for i in confirmed if int(detected_ids[i]) in pred]
        stable = (not started_or_ended and len(ious) == len(confirmed) and len(ious) > 0
                  and min(ious) >= self.min_iou)
        self.period = min(self.period + 1, self.max_every) if stable else 1
