"""CPU detection: the int8 path each ISA flag set takes, and this machine's reading."""

from __future__ import annotations

import pytest

from affectlens.cpu import INT8_FLAGS, cpu_info, int8_path


@pytest.mark.parametrize("flags, expected", [
    ({"sse4_2", "avx2"}, "avx2"),                                    # AMD EPYC (Zen 2/3), Haswell..
    ({"avx2", "avx512f"}, "avx2"),                                   # Skylake-SP: AVX-512 without VNNI
    ({"avx2", "avx512f", "avx512_vnni"}, "vnni"),                    # Cascade Lake, Ice Lake, Zen 4
    ({"avx2", "avx_vnni"}, "vnni"),                                  # Alder Lake (AVX-VNNI)
    ({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"}, "amx"),  # Sapphire Rapids
    ({"avx2", "amx_tile"}, "avx2"),                                  # tiles without int8 AMX do not count
    (set(), "other"),                                                # Arm, or flags unreadable
])
def test_int8_path_from_flags(flags, expected):
    assert int8_path(flags) == expected


def test_this_machine_is_described_consistently():
    info = cpu_info()
    assert set(info.flags) <= set(INT8_FLAGS)
    assert info.int8_path == int8_path(info.flags)
    assert info.cores >= 1 and info.model
    text = info.describe()
    assert info.int8_path in text and f"{info.cores} cores" in text
    assert info.to_dict()["int8_path"] == info.int8_path
