"""The batch manifest: what happened to every item, and what a rerun may skip.

``OUT/manifest.jsonl`` is an append-only log written by the driver alone (one line per
finished attempt, flushed and fsync'ed), so a killed batch leaves a valid log; the last line of
an item is its state. ``OUT/manifest.csv`` is a snapshot of those states, rewritten atomically.

A rerun skips an item whose last state is ``done``, ``partial`` or ``invalid`` when the
results key (model sha256 + options) is the same and the file is unchanged: the same size and
modification time, or else the same sha256. ``failed`` items (workers that crashed or raised
``max_attempts`` times) are tried again.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterable

from affectlens.batch.inputs import BatchItem
from affectlens.batch.worker import TERMINAL
from affectlens.models.spec import sha256_of

FIELDS = ("item", "path", "kind", "status", "error", "attempts", "started_at", "finished_at", "seconds", "cpu_seconds",
          "frames", "faces", "outputs", "parquet", "model", "model_sha256", "results_key", "content_sha256",
          "size_bytes", "mtime_ns", "subject", "session", "consent_ref", "worker", "engine")


class Manifest:
    """The manifest of one output folder.

    Args:
        out_dir: the batch output folder (``manifest.jsonl`` is read when present).
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / "manifest.jsonl"
        self.latest: dict[str, dict] = {}
        if self.path.exists():
            self._load()
        self._fh = None

    def _load(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # torn last line of a killed driver
            data = data[: data.rfind(b"\n") + 1]
            self.path.write_bytes(data)
        for line in data.decode("utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.latest[rec["item"]] = rec

    def record(self, entry: dict) -> None:
        """Append one item state (a dict with at least ``item``) and make it durable."""
        if self._fh is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.latest[entry["item"]] = entry

    def can_skip(self, item: BatchItem, results_key: str) -> bool:
        """True when ``item`` already has a kept result for the same content and options."""
        prev = self.latest.get(item.item_id)
        if not prev or prev.get("status") not in TERMINAL or prev.get("results_key") != results_key:
            return False
        if prev["status"] != "invalid" and not _outputs_exist(prev):
            return False
        try:
            st = os.stat(item.path)
        except OSError:
            return prev.get("size_bytes") is None  # still missing
        if prev.get("size_bytes") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns:
            return True
        return prev.get("content_sha256") is not None and prev["content_sha256"] == sha256_of(item.path)

    def write_csv(self, item_ids: Iterable[str] | None = None) -> Path:
        """Write ``manifest.csv`` (the latest state of ``item_ids``, default all) atomically."""
        ids = list(item_ids) if item_ids is not None else list(self.latest)
        out = self.out_dir / "manifest.csv"
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="ignore")
            w.writeheader()
            for i in ids:
                if i in self.latest:
                    row = dict(self.latest[i])
                    row["outputs"] = json.dumps(row.get("outputs") or {})
                    w.writerow(row)
        os.replace(tmp, out)
        return out

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _outputs_exist(entry: dict) -> bool:
    paths = list((entry.get("outputs") or {}).values()) + ([entry["parquet"]] if entry.get("parquet") else [])
    return bool(paths) and all(Path(p).exists() for p in paths)
