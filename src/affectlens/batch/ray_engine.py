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
from affectlens.errors import AffectLensError

logger = logging.getLogger(__name__)



class EngineError(AffectLensError, RuntimeError):
    """The batch engine cannot start (e.g. no Ray cluster at the given address)."""


_WORKERS: dict = {}  # per Ray worker process: model sha256 -> ItemWorker
_MODELS: dict = {}  # per Ray worker process: model sha256 -> spec path of the unpacked model


def unpack_model(model_sha256: str, model_box: list) -> str:
    """The spec path of a shipped model in this Ray worker process, unpacked from the object store
    on first use only (``model_box`` holds its ObjectRef, so Ray does not resolve it per task).

    Used by the batch tasks and by the service's video jobs (``affectlens serve --engine ray``).
    """
    import ray

    if model_sha256 not in _MODELS:
        model = ray.get(model_box[0])
        folder = Path(tempfile.mkdtemp(prefix="affectlens-model-"))
        (folder / model["file"]).write_bytes(model["onnx"])
        spec_path = folder / "model.json"
        spec_path.write_text(model["spec_json"])
        _MODELS[model_sha256] = str(spec_path)
    return _MODELS[model_sha256]


def _worker_for(options: BatchOptions, out_dir: str, threads: int, model_sha256: str, model_box: list):
    """This Ray worker process's ItemWorker (one model load per process and model)."""
    from affectlens.batch.worker import ItemWorker

    key = (model_sha256, out_dir, threads, options)
    if key not in _WORKERS:
        _WORKERS[key] = ItemWorker(options, out_dir, threads=threads, model=unpack_model(model_sha256, model_box))
    return _WORKERS[key]


def _process(item: BatchItem, options: BatchOptions, out_dir: str, threads: int, model_sha256: str,
             model_box: list, reports=None) -> dict:
    report = (lambda *msg: reports.put_nowait(msg)) if reports is not None else None
    return _worker_for(options, out_dir, threads, model_sha256, model_box).process(item, report)


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
        self._owns_ray = connect(options.address, options.workers * (options.threads or 1) or None)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.threads = options.threads or 1
        self.workers = options.workers or max(1, cpus // self.threads)
        self._task = ray.remote(num_cpus=self.threads, max_retries=0)(_process)
        model = pack_model(options.model_name())  # the driver's choice of variant, on every node
        self._model_sha256 = model["sha256"]
        self._model_ref = ray.put(model)  # in the object store once; each worker process fetches it once
        from ray.util.queue import Queue

        self._reports = Queue(maxsize=10_000, actor_options={"num_cpus": 0})  # live progress from the tasks

    def describe(self) -> str:
        return (f"ray: {self.workers} concurrent task(s) x {self.threads} ONNX Runtime thread(s) on "
                f"{int(self.ray.cluster_resources().get('CPU', 0))} cluster CPU(s)")

    def run(self, items: Iterable[BatchItem], on_start: Callable[[BatchItem], None] | None = None,
            on_progress: Callable | None = None) -> Iterator[tuple[BatchItem, dict | BaseException]]:
        """Yield ``(item, outcome)`` or ``(item, exception)`` as tasks finish (at most ``workers`` in flight).

        ``on_progress(item_id, frames_done, fraction)`` receives the tasks' live reports.
        """
        ray = self.ray
        queue = list(items)
        queue.reverse()
        running: dict = {}
        while queue or running:
            while queue and len(running) < self.workers:
                item = queue.pop()
                if on_start:
                    on_start(item)
                ref = self._task.remote(item, self.options, self.out_dir, self.threads, self._model_sha256,
                                        [self._model_ref], self._reports)
                running[ref] = item
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            self._drain(on_progress)
            for ref in ready:
                item = running.pop(ref)
                try:
                    yield item, ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - worker crash or item error: the caller retries
                    yield item, exc

    def _drain(self, on_progress) -> None:
        try:
            msgs = self._reports.get_nowait_batch(self._reports.qsize())
        except Exception:  # noqa: BLE001 - progress is best effort
            return
        for msg in msgs:
            if on_progress:
                on_progress(*msg)

    def close(self) -> None:
        try:
            self.ray.kill(self._reports.actor)
        except Exception:  # noqa: BLE001
            pass
        if self._owns_ray:
            self.ray.shutdown()


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join a Ray cluster (``address``) or start a local Ray instance, unless this process already
    initialised Ray. Returns whether this call started it (then the caller shuts it down).

    Raises:
        EngineError: Ray cannot be started or joined (the message names the address and the fix).
    """
    import ray

    if ray.is_initialized():
        return False
    if address:  # a cluster: its nodes have affectlens installed
        kwargs = {"address": address}
    else:  # a local instance: its workers import this same affectlens (e.g. a source checkout)
        kwargs = {"num_cpus": num_cpus, "runtime_env": {"env_vars": _env_for_workers()}}
    try:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, **kwargs)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the user needs one message
        raise EngineError(f"cannot start or join Ray (address {address or 'local'}): {exc}; "
                          "check the address, or use --engine local") from exc
    return True


def _env_for_workers() -> dict:
    """Environment the Ray workers need to import this same affectlens (e.g. a source checkout)."""
    import affectlens

    src = str(Path(affectlens.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": src + (os.pathsep + path if path else "")}
