"""Rate-limited logging (the connection limits themselves are tested on a live server in
test_service_limits.py)."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("uvicorn")

from affectlens.service.connections import RateLimitedLog, ensure_file_handles  # noqa: E402


def test_a_flood_of_one_message_is_cut_to_a_burst_per_window(caplog):
    log = logging.getLogger("affectlens.test.flood")
    now = [0.0]
    flt = RateLimitedLog(burst=5, window_s=10.0, clock=lambda: now[0])
    log.addFilter(flt)
    try:
        with caplog.at_level(logging.ERROR, logger="affectlens.test.flood"):
            for i in range(10_000):
                log.error("socket.accept() out of system resource: %s", i)
            log.error("another message")
            now[0] = 10.5
            log.error("socket.accept() out of system resource: %s", "late")
    finally:
        log.removeFilter(flt)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 7, msgs[:3]
    assert msgs[5] == "another message"
    assert msgs[6].endswith("late [9995 similar messages suppressed]")


def test_file_handle_limit_fits_the_connection_cap():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert ensure_file_handles(100) == 100
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= min(356, hard)
    if hard != resource.RLIM_INFINITY:
        assert ensure_file_handles(hard * 2) == max(16, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 256)
