"""A real uvicorn server on a free loopback port, run in a background thread, for service tests."""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import contextmanager

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``with LiveServer(app) as srv: httpx.get(srv.url + "/healthz")``."""

    def __init__(self, app, port: int | None = None, startup_timeout_s: float = 30.0):
        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on", ws_max_size=32 * 2 ** 20))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)
        self.startup_timeout_s = startup_timeout_s

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited during start-up (see the log above)")
            if time.monotonic() - t0 > self.startup_timeout_s:
                raise RuntimeError(f"server not started after {self.startup_timeout_s} s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class ErrorLog(logging.Handler):
    """Collects ERROR records of the service and uvicorn (unhandled exceptions end up there)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@contextmanager
def captured_errors():
    """``with captured_errors() as errors:`` — ERROR records of the service and uvicorn while inside."""
    errors = ErrorLog()
    loggers = [logging.getLogger(n) for n in ("affectlens.service", "uvicorn.error", "uvicorn.asgi")]
    for lg in loggers:
        lg.addHandler(errors)
    try:
        yield errors
    finally:
        for lg in loggers:
            lg.removeHandler(errors)
