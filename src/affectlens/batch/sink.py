"""The batch's Parquet dataset: one row per face per frame, one partition per source.

Layout (Hive partitioning, readable by pyarrow, pandas, DuckDB, Spark, Ray Data)::

    OUT/dataset/source=<item_id>/part-0.parquet

Each item's file is written under a temporary name and renamed when complete, so a reader
never sees half a file, and a rerun replaces an item's file instead of adding rows twice.
Columns: ``path``, ``kind``, ``subject``, ``session``, ``consent_ref``, then
:func:`~affectlens.video.aggregate.frame_row_fields` for the model's labels (a still image is
frame 0 at 0 ms, ``track_id`` -1). The partition column ``source`` holds the item id.

Example:
    >>> table = read_dataset("out/batch")           # pyarrow.Table with a "source" column
    >>> table.to_pandas().groupby("source")["happy"].mean()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from affectlens.video.aggregate import frame_row_fields

ITEM_COLUMNS = ("path", "kind", "subject", "session", "consent_ref")
_INT_COLUMNS = {"frame_index", "track_id", "reliable", "read"}
_STR_COLUMNS = {"emotion", "emotion_raw", "quality_reason", *ITEM_COLUMNS}


def dataset_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "dataset"


def parquet_schema(labels: Sequence[str]):
    """The pyarrow schema of every item file for a model with ``labels``."""
    import pyarrow as pa

    cols = [*ITEM_COLUMNS, *frame_row_fields(labels)]
    return pa.schema([(c, pa.string() if c in _STR_COLUMNS else pa.int64() if c in _INT_COLUMNS else pa.float64())
                      for c in cols])


def write_item_rows(out_dir: str | Path, item, rows: list[dict], labels: Sequence[str]) -> Path:
    """Write one item's rows (``frame_rows`` dicts) to its partition; returns the file path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(labels)
    meta = {c: getattr(item, c) for c in ITEM_COLUMNS}
    table = pa.Table.from_pylist([{**meta, **r} for r in rows], schema=schema)
    folder = dataset_dir(out_dir) / f"source={item.item_id}"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / "part-0.parquet"
    tmp = folder / f".part-0.parquet.tmp-{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def read_dataset(out_dir: str | Path):
    """The whole dataset as one ``pyarrow.Table`` (with the ``source`` partition column)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    root = dataset_dir(out_dir)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no dataset yet (run `affectlens batch ... --out {out_dir}`)")
    return ds.dataset(root, format="parquet", partitioning=ds.partitioning(pa.schema([("source", pa.string())]), flavor="hive"), ignore_prefixes=[".", "_"]).to_table()
