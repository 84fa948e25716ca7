"""What a batch worker does with one item: the same outputs as ``affectlens image`` / ``video``,
plus the item's Parquet partition, written under temporary names and renamed when complete.

An item's outputs go to ``OUT/items/<item_id>/``: ``faces.json`` (the ``affectlens image --json``
document for that image, with ``annotated.jpg`` when asked) or the ``affectlens video`` outputs
(``frames.jsonl``, ``frames.csv``, ``intervals.csv``, ``summary.json``, ``report.html``,
``annotated.mp4``). While it runs the folder is ``<item_id>.tmp-<pid>``; only a finished item
has its final name.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

from affectlens.batch.inputs import BatchItem
from affectlens.batch.options import BatchOptions
from affectlens.batch.sink import write_item_rows
from affectlens.batch.stats import item_stats
from affectlens.errors import InvalidImageError, InvalidVideoError
from affectlens.faces import FrameInfo
from affectlens.models.spec import sha256_of

#: Item outcomes that a rerun keeps (same content, same options); ``failed`` items are retried.
TERMINAL = ("done", "partial", "invalid")


def items_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "items"


def remove_stale_temps(out_dir: str | Path, item_id: str | None = None) -> int:
    """Delete temporary item folders and Parquet files left by killed workers; returns how many."""
    out = Path(out_dir)
    pattern = f"{item_id}.tmp-*" if item_id else "*.tmp-*"
    stale = list(items_dir(out).glob(pattern))
    ds = out / "dataset"
    if ds.exists():
        stale += list(ds.glob(f"source={item_id or '*'}/.part-*.tmp-*"))
    for p in stale:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return len(stale)


class ItemWorker:
    """Holds one recognizer (models loaded once) and processes items one after another.

    Args:
        options: the batch's :class:`BatchOptions`.
        out_dir: the batch output folder.
        threads: ONNX Runtime threads for this worker.
        model: overrides ``options.model`` (e.g. a spec path where a Ray worker unpacked the
            shipped model).

    Example:
        >>> w = ItemWorker(BatchOptions(), "out/batch", threads=1)
        >>> w.process(make_item("talk.mp4"))["status"]
        'done'
    """

    def __init__(self, options: BatchOptions, out_dir: str | Path, threads: int = 1, model: str | None = None):
        from affectlens.recognizer import EmotionRecognizer
        from affectlens.video.analyzer import VideoAnalyzer

        import cv2

        cv2.setNumThreads(threads)  # OpenCV's own pool: this worker's share of the CPUs, no more
        self.options = options
        self.out_dir = Path(out_dir)
        vopts = options.video_options(threads)
        if model is not None:
            from dataclasses import replace

            vopts = replace(vopts, recognizer=replace(vopts.recognizer, model=model))
        self.recognizer = EmotionRecognizer(vopts.recognizer)
        self.analyzer = VideoAnalyzer(vopts, recognizer=self.recognizer)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.recognizer.labels

    def process(self, item: BatchItem, report=None) -> dict:
        """Analyse one item and write its outputs.

        Args:
            item: the item.
            report: optional callable ``(item_id, frames_done, fraction_done_or_None)``, called
                about once a second while a video runs (live progress for the driver).

        Returns:
            An outcome dict: ``status`` (``done``, ``partial`` — a video analysed up to a decoding
            problem —, or ``invalid`` — an unreadable input), ``error``, ``frames``, ``faces``,
            ``seconds`` (wall), ``cpu_seconds`` (this worker process's CPU time), ``outputs``
            (name → path), ``parquet``, ``stats``, ``content_sha256``, ``size_bytes``,
            ``mtime_ns``, ``worker``.

        Raises:
            Exception: anything unexpected (the engine retries the item, a bounded number of times).
        """
        t0, c0 = time.perf_counter(), time.process_time()
        remove_stale_temps(self.out_dir, item.item_id)
        final = items_dir(self.out_dir) / item.item_id
        tmp = items_dir(self.out_dir) / f"{item.item_id}.tmp-{os.getpid()}"
        tmp.mkdir(parents=True)
        base = {"worker": f"{platform.node()}:{os.getpid()}", **_file_facts(item.path)}
        try:
            if item.kind == "image":
                outcome, rows = self._image(item, tmp, final)
            else:
                outcome, rows = self._video(item, tmp, final, report)
        except (InvalidImageError, InvalidVideoError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            return {**base, "status": "invalid", "error": str(exc), "frames": 0, "faces": 0, "outputs": {},
                    "parquet": None, "stats": None, "seconds": round(time.perf_counter() - t0, 3),
                    "cpu_seconds": round(time.process_time() - c0, 3)}
        outcome["parquet"] = str(write_item_rows(self.out_dir, item, rows, self.labels))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return {**base, **outcome, "faces": len(rows), "seconds": round(time.perf_counter() - t0, 3),
                "cpu_seconds": round(time.process_time() - c0, 3)}

    def _image(self, item: BatchItem, tmp: Path, final: Path) -> tuple[dict, list[dict]]:
        from affectlens.image_run import analyse_image_file, images_document
        from affectlens.video.aggregate import frame_rows

        t0 = time.perf_counter()
        ann = tmp / "annotated.jpg" if self.options.annotate else None
        record, faces = analyse_image_file(self.recognizer, item.path, ann, blur_faces=self.options.blur_faces)
        outputs = {"faces_json": str(final / "faces.json")}
        if ann is not None:
            record["annotated"] = outputs["annotated"] = str(final / "annotated.jpg")
        doc = images_document([record], self.recognizer, time.perf_counter() - t0)
        (tmp / "faces.json").write_text(json.dumps(doc, indent=2) + "\n")
        h, w = record["height"], record["width"]
        rows = frame_rows([faces.replace(info=FrameInfo(item.path, 0, 0.0, (h, w)))])
        return {"status": "done", "error": "", "frames": 1, "outputs": outputs,
                "stats": item_stats(rows, self.labels)}, rows

    def _video(self, item: BatchItem, tmp: Path, final: Path, report=None) -> tuple[dict, list[dict]]:
        from affectlens.video.aggregate import frame_rows
        from affectlens.video.session import THUMBNAILS_PARTIAL, run_video
        from affectlens.video.store import read_frames

        self.analyzer.reset()
        result = run_video(item.path, tmp, analyzer=self.analyzer, run=self.options.run_options(),
                           progress=_throttled(item.item_id, report) if report else None)
        (tmp / THUMBNAILS_PARTIAL).unlink(missing_ok=True)  # a batch never resumes a video: no faces left behind
        frames = read_frames(tmp / "frames.jsonl", item.path)
        rows = frame_rows(frames)
        outputs = {k: str(final / Path(v).name) for k, v in result.files.items()}
        return {"status": "partial" if result.problems else "done", "error": "; ".join(result.problems),
                "frames": result.frames_analysed, "outputs": outputs,
                "stats": item_stats(rows, self.labels, result.summary)}, rows


def _throttled(item_id: str, report, every_s: float = 1.0):
    """A ``run_video`` progress callback that calls ``report`` at most every ``every_s`` seconds."""
    last = [0.0]

    def progress(frames_done: int, timestamp_ms: float, total_ms: float | None) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            fraction = min(1.0, timestamp_ms / total_ms) if total_ms else None
            try:
                report(item_id, frames_done, fraction)
            except Exception:  # noqa: BLE001 - progress is best effort, never fails an item
                pass

    return progress


def _file_facts(path: str) -> dict:
    """Size, modification time and sha256 of the input (``None`` s when it cannot be read)."""
    try:
        st = os.stat(path)
        return {"size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "content_sha256": sha256_of(path)}
    except OSError:
        return {"size_bytes": None, "mtime_ns": None, "content_sha256": None}
