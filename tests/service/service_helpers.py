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


class ServerProcess:
    """``affectlens serve`` as a real process (own working directory), for tests that restart or kill it.

    ``with ServerProcess(cwd, ["--data-dir", "d"]) as srv: httpx.get(srv.url + "/healthz")``;
    ``srv.kill()`` sends SIGKILL (its worker processes are left to notice on their own).
    """

    def __init__(self, cwd, args=(), config: str | None = None, port: int | None = None,
                 startup_timeout_s: float = 90.0, env: dict | None = None):
        import os
        import sys
        from pathlib import Path

        self.cwd = Path(cwd)
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "affectlens", "serve", "--port", str(self.port), "--log-level", "warning",
               *args]
        if config is not None:
            (self.cwd / "service.toml").write_text(config)
            cmd += ["--config", "service.toml"]
        src = str(Path(__file__).resolve().parents[2] / "src")
        self.env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    "OMP_NUM_THREADS": "1", **(env or {})}
        self.cmd, self.startup_timeout_s = cmd, startup_timeout_s
        self.proc = None
        self.log_path = self.cwd / "server.log"

    def start(self) -> "ServerProcess":
        import subprocess

        import httpx

        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.startup_timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).json().get("status") == "ok":
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {self.startup_timeout_s} s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_job(http, job_id: str, states=("done", "failed"), timeout_s: float = 90.0) -> dict:
    """Poll ``GET /v1/jobs/{job_id}`` with the ``httpx`` client ``http`` until its state is one of
    ``states``; return the job. Raises AssertionError after ``timeout_s`` seconds."""
    job: dict = {}
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job.get("state") in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not in {states} after {timeout_s} s: {job}")
