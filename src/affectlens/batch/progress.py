"""Progress across a whole batch: items, frames and faces done, throughput and ETA.

The ETA divides the bytes still to read by the bytes-per-second so far (a 2-hour video counts
for more than a photo; a running video counts the share of its duration already analysed);
it is ``None`` until there is a rate. Frames include the running videos' frames so far (workers
report about once a second); faces are counted when an item finishes. Every update is also
written to ``OUT/progress.json`` (atomically) for dashboards or a service to poll.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


class BatchProgress:
    """Counts what a batch has done and renders it.

    Args:
        total_items: items to process in this run (skipped ones excluded).
        total_bytes: their size on disk.
        skipped: items skipped because an earlier run finished them.
        out_dir: where ``progress.json`` goes (``None`` = nowhere).
        show: draw a progress bar on stderr.
    """

    def __init__(self, total_items: int, total_bytes: int, skipped: int = 0, out_dir: str | Path | None = None,
                 show: bool = True):
        self.total_items, self.total_bytes, self.skipped = total_items, max(0, total_bytes), skipped
        self.items = self.ok = self.failed = self.frames = self.faces = self.bytes = 0
        self._live: dict[str, tuple[int, float]] = {}  # item running now -> (frames done, bytes done)
        self.t0 = time.perf_counter()
        self.path = Path(out_dir) / "progress.json" if out_dir else None
        self._bar = None
        if show:
            from tqdm import tqdm

            self._bar = tqdm(total=total_items, unit="item", file=sys.stderr, dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} items{postfix}")
        self._write()

    def update(self, outcome: dict, size_bytes: int | None) -> None:
        """Count one finished item (``outcome`` as returned by a worker, or a failure record)."""
        self.items += 1
        self.ok += outcome.get("status") in ("done", "partial")
        self.failed += outcome.get("status") not in ("done", "partial")
        self.frames += int(outcome.get("frames") or 0)
        self.faces += int(outcome.get("faces") or 0)
        self.bytes += int(size_bytes or 0)
        self._live.pop(outcome.get("item"), None)
        self._show(self._write(), 1)

    def live(self, item_id: str, frames_done: int, fraction: float | None, size_bytes: int | None) -> None:
        """A running item's report: frames analysed so far and the fraction of its duration done."""
        self._live[item_id] = (int(frames_done), float(fraction or 0.0) * int(size_bytes or 0))
        self._show(self._write(), 0)

    def forget(self, item_id: str) -> None:
        """Drop a running item's live counts (its attempt failed and it will be tried again)."""
        self._live.pop(item_id, None)

    def _show(self, snap: dict, finished: int) -> None:
        if self._bar is None:
            return
        eta = "?" if snap["eta_s"] is None else time.strftime("%H:%M:%S", time.gmtime(snap["eta_s"]))
        self._bar.set_postfix_str(f"{snap['frames']} frames, {snap['faces']} faces, "
                                  f"{snap['frames_per_s']:.1f} frames/s, {snap['items_per_s']:.2f} items/s, "
                                  f"{snap['failed']} failed, ETA {eta}", refresh=not finished)
        if finished:
            self._bar.update(finished)

    def snapshot(self) -> dict:
        """Counts, rates per second and ETA in seconds, as a JSON-ready dict."""
        dt = max(1e-9, time.perf_counter() - self.t0)
        frames = self.frames + sum(f for f, _ in self._live.values())
        done_bytes = self.bytes + sum(b for _, b in self._live.values())
        rate = done_bytes / dt
        left = max(0.0, self.total_bytes - done_bytes)
        eta = (left / rate if rate > 0 else None) if self.items < self.total_items else 0.0
        return {"items_total": self.total_items, "items_done": self.items, "ok": self.ok, "failed": self.failed,
                "skipped": self.skipped, "frames": frames, "faces": self.faces, "running": len(self._live),
                "seconds": round(dt, 3),
                "items_per_s": round(self.items / dt, 4), "frames_per_s": round(frames / dt, 3),
                "faces_per_s": round(self.faces / dt, 3), "bytes_per_s": round(rate, 1),
                "eta_s": None if eta is None else round(eta, 1)}

    def _write(self) -> dict:
        snap = self.snapshot()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"progress.json.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(snap) + "\n")
            os.replace(tmp, self.path)
        return snap

    def close(self) -> dict:
        if self._bar is not None:
            self._bar.close()
        return self._write()
