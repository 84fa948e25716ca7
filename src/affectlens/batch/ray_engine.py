"""The Ray engine: the same work as Ray tasks, on a local Ray instance or an existing cluster.

- Ray schedules the tasks (each asks for ``threads`` CPUs); we only submit and collect.
- The emotion model (spec + ONNX bytes) is put in Ray's object store once; each Ray worker
  process unpacks it and builds its :class:`~affectlens.batch.worker.ItemWorker` on its first
  task and keeps it for the next ones (one model load per worker process, not per item).
- A task whose worker process dies fails with a Ray error; the caller records the attempt and
  resubmits a bounded number of times (``max_retries=0`` here, so the count is ours).
- Inputs and the output folder are paths: on a cluster they must be on storage every node
  mounts at the same path, and every node needs ``pip install 'affectlens[batch]'``.

Ray Data is not used for the items themselves: each item writes many files and needs its own
status and retry record, which maps onto tasks; the Parquet dataset it produces is what Ray
Data reads best (``ray.data.read_parquet(OUT + "/dataset")``).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from affectlens.batch.inputs import BatchItem
from affectlens.batch.options import BatchOptions

logger = logging.getLogger(__name__)

_WORKERS: dict = {}  # per Ray worker process: model sha256 -> ItemWorker


def _worker_for(options: BatchOptions, out_dir: str, threads: int, model: dict):
    from affectlens.batch.worker import ItemWorker

    key = (model["sha256"], out_dir, threads, options)
    if key not in _WORKERS:
        folder = Path(tempfile.mkdtemp(prefix="affectlens-model-"))
        (folder / model["file"]).write_bytes(model["onnx"])
        spec_path = folder / "model.json"
        spec_path.write_text(model["spec_json"])
        _WORKERS[key] = ItemWorker(options, out_dir, threads=threads, model=str(spec_path))
    return _WORKERS[key]


def _process(item: BatchItem, options: BatchOptions, out_dir: str, threads: int, model: dict) -> dict:
    return _worker_for(options, out_dir, threads, model).process(item)


def pack_model(model: str | None) -> dict:
    """The emotion model as one picklable dict (spec JSON + ONNX bytes), verified by sha256."""
    import json

    from affectlens.models.registry import resolve_spec
    from affectlens.models.spec import verify_model_file

    spec = resolve_spec(model)
    path = verify_model_file(spec)
    return {"sha256": spec.sha256, "file": spec.file, "onnx": Path(path).read_bytes(),
            "spec_json": json.dumps(spec.to_dict())}


class RayEngine:
    """Runs items as Ray tasks.

    Args:
        options: the batch options (``address``, ``workers``, ``threads``).
        out_dir: the batch output folder (shared storage on a cluster).

    Raises:
        ImportError: Ray is not installed (``pip install 'affectlens[batch]'``).
    """

    name = "ray"

    def __init__(self, options: BatchOptions, out_dir: str | Path):
        import ray

        self.ray = ray
        self.options = options
        self.out_dir = str(Path(out_dir).resolve())
        self._owns_ray = False
        if not ray.is_initialized():
            local = {"num_cpus": options.workers * (options.threads or 1) or None}
            kwargs = {"address": options.address} if options.address else local
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     runtime_env={"env_vars": _env_for_workers()}, **kwargs)
            self._owns_ray = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.threads = options.threads or 1
        self.workers = options.workers or max(1, cpus // self.threads)
        self._task = ray.remote(num_cpus=self.threads, max_retries=0)(_process)
        self._model_ref = ray.put(pack_model(options.model))  # shipped once, shared by every task

    def describe(self) -> str:
        return (f"ray: {self.workers} concurrent task(s) x {self.threads} ONNX Runtime thread(s) on "
                f"{int(self.ray.cluster_resources().get('CPU', 0))} cluster CPU(s)")

    def run(self, items: Iterable[BatchItem],
            on_start: Callable[[BatchItem], None] | None = None) -> Iterator[tuple[BatchItem, dict | BaseException]]:
        """Yield ``(item, outcome)`` or ``(item, exception)`` as tasks finish (at most ``workers`` in flight)."""
        ray = self.ray
        queue = list(items)
        queue.reverse()
        running: dict = {}
        while queue or running:
            while queue and len(running) < self.workers:
                item = queue.pop()
                if on_start:
                    on_start(item)
                ref = self._task.remote(item, self.options, self.out_dir, self.threads, self._model_ref)
                running[ref] = item
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                item = running.pop(ref)
                try:
                    yield item, ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - worker crash or item error: the caller retries
                    yield item, exc

    def close(self) -> None:
        if self._owns_ray:
            self.ray.shutdown()


def _env_for_workers() -> dict:
    """Environment the Ray workers need to import this same affectlens (e.g. a source checkout)."""
    import affectlens

    src = str(Path(affectlens.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": src + (os.pathsep + path if path else "")}
