"""Frames from video files, folders of frames, webcams and streams, with container timestamps.

Timestamps come from the container (``CAP_PROP_POS_MSEC``), not from frame counts, so
variable-frame-rate files stay in sync. Cameras and streams keep real time too: the container's
times when the stream carries increasing ones, else a monotonic clock read as each frame arrives
(:class:`LiveTimestamps`); never ``last + 1000 / fps``. Rotation metadata is applied by OpenCV. A file that
stops decoding early is not an error: iteration ends and :attr:`VideoSource.report` says where
and why.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from affectlens.errors import InvalidImageError, InvalidVideoError
from affectlens.imageio import IMAGE_SUFFIXES, load_image

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".ts", ".3gp"})
_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.I)


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: 0-based frame number in the source (counting every decoded frame).
        timestamp_ms: presentation time in milliseconds from the start of the source.
        image: ``(h, w, 3)`` uint8 BGR.
    """

    index: int
    timestamp_ms: float
    image: np.ndarray


@dataclass
class SourceReport:
    """What was read from a source; filled in while iterating.

    Attributes:
        source: the path, URL or camera index as given.
        kind: ``"file"``, ``"frames"`` (a folder of images), ``"camera"`` or ``"stream"``.
        width / height: frame size in pixels (after rotation).
        fps_nominal: frame rate the container announces (0 when unknown).
        frames_announced: frame count the container announces (0 when unknown).
        frames_decoded: frames decoded so far (including skipped ones).
        frames_yielded: frames handed out after sampling.
        last_timestamp_ms: timestamp of the last decoded frame.
        stopped_early: decoding ended well before the announced length (truncated/corrupt file).
        problems: human-readable notes (e.g. where decoding stopped, unreadable frame files).
    """

    source: str
    kind: str
    width: int = 0
    height: int = 0
    fps_nominal: float = 0.0
    frames_announced: int = 0
    frames_decoded: int = 0
    frames_yielded: int = 0
    last_timestamp_ms: float | None = None
    stopped_early: bool = False
    problems: list[str] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class LiveTimestamps:
    """Timestamps of a camera or stream, in milliseconds from its first frame.

    The first two frames decide: when the container reports finite, increasing times
    (``CAP_PROP_POS_MSEC`` of an RTSP/HTTP stream with timestamps), those are used, relative to
    the first frame; otherwise (a webcam that reports 0 or nothing) a monotonic clock read when
    each frame is grabbed. A container time that stops increasing later falls back to the clock
    for that frame. Times always increase (by at least 1 microsecond).

    Args:
        clock: seconds from a monotonic clock (``time.monotonic``; replaceable in tests).

    Example:
        >>> stamps = LiveTimestamps()
        >>> ts = stamps(cap.get(cv2.CAP_PROP_POS_MSEC))   # right after cap.grab()
    """

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.source: str | None = None  # "container" or "clock", once decided
        self._t0_clock: float | None = None
        self._first_pos: float | None = None
        self._last_pos: float | None = None
        self._last: float | None = None

    def __call__(self, pos_ms: float) -> float:
        now_ms = 1000.0 * self.clock()
        pos_ok = pos_ms is not None and math.isfinite(pos_ms) and pos_ms >= 0
        if self._last is None:
            self._t0_clock, self._first_pos = now_ms, (pos_ms if pos_ok else None)
            self._last_pos = self._first_pos
            self._last = 0.0
            return 0.0
        increasing = pos_ok and self._last_pos is not None and pos_ms > self._last_pos
        if self.source is None:
            self.source = "container" if increasing else "clock"
        if self.source == "container" and increasing:
            ts = pos_ms - self._first_pos
        else:
            ts = now_ms - self._t0_clock
        if pos_ok:
            self._last_pos = pos_ms
        ts = max(ts, self._last + 1e-3)
        self._last = ts
        return ts


def source_kind(source: str | int | Path) -> str:
    """``"camera"`` for an int or digit string, ``"stream"`` for a URL, ``"frames"`` for a folder,
    else ``"file"``."""
    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "camera"
    if isinstance(source, str) and _URL.match(source):
        return "stream"
    return "frames" if Path(source).is_dir() else "file"


class VideoSource:
    """Iterate the frames of a video source, sampled and cut.

    Args:
        source: video file, folder of frame images (sorted by name), webcam index, or URL.
        every: keep every N-th decoded frame (1 = all).
        fps: keep frames at about this rate instead (by timestamp; ``None`` = off).
        start_s / end_s: keep frames with ``start_s <= t < end_s`` seconds.
        frames_fps: frame rate assumed for a folder of frames (timestamps = index / fps).

    Raises:
        InvalidVideoError: missing or empty file, a container or codec OpenCV cannot open, no
            decodable frame, bad options. The message names the source.

    Example:
        >>> with VideoSource("talk.mp4", fps=5) as src:
        ...     for frame in src:
        ...         print(frame.index, frame.timestamp_ms, frame.image.shape)
        >>> src.report.stopped_early
    """

    def __init__(self, source: str | int | Path, every: int = 1, fps: float | None = None,
                 start_s: float | None = None, end_s: float | None = None, frames_fps: float = 30.0):
        if every < 1:
            raise InvalidVideoError(f"every must be >= 1, got {every}")
        if fps is not None and fps <= 0:
            raise InvalidVideoError(f"fps must be > 0, got {fps}")
        if start_s is not None and end_s is not None and end_s <= start_s:
            raise InvalidVideoError(f"end ({end_s} s) must be after start ({start_s} s)")
        self.source = str(source)
        self.kind = source_kind(source)
        self.every, self.fps, self.frames_fps = every, fps, frames_fps
        self.start_ms = 0.0 if start_s is None else 1000.0 * start_s
        self.end_ms = math.inf if end_s is None else 1000.0 * end_s
        self.report = SourceReport(self.source, self.kind, problems=[])
        self._cap: cv2.VideoCapture | None = None
        self._files: list[Path] = []
        self._open()

    # ------------------------------------------------------------------ opening
    def _open(self) -> None:
        if self.kind == "frames":
            self._files = sorted(f for f in Path(self.source).iterdir()
                                 if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                raise InvalidVideoError(f"{self.source}: folder holds no frame images")
            first = load_image(self._files[0])
            self.report.height, self.report.width = first.shape[:2]
            self.report.fps_nominal, self.report.frames_announced = self.frames_fps, len(self._files)
            return
        if self.kind == "file":
            p = Path(self.source)
            if not p.exists():
                raise InvalidVideoError(f"{p}: no such file")
            if p.stat().st_size == 0:
                raise InvalidVideoError(f"{p}: empty file (0 bytes)")
        target = int(self.source) if self.kind == "camera" else self.source
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            what = {"camera": "cannot open camera", "stream": "cannot connect to stream"}.get(
                self.kind, "cannot open video (unsupported container or codec, or not a video)")
            raise InvalidVideoError(f"{self.source}: {what}")
        self._cap = cap
        self.report.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.report.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.report.fps_nominal = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.report.frames_announced = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))

    # ------------------------------------------------------------------ iteration
    def _decoded(self) -> Iterator[tuple[int, float, object]]:
        """(index, timestamp_ms, retrieve) for every decoded frame; ``retrieve()`` gives the image."""
        if self.kind == "frames":
            for i, f in enumerate(self._files):
                def retrieve(f=f):
                    try:
                        return load_image(f)
                    except InvalidImageError as exc:
                        self.report.problems.append(str(exc))
                        return None
                yield i, 1000.0 * i / self.frames_fps, retrieve
            return
        cap = self._cap
        fallback_dt = 1000.0 / self.report.fps_nominal if self.report.fps_nominal > 0 else 1000.0 / 30
        live = LiveTimestamps() if self.kind in ("camera", "stream") else None
        i, last_ts = 0, None
        while cap.grab():
            ts = float(cap.get(cv2.CAP_PROP_POS_MSEC))
            if live is not None:
                ts = live(ts)
            elif not math.isfinite(ts) or (last_ts is not None and ts <= last_ts):
                # a file frame without a usable time: one nominal step after the previous one
                ts = (last_ts + fallback_dt) if last_ts is not None else max(0.0, ts if math.isfinite(ts) else 0.0)
            last_ts = ts

            def retrieve():
                ok, img = cap.retrieve()
                return img if ok else None
            yield i, ts, retrieve
            i += 1

    def __iter__(self) -> Iterator[VideoFrame]:
        rep = self.report
        next_due = self.start_ms
        kept_any = False
        for i, ts, retrieve in self._decoded():
            rep.frames_decoded = i + 1
            rep.last_timestamp_ms = ts
            if ts < self.start_ms:
                continue
            if ts >= self.end_ms:
                break
            if self.fps is not None:
                if ts + 1e-6 < next_due:
                    continue
                next_due = max(next_due + 1000.0 / self.fps, ts)  # no bursts after gaps
            elif i % self.every:
                continue
            img = retrieve()
            if img is None:
                continue
            if img.ndim == 2 or img.shape[2] != 3:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_BGRA2BGR)
            kept_any = True
            rep.frames_yielded += 1
            yield VideoFrame(i, ts, img)
        self._finish(kept_any)

    def _finish(self, kept_any: bool) -> None:
        rep = self.report
        if rep.frames_decoded == 0 and self.kind != "frames":
            what = {"file": "no decodable frame (unsupported codec or corrupt file)",
                    "stream": "no frame received from the stream", "camera": "no frame received from the camera"}
            raise InvalidVideoError(f"{self.source}: {what[self.kind]}")
        announced = rep.frames_announced
        if self.kind == "file" and announced and self.end_ms == math.inf and \
                rep.frames_decoded < announced - max(3, int(0.02 * announced)):
            rep.stopped_early = True
            t = f"{rep.last_timestamp_ms / 1000:.2f} s" if rep.last_timestamp_ms is not None else "the start"
            rep.problems.append(f"{self.source}: decoding stopped after {rep.frames_decoded} of {announced} "
                                f"announced frames (at {t}); the file may be truncated or corrupt")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
