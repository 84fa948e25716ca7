"""Connection-level limits that an ASGI app cannot enforce: header and body read timeouts, a cap
on open connections, the process's file-handle limit, and rate-limited logging.

:func:`guarded_protocol` builds an HTTP protocol class for uvicorn (its h11 implementation) that

* closes a connection whose request line and headers are not complete ``header_timeout_s`` after
  their first byte (or after the connection opened) — answering 408;
* closes a connection whose request body stalls for ``body_timeout_s`` or, after that long,
  arrives slower than ``min_body_bytes_per_s`` on average — answering 408 when no response began;
* answers 503 (``Retry-After: 1``) and closes at once when ``max_connections`` are already open,
  before reading anything, so idle sockets cannot exhaust the file handles.

A reverse proxy in front should enforce the same limits (see ``docs/service.md``).

Example:
    >>> uvicorn.run(app, http=guarded_protocol(config))
"""

from __future__ import annotations

import logging
import resource
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("affectlens.service")

_RESPONSE = ("HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n{extra}"
             "content-length: {n}\r\n\r\n{body}")


def _raw_response(status: str, code: str, message: str, extra: str = "") -> bytes:
    body = '{"error": {"code": "%s", "message": "%s"}}' % (code, message)
    return _RESPONSE.format(status=status, extra=extra, n=len(body), body=body).encode()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read timeouts and a connection cap (class attributes set by
    :func:`guarded_protocol`)."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0
    min_body_bytes_per_s = 1024.0
    max_connections = 1024
    shed_count = 0  # connections refused at the cap (per class, i.e. per server)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._timer = None
        self._body_t0 = None
        self._body_bytes = 0
        self._shed = len(self.connections) >= self.max_connections
        if self._shed:
            type(self).shed_count += 1
            self.transport = transport
            transport.write(_raw_response("503 Service Unavailable", "overloaded",
                                          f"too many open connections (limit {self.max_connections}); retry shortly",
                                          "retry-after: 1\r\n"))
            transport.close()
            return
        super().connection_made(transport)
        self._arm(self.header_timeout_s, self._header_timeout)

    def connection_lost(self, exc) -> None:
        self._disarm()
        if self._shed:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._shed:
            return
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.IDLE and self._timer is None and self.conn.our_state is h11.IDLE:
            self._arm(self.header_timeout_s, self._header_timeout)  # next request on a kept-alive connection
        elif state is h11.SEND_BODY:
            if self._body_t0 is None:
                self._body_t0, self._body_bytes = time.monotonic(), 0
            else:
                self._body_bytes += len(data)
            if not self._check_body_rate():
                return
            self._arm(self.body_timeout_s, self._body_timeout)
        elif state is not h11.IDLE:
            self._disarm()
            self._body_t0 = None

    # ------------------------------------------------------------------ timers
    def _arm(self, delay: float, fn) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, fn)

    def _disarm(self) -> None:
        if getattr(self, "_timer", None) is not None:
            self._timer.cancel()
            self._timer = None

    def _ours(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and \
            self.transport.get_protocol() is self

    def _header_timeout(self) -> None:
        self._timer = None
        if self._ours() and self.conn.their_state is h11.IDLE:
            self._abort("request headers not complete within %g s" % self.header_timeout_s)

    def _body_timeout(self) -> None:
        self._timer = None
        if not self._ours() or self.conn.their_state is not h11.SEND_BODY:
            return
        if self.flow is not None and self.flow.read_paused:  # we stopped reading: not the client's fault
            self._arm(self.body_timeout_s, self._body_timeout)
            return
        self._abort("request body stalled for %g s" % self.body_timeout_s)

    def _check_body_rate(self) -> bool:
        elapsed = time.monotonic() - self._body_t0
        if elapsed > self.body_timeout_s and self._body_bytes / elapsed < self.min_body_bytes_per_s:
            self._abort("request body slower than %g bytes/s" % self.min_body_bytes_per_s)
            return False
        return True

    def _abort(self, why: str) -> None:
        logger.info("closing connection from %s: %s", self.client and self.client[0], why)
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_raw_response("408 Request Timeout", "request_timeout", why))
        self.transport.close()


def guarded_protocol(config) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with the limits of a :class:`ServiceConfig`."""
    return type("AffectLensH11Protocol", (GuardedH11Protocol,), {
        "header_timeout_s": config.header_timeout_s, "body_timeout_s": config.body_timeout_s,
        "min_body_bytes_per_s": config.min_body_bytes_per_s, "max_connections": config.max_connections,
        "shed_count": 0})


def ensure_file_handles(max_connections: int, spare: int = 256) -> int:
    """Raise the soft open-files limit towards the hard one so that ``max_connections`` fit with
    ``spare`` handles for files, the database and workers. Returns the connections that fit
    (``max_connections``, or fewer with a warning when the hard limit is too low)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_connections + spare
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(hard, want)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < want:
        fit = max(16, soft - spare)
        logger.warning("open-files limit %d is too low for max_connections=%d; capping connections at %d "
                       "(raise 'ulimit -n')", soft, max_connections, fit)
        return fit
    return max_connections


class RateLimitedLog(logging.Filter):
    """Let through at most ``burst`` records per message template and ``window_s``; the next record
    let through says how many were dropped. Stops a flood (e.g. one traceback per refused socket)
    from filling the disk.

    Args:
        burst: records per template and window.
        window_s: window length in seconds.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, burst: int = 10, window_s: float = 10.0, clock=time.monotonic):
        super().__init__()
        self.burst, self.window_s, self.clock = burst, window_s, clock
        self._seen: dict[tuple, list] = {}  # key -> [window start, count, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg)[:200])
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None or now - entry[0] >= self.window_s:
            dropped = entry[2] if entry else 0
            if len(self._seen) > 1000:  # bounded: forget old templates
                self._seen.clear()
            self._seen[key] = [now, 1, 0]
            if dropped:
                record.msg = f"{record.msg} [{dropped} similar messages suppressed]"
            return True
        if entry[1] < self.burst:
            entry[1] += 1
            return True
        entry[2] += 1
        return False


_LOG_FILTER = RateLimitedLog()


def install_log_rate_limit(names=("asyncio", "uvicorn.error", "uvicorn.access", "affectlens.service")) -> None:
    """Attach the shared :class:`RateLimitedLog` to the server's loggers (idempotent)."""
    for name in names:
        lg = logging.getLogger(name)
        if _LOG_FILTER not in lg.filters:
            lg.addFilter(_LOG_FILTER)
