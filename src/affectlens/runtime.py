"""ONNX Runtime session settings shared by every model we run (detector, classifier, smoothers).

One thread policy for the whole library: ``threads=0`` means "the CPUs this process may use"
(its affinity, not the machine's total), and worker threads do not spin-wait between runs.
Spinning makes a lone session a little faster, but our pipeline alternates two sessions
(detector, classifier) and the service runs several: spinning threads of the idle one then
steal the cores of the busy one.
"""

from __future__ import annotations

import onnxruntime as ort

from affectlens.cpu import cpu_info


def resolve_threads(threads: int = 0) -> int:
    """Intra-op threads to use: ``threads`` if positive, else the CPUs this process may run on.

    Raises:
        ValueError: negative ``threads``.
    """
    if threads < 0:
        raise ValueError(f"threads must be 0 (all usable CPUs) or a positive count, got {threads}")
    return threads or cpu_info().cores


def session_options(threads: int = 0) -> ort.SessionOptions:
    """:class:`onnxruntime.SessionOptions` with the library's thread policy (see module docstring)."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = resolve_threads(threads)
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def thread_policy(threads: int = 0) -> dict:
    """The policy as data, for ``affectlens doctor`` and the JSON outputs."""
    return {"intra_op_threads": resolve_threads(threads), "inter_op_threads": 1, "spin_wait": False,
            "onnxruntime": ort.__version__}
