"""run_batch refuses a second batch on the same output folder before touching anything."""

from __future__ import annotations

import pytest

fcntl = pytest.importorskip("fcntl")
pytest.importorskip("pyarrow")


def test_second_batch_on_the_same_folder_is_refused(tmp_path):
    from affectlens.batch import run_batch
    from affectlens.batch.run import BatchBusyError

    out = tmp_path / "out"
    out.mkdir()
    (out / "items").mkdir()
    stale = out / "items" / "clip-0123456789.tmp-999999"
    stale.mkdir()
    with open(out / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "another batch" holds the folder
        with pytest.raises(BatchBusyError, match="another batch is writing"):
            run_batch([tmp_path / "nothing.jpg"], out)
        assert stale.exists()  # its temp files were left alone
    res = run_batch([], out)  # lock released: runs (no items), and clears the stale temp folder
    assert res.items == [] and not stale.exists()
