"""A whole batch: expand the inputs, skip what is done, run the rest on an engine, record everything.

Outputs in ``out_dir``:

- ``items/<item_id>/`` — each item's ``affectlens image`` / ``affectlens video`` outputs.
- ``dataset/source=<item_id>/part-0.parquet`` — one row per face per frame (see :mod:`.sink`).
- ``manifest.jsonl`` / ``manifest.csv`` — every item's status, error, attempts, timings,
  output paths, model name and sha256, content sha256 (see :mod:`.manifest`).
- ``progress.json`` — live counts, throughput and ETA (see :mod:`.progress`).
- ``summary.html`` / ``summary.json`` — per-source (and per-subject) engagement and emotion
  shares, failed items.
- ``options.json`` — the resolved options, model name, sha256 and labels of the last run.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from affectlens.batch.inputs import BatchItem, collect_items
from affectlens.batch.manifest import Manifest
from affectlens.batch.options import BatchOptions
from affectlens.batch.progress import BatchProgress
from affectlens.batch.summary import write_summary
from affectlens.batch.worker import remove_stale_temps
from affectlens.errors import AffectLensError

logger = logging.getLogger(__name__)


class BatchBusyError(AffectLensError, RuntimeError):
    """Another batch holds the output folder."""


@dataclass
class BatchResult:
    """What a batch run did.

    Attributes:
        out_dir: the output folder.
        items: every item of the batch, in input order.
        processed / skipped: item ids processed in this run / skipped as already done.
        status: item id → final status (``done``, ``partial``, ``invalid``, ``failed``).
        problems: inputs that matched nothing (``(input, message)``).
        progress: the final :class:`BatchProgress` snapshot.
        summary: the ``summary.json`` content.
    """

    out_dir: Path
    items: list[BatchItem]
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    progress: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every item done (none failed, unreadable or partly decoded) and no unmatched input."""
        return not self.problems and all(s == "done" for s in self.status.values())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def create_engine(options: BatchOptions, out_dir: str | Path):
    """The engine named by ``options.engine``."""
    if options.engine == "ray":
        from affectlens.batch.ray_engine import RayEngine

        return RayEngine(options, out_dir)
    from affectlens.batch.local import LocalEngine

    return LocalEngine(options, out_dir)


def run_batch(inputs, out_dir: str | Path, options: BatchOptions | None = None, show_progress: bool = False,
              engine=None) -> BatchResult:
    """Analyse many images and videos, resumably.

    Args:
        inputs: files, folders, glob patterns and manifest CSVs (see :func:`collect_items`).
        out_dir: the output folder; a rerun into the same folder skips what is done.
        options: :class:`BatchOptions`.
        show_progress: draw a progress bar on stderr.
        engine: an already created engine for ``out_dir`` (default: one made by
            :func:`create_engine` and closed at the end); the caller closes its own.

    Returns:
        :class:`BatchResult`.

    Raises:
        ModelLoadError: the emotion model cannot be found or fails its sha256 check.
        BatchBusyError: another batch is writing to ``out_dir``.
        ImportError: pyarrow (or, for ``engine="ray"``, Ray) is not installed.
        ValueError: a manifest CSV without a ``path`` column.

    Example:
        >>> res = run_batch(["calls/", "extra.mp4"], "out/batch", BatchOptions(fps=5))
        >>> res.status, res.summary["faces"]
    """
    import pyarrow  # noqa: F401 - the dataset needs it; fail here, not once per item in the workers

    from affectlens.models.registry import resolve_spec

    options = options or BatchOptions()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        return _run(inputs, out, options, show_progress, engine, resolve_spec(options.model_name()))


@contextmanager
def _exclusive(out: Path):
    """Hold ``out/.lock`` for the run: two batches writing one folder would undo each other's temp files."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(out / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BatchBusyError(f"{out}: another batch is writing to this folder (it holds {out / '.lock'}); "
                                 "wait for it to finish or choose another --out") from None
        yield


def _run(inputs, out: Path, options: BatchOptions, show_progress: bool, engine, spec) -> BatchResult:
    key = options.results_key(spec.sha256)
    _write_options(out, options, spec, key)
    items, problems = collect_items(inputs)
    manifest = Manifest(out)
    removed = remove_stale_temps(out)
    if removed:
        logger.info("removed %d temporary output(s) of an interrupted run", removed)
    result = BatchResult(out, items, problems=problems)
    todo = []
    for it in items:
        if manifest.can_skip(it, key):
            result.skipped.append(it.item_id)
        else:
            todo.append(it)
    sizes = {it.item_id: _size(it.path) for it in todo}
    progress = BatchProgress(len(todo), sum(sizes.values()), len(result.skipped), out, show=show_progress)
    base = {"model": spec.name, "model_sha256": spec.sha256, "results_key": key, "engine": options.engine}
    own_engine = engine is None
    engine = engine or (create_engine(options, out) if todo else None)
    try:
        if engine is not None and todo:
            logger.info("%s; %d item(s) to process, %d skipped", engine.describe(), len(todo), len(result.skipped))
            _process_all(engine, todo, options, manifest, progress, base, result, sizes)
    finally:
        if engine is not None and own_engine:  # an engine handed in stays open for its owner's next batch
            engine.close()
        manifest.close()
    ids = [it.item_id for it in items]
    for i in ids:
        result.status[i] = manifest.latest.get(i, {}).get("status", "failed")
    manifest.write_csv(ids)
    result.progress = progress.close()
    totals = {**result.progress, "engine": options.engine, "finished_at": _now()}
    result.summary = write_summary(out, [manifest.latest[i] for i in ids if i in manifest.latest],
                                   spec.labels, totals)
    return result


def _process_all(engine, todo: list[BatchItem], options: BatchOptions, manifest: Manifest,
                 progress: BatchProgress, base: dict, result: BatchResult, sizes: dict) -> None:
    """Run ``todo`` in waves: each wave retries the items whose previous attempt crashed."""
    attempts: dict[str, int] = {}
    started: dict[str, str] = {}

    def on_start(item: BatchItem) -> None:
        started[item.item_id] = _now()
        attempts[item.item_id] = attempts.get(item.item_id, 0) + 1

    def on_progress(item_id: str, frames_done: int, fraction: float | None) -> None:
        progress.live(item_id, frames_done, fraction, sizes.get(item_id))

    wave = todo
    while wave:
        retry = []
        for item, res in engine.run(wave, on_start, on_progress):
            meta = {"item": item.item_id, "path": item.path, "kind": item.kind, "subject": item.subject,
                    "session": item.session, "consent_ref": item.consent_ref, **base,
                    "attempts": attempts[item.item_id], "started_at": started[item.item_id]}
            if isinstance(res, BaseException):
                err = f"{type(res).__name__}: {res}".strip()
                if attempts[item.item_id] < options.max_attempts:
                    logger.warning("attempt %d of %s failed (%s); will retry", attempts[item.item_id],
                                   item.path, err)
                    retry.append(item)
                    progress.forget(item.item_id)
                    continue
                res = {"status": "failed", "error": err, "frames": 0, "faces": 0, "outputs": {}, "parquet": None}
            entry = {**meta, **res, "finished_at": _now()}
            manifest.record(entry)
            result.processed.append(item.item_id)
            progress.update(entry, sizes.get(item.item_id))
        wave = retry


def _write_options(out: Path, options: BatchOptions, spec, key: str) -> None:
    """``OUT/options.json``: the resolved options of this run, the model and the results key."""
    import json
    from dataclasses import asdict

    from affectlens import __version__

    doc = {"affectlens_version": __version__, "options": asdict(options), "model": spec.name,
           "model_sha256": spec.sha256, "labels": list(spec.labels), "results_key": key}
    tmp = out / "options.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, out / "options.json")


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
