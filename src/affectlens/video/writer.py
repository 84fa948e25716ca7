"""Writing annotated videos that browsers play: H.264 in MP4 (PyAV), else VP9 or MPEG-4 Part 2 (OpenCV).

Chromium, Firefox and Safari play H.264 and VP9 in MP4 but not OpenCV's default ``mp4v``
(MPEG-4 Part 2). OpenCV's bundled FFmpeg has no H.264 encoder, so H.264 comes from PyAV
(``pip install 'affectlens[video]'``; its wheels bundle FFmpeg with libx264, GPL-2.0-or-later).
Without PyAV, ``codec="auto"`` falls back to OpenCV's ``mp4v`` and logs how to get a
browser-playable file; ``codec="vp9"`` uses OpenCV's libvpx (plays in browsers, but encodes
about ten times slower than the analysis itself).

Example:
    >>> with VideoWriter("out/annotated.mp4", fps=25, size_wh=(1280, 720)) as w:
    ...     for frame in frames:
    ...         w.write(frame)
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

CODECS = ("auto", "h264", "vp9", "mp4v")


def have_pyav() -> bool:
    """Whether PyAV (with an H.264 encoder) is importable."""
    try:
        import av  # noqa: F401
        from av.codec import Codec

        Codec("libx264", "w")
        return True
    except Exception:  # ImportError, or a PyAV build without libx264
        return False


def resolve_codec(codec: str = "auto") -> str:
    """The codec ``codec`` stands for here: ``"auto"`` is ``"h264"`` with PyAV, else ``"mp4v"``.

    Raises:
        ValueError: unknown codec, or ``"h264"`` without PyAV.
    """
    if codec not in CODECS:
        raise ValueError(f"codec: expected one of {', '.join(CODECS)}, got {codec!r}")
    if codec == "auto":
        if have_pyav():
            return "h264"
        logger.warning("PyAV is not installed: writing MPEG-4 Part 2 (mp4v), which browsers do not play; "
                       "`pip install 'affectlens[video]'` for H.264")
        return "mp4v"
    if codec == "h264" and not have_pyav():
        raise ValueError("codec 'h264' needs PyAV with libx264: pip install 'affectlens[video]' "
                         "(or use codec 'vp9', slower, or 'mp4v', not playable in browsers)")
    return codec


class VideoWriter:
    """Frames in, one video file out; even sizes and browser-friendly settings taken care of.

    Args:
        path: output file (``.mp4``; parent folder must exist).
        fps: frame rate of the output.
        size_wh: frame width and height in pixels (odd sizes are padded by one pixel for H.264).
        codec: ``"auto"``, ``"h264"``, ``"vp9"`` or ``"mp4v"`` (see the module docstring).
        crf: H.264 quality (lower is better; 23 is x264's default).

    Raises:
        ValueError: fps or size not positive, unknown codec, ``"h264"`` without PyAV.
        OSError: the file cannot be opened for writing.
    """

    def __init__(self, path: str | Path, fps: float, size_wh: tuple[int, int], codec: str = "auto", crf: int = 23):
        if not fps > 0:
            raise ValueError(f"fps: expected > 0, got {fps}")
        w, h = (int(v) for v in size_wh)
        if w <= 0 or h <= 0:
            raise ValueError(f"size_wh: expected positive width and height, got {size_wh}")
        self.path, self.size_wh = Path(path), (w, h)
        self.codec = resolve_codec(codec)
        self.frames = 0
        if self.codec == "h264":
            import av

            self._container = av.open(str(self.path), "w", options={"movflags": "+faststart"})
            self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            self._stream.width, self._stream.height = w + w % 2, h + h % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"preset": "veryfast", "crf": str(crf)}
            self._cv = None
        else:
            fourcc = cv2.VideoWriter_fourcc(*("vp09" if self.codec == "vp9" else "mp4v"))
            self._cv = cv2.VideoWriter(str(self.path), fourcc, float(fps), (w, h))
            if not self._cv.isOpened():
                raise OSError(f"{self.path}: cannot open a {self.codec} video writer")

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append one ``(h, w, 3)`` uint8 BGR frame of the size given at construction.

        Raises:
            ValueError: a frame of another size.
        """
        h, w = frame_bgr.shape[:2]
        if (w, h) != self.size_wh:
            raise ValueError(f"frame {self.frames}: expected {self.size_wh[0]}x{self.size_wh[1]}, got {w}x{h}")
        if self._cv is not None:
            self._cv.write(frame_bgr)
        else:
            import av

            if w % 2 or h % 2:
                frame_bgr = cv2.copyMakeBorder(frame_bgr, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24")
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush and close the file (safe to call twice)."""
        if self._cv is not None:
            self._cv.release()
            self._cv = None
        elif getattr(self, "_container", None) is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
