"""What this CPU can do for int8 inference, in one place.

ONNX Runtime's int8 convolutions run on one of three x86 paths: AMX tiles (Sapphire Rapids
and later), VNNI dot products (AVX-512 VNNI or AVX-VNNI), or plain AVX2 ``VPMADDUBSW``, whose
int16 pairwise sums saturate when u8 activations meet s8 weights spanning ±127. Our int8 files
are quantised with 7-bit weights (``reduce_range``), which keeps those sums in range, so they
hold their accuracy on every path; this module says which path a machine takes so that figures
can name it and the registry can pick the faster file.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass

#: ISA flags that decide the int8 path, as /proc/cpuinfo spells them.
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    """The processor as seen by this process.

    Attributes:
        model: marketing name (``/proc/cpuinfo`` model name, or ``platform.processor()``).
        machine: ``platform.machine()`` (``x86_64``, ``aarch64``...).
        flags: the subset of :data:`INT8_FLAGS` present.
        int8_path: ``"amx"``, ``"vnni"``, ``"avx2"`` or ``"other"`` (no x86 int8 SIMD known).
        cores: CPUs this process may run on (affinity), not the machine's total.
    """

    model: str
    machine: str
    flags: tuple[str, ...]
    int8_path: str
    cores: int

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for figures and logs, e.g. ``AMD EPYC 7B13 (x86_64, avx2; int8 path avx2, 2 cores)``."""
        return (f"{self.model} ({self.machine}, {', '.join(self.flags) or 'no x86 SIMD flags'}; "
                f"int8 path {self.int8_path}, {self.cores} cores)")


def _read_cpuinfo() -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def int8_path(flags: set[str] | tuple[str, ...]) -> str:
    """The int8 kernel family ONNX Runtime uses for these ISA flags."""
    f = set(flags)
    if {"amx_tile", "amx_int8"} <= f:
        return "amx"
    if "avx512_vnni" in f or "avx_vnni" in f:
        return "vnni"
    if "avx2" in f:
        return "avx2"
    return "other"


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's :class:`CpuInfo` (read once per process)."""
    model, flags = _read_cpuinfo()
    present = tuple(f for f in INT8_FLAGS if f in flags)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return CpuInfo(model=model or platform.processor() or "unknown", machine=platform.machine(),
                   flags=present, int8_path=int8_path(present), cores=cores)
