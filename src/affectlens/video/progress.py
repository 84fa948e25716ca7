"""A progress bar for video runs, in seconds of video, with the speed as a multiple of real time."""

from __future__ import annotations

import sys
import time


class VideoProgress:
    """A ``progress`` callable for :func:`~affectlens.video.session.run_video` that draws a tqdm bar.

    The bar counts seconds of video analysed (of the total, when the container announces it) and
    shows frames done and the speed as "× real time" (2.0× = one minute of video in 30 s). A
    resumed run's bar starts where the earlier attempt stopped; its speed and time remaining
    count this attempt's work only.

    Args:
        disable: draw nothing (e.g. ``--quiet``).
        file: where the bar goes (standard error by default, so results on stdout stay clean).

    Example:
        >>> with VideoProgress() as bar:
        ...     run_video("talk.mp4", "out/", progress=bar)
    """

    def __init__(self, disable: bool = False, file=None):
        self.disable, self.file = disable, file
        self._bar = None  # drawn at the first frame, not before (an unreadable file shows no empty bar)
        self._last_s = self._first_s = 0.0
        self._t0 = time.perf_counter()

    def __call__(self, frames_done: int, timestamp_ms: float, total_ms: float | None) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._t0 = time.perf_counter()
            # a resumed run starts part-way: tqdm's rate and time remaining count from there
            self._last_s = self._first_s = max(0.0, timestamp_ms / 1000.0)
            self._bar = tqdm(total=None, initial=self._first_s, disable=self.disable, file=self.file or sys.stderr,
                             dynamic_ncols=True, unit="s", bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} s of video "
                                                                      "[{elapsed}<{remaining}{postfix}]")
        bar = self._bar
        if total_ms and bar.total is None:
            bar.total = round(total_ms / 1000.0, 1)
        now_s = timestamp_ms / 1000.0
        bar.update(max(0.0, now_s - self._last_s))
        self._last_s = max(self._last_s, now_s)
        wall = time.perf_counter() - self._t0
        speed = f", {(self._last_s - self._first_s) / wall:.2f}× real time" if wall > 0 else ""
        bar.set_postfix_str(f"{frames_done} frames{speed}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "VideoProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
