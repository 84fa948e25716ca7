"""Batch analytics: many images and videos, local by default, Ray when one machine is not enough.

Example:
    >>> from affectlens.batch import BatchOptions, run_batch, read_dataset
    >>> res = run_batch(["recordings/", "study.csv"], "out/batch", BatchOptions(workers=4, fps=5))
    >>> read_dataset("out/batch").to_pandas().groupby("source")["engagement"].mean()

See ``docs/batch.md``.
"""

from affectlens.batch.inputs import BatchItem, collect_items, make_item
from affectlens.batch.options import BatchOptions
from affectlens.batch.run import BatchResult, create_engine, run_batch
from affectlens.batch.sink import read_dataset

__all__ = ["BatchItem", "BatchOptions", "BatchResult", "collect_items", "create_engine", "make_item",
           "read_dataset", "run_batch"]
