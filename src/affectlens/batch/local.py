"""The local engine: a process pool on this machine, one model load per worker process.

Each worker process builds one :class:`~affectlens.batch.worker.ItemWorker` when it starts
(detector and emotion model loaded once) with ONNX Runtime threads set to its share of the
CPUs. At most ``workers`` items are in flight, so a worker that dies (killed, out of memory)
costs only the items then running: the pool is rebuilt and those items are tried again.
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterable, Iterator

from affectlens.batch.inputs import BatchItem
from affectlens.batch.options import BatchOptions

logger = logging.getLogger(__name__)

_WORKER = None  # this process's ItemWorker
_REPORTS = None  # queue of live progress (item_id, frames_done, fraction) to the driver


def _init_worker(options: BatchOptions, out_dir: str, threads: int, reports=None) -> None:
    global _WORKER, _REPORTS
    from affectlens.batch.worker import ItemWorker

    _exit_with_parent()
    _REPORTS = reports
    _WORKER = ItemWorker(options, out_dir, threads=threads)


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """End this worker when the batch process is gone (killed or crashed), instead of lingering."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="affectlens-parent-watch").start()


def _process(item: BatchItem) -> dict:
    report = (lambda *msg: _REPORTS.put_nowait(msg)) if _REPORTS is not None else None
    return _WORKER.process(item, report)


class WorkerLost(RuntimeError):
    """A worker process died while it held the item."""


class LocalEngine:
    """Runs items in a :class:`~concurrent.futures.ProcessPoolExecutor`.

    Args:
        options: the batch options (``workers``, ``threads``).
        out_dir: the batch output folder.
    """

    name = "local"

    def __init__(self, options: BatchOptions, out_dir: str | Path):
        self.options = options
        self.out_dir = str(out_dir)
        self.workers, self.threads = options.local_plan()
        self._pool: ProcessPoolExecutor | None = None
        self._reports = None

    def describe(self) -> str:
        return f"local: {self.workers} worker process(es) x {self.threads} ONNX Runtime thread(s)"

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no forked ONNX Runtime / OpenCV thread state
        self._reports = ctx.Queue()  # a fresh one: a killed worker may have left the old one locked
        return ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.options, self.out_dir, self.threads, self._reports))

    def _drain(self, on_progress) -> None:
        import queue

        while self._reports is not None:
            try:
                msg = self._reports.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            if on_progress:
                on_progress(*msg)

    def run(self, items: Iterable[BatchItem], on_start: Callable[[BatchItem], None] | None = None,
            on_progress: Callable | None = None) -> Iterator[tuple[BatchItem, dict | BaseException]]:
        """Yield ``(item, outcome)`` or ``(item, exception)`` as items finish, in completion order.

        ``on_progress(item_id, frames_done, fraction)`` receives the workers' live reports.

        Items handed back with an exception are not retried here: the caller decides (it may
        pass them to a later :meth:`run`).
        """
        queue = list(items)
        queue.reverse()
        running: dict = {}
        self._pool = self._pool or self._new_pool()
        while queue or running:
            while queue and len(running) < self.workers:
                item = queue.pop()
                if on_start:
                    on_start(item)
                running[self._submit(item)] = item
            done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
            self._drain(on_progress)
            broken = False
            for fut in done:
                item = running.pop(fut)
                try:
                    yield item, fut.result()
                except BrokenProcessPool:
                    broken = True
                    yield item, WorkerLost(f"{item.path}: the worker process died while analysing it "
                                           "(killed, or out of memory)")
                except Exception as exc:  # noqa: BLE001 - reported per item, the batch goes on
                    yield item, exc
            if broken:
                for fut, item in list(running.items()):  # the pool is gone: so are these
                    running.pop(fut)
                    yield item, WorkerLost(f"{item.path}: the worker pool broke while analysing it "
                                           "(another worker died)")
                self._pool.shutdown(wait=False, cancel_futures=True)
                logger.warning("a worker process died; starting a new pool")
                self._pool = self._new_pool()

    def _submit(self, item: BatchItem):
        try:
            return self._pool.submit(_process, item)
        except BrokenProcessPool:  # a worker died while idle: nothing was lost, start afresh
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(_process, item)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
