"""The library's ONNX Runtime thread policy."""

from __future__ import annotations

import pytest

from affectlens.cpu import cpu_info
from affectlens.runtime import resolve_threads, session_options, thread_policy


def test_zero_threads_means_the_usable_cpus():
    assert resolve_threads(0) == cpu_info().cores
    assert resolve_threads(3) == 3


def test_negative_threads_are_refused():
    with pytest.raises(ValueError, match="threads must be 0"):
        resolve_threads(-1)


def test_session_options_do_not_spin_and_use_one_inter_op_thread():
    so = session_options(1)
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert thread_policy(1) == {**thread_policy(1), "intra_op_threads": 1, "spin_wait": False}
