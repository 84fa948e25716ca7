"""Work ahead in a thread: while the models run on frame ``t``, the next frames are decoded.

OpenCV and FFmpeg release the GIL while decoding, so on 2 cores this hides most of the decode
time of a file (about 5–7 ms per 1080p H.264 frame) behind the detector and classifier. The
video analyzer uses the same helper to find the faces of the next frames while this frame's
are read (:meth:`~affectlens.video.analyzer.VideoAnalyzer.process_frames`).
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(items: Iterable[T], depth: int = 3, name: str = "affectlens-decode") -> Iterator[T]:
    """Iterate ``items`` with up to ``depth`` of them produced ahead by a background thread
    (called ``name``).

    The items come in the same order; an exception raised by ``items`` is raised here, at the
    position it happened. Closing the returned generator early (``break``) stops the thread
    after the item it is producing.

    Raises:
        ValueError: ``depth`` < 1.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put((_DONE, exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is _DONE:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def source_frames(src) -> Iterator:
    """The frames of an open :class:`~affectlens.video.source.VideoSource`: decoded ahead in a
    thread for files and folders of frames, read as they arrive for cameras and streams (where
    decoding ahead would only add latency)."""
    if src.report.kind not in ("file", "frames"):
        yield from src
        return
    frames = prefetched(src)
    try:
        yield from frames
    finally:
        frames.close()
