"""Soak test of ``affectlens serve``: mixed load for a while, a ``kill -9`` restart in the middle.

Load (each in its own thread, all against one real server process on loopback):

* images: ``POST /v1/images:analyze`` with a real photo, back to back;
* video jobs: a short clip every ``--job-every-s`` seconds;
* streams: WebSocket sessions of 10 frames each;
* bad inputs: random bytes, a truncated JPEG, a decompression bomb, an unknown option, no consent,
  a malformed hello — each must be refused with a 4xx (a 5xx other than 503 is an error).

Halfway through, the server is killed with SIGKILL and started again on the same data folder.
At the end every submitted job must be ``done``, with each frame index once in its results and
exactly one ``job.done`` in the audit log (none lost, none run twice). Reports requests and
answers by kind and status, connection failures (expected only while the server is down), peak
RSS of the server and of the worker processes, and the job check.

Example (the issue's soak is 10 minutes)::

    python benchmarks/soak_service.py --duration-s 600 --out benchmarks/results/soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AFFECTLENS_SHARED_DATA", ROOT.parent / "shared" / "data"))
CONSENT = {"X-Consent": "subject-consented"}


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``affectlens serve`` in ``cwd`` (its data folder is ``cwd/affectlens-data``)."""

    def __init__(self, cwd: Path, port: int, config: str):
        self.cwd, self.port, self.url = cwd, port, f"http://127.0.0.1:{port}"
        (cwd / "service.toml").write_text(config)
        self.proc = None

    def start(self, timeout_s: float = 120.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        log = open(self.cwd / "server.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "affectlens", "serve", "--port", str(self.port),
                                      "--config", "service.toml", "--log-level", "warning"],
                                     cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).json().get("status") == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("server exited during start-up; see server.log")
            time.sleep(0.2)
        raise RuntimeError("server not ready")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.answers: Counter = Counter()  # (kind, status or "conn_error")
        self.unexpected: list[str] = []
        self.jobs: list[str] = []

    def count(self, kind: str, status, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.answers[(kind, str(status))] += 1
            if not ok:
                self.unexpected.append(f"{kind}: {status} {detail[:200]}")


class Memory:
    """Peak RSS of the server and of its worker processes, sampled from /proc."""

    def __init__(self):
        self.server_kb = self.worker_kb = 0

    def sample(self, server_pid: int | None) -> None:
        if server_pid:
            self.server_kb = max(self.server_kb, _status_kb(server_pid, "VmHWM"))
        for pid in _workers():
            self.worker_kb = max(self.worker_kb, _status_kb(pid, "VmRSS"))


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _workers() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if b"affectlens.service.worker" in (d / "cmdline").read_bytes():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def _bomb_png(w: int = 20000, h: int = 20000) -> bytes:
    def chunk(tag, payload):
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(4096))) + chunk(b"IEND", b""))


def run(args) -> dict:
    import cv2

    photo = (SHARED / "media" / "images" / "single_face.jpg").read_bytes()
    clip = (SHARED / "media" / "videos" / "single_face.mp4").read_bytes()
    cap = cv2.VideoCapture(str(SHARED / "media" / "videos" / "single_face.mp4"))
    frames = []
    while len(frames) < 10:
        ok, f = cap.read()
        frames.append(cv2.imencode(".jpg", f)[1].tobytes())
    cap.release()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="affectlens-soak-"))
    config = ("[service]\nrate_limit_per_minute = 0\njob_lease_s = 5.0\ncleanup_interval_s = 3600\n"
              f"threads = {args.threads}\nmax_inflight = 4\n")
    server = Server(work, free_port(), config)
    server.start()
    stats, mem = Stats(), Memory()
    stop = threading.Event()
    down = threading.Event()  # set while the server is restarting: connection errors expected then

    def call(kind, fn, ok_codes):
        try:
            r = fn()
        except (httpx.HTTPError, OSError) as exc:
            stats.count(kind, "conn_error", down.is_set(), repr(exc))
            time.sleep(0.2)
            return None
        stats.count(kind, r.status_code, r.status_code in ok_codes, r.text)
        return r

    def images():
        with httpx.Client(base_url=server.url, headers=CONSENT, timeout=60) as http:
            while not stop.is_set():
                call("image", lambda: http.post("/v1/images:analyze", content=photo), {200, 503})

    def videos():
        with httpx.Client(base_url=server.url, headers=CONSENT, timeout=60) as http:
            while not stop.is_set():
                r = call("video", lambda: http.post("/v1/videos", content=clip, params={"fps": "10"}), {202, 503})
                if r is not None and r.status_code == 202:
                    with stats.lock:
                        stats.jobs.append(r.json()["id"])
                stop.wait(args.job_every_s)

    def streams():
        from websockets.sync.client import connect

        while not stop.is_set():
            try:
                with connect(server.url.replace("http", "ws") + "/v1/stream?consent=subject-consented",
                             open_timeout=10) as ws:
                    assert json.loads(ws.recv(timeout=30))["type"] == "ready"
                    for i, jpg in enumerate(frames):
                        ws.send(b"ALF1" + struct.pack(">d", i * 40.0) + jpg)
                        msg = json.loads(ws.recv(timeout=60))
                        stats.count("stream_frame", msg["type"], msg["type"] == "faces"
                                    or msg.get("error", {}).get("code") == "overloaded", json.dumps(msg)[:200])
            except Exception as exc:  # connection refused while down, or a real failure
                stats.count("stream_session", "conn_error", down.is_set(), repr(exc))
                time.sleep(0.5)

    bad = [("random_bytes", lambda h: h.post("/v1/images:analyze", content=os.urandom(2048))),
           ("truncated_jpeg", lambda h: h.post("/v1/images:analyze", content=photo[:len(photo) // 2])),
           ("bomb_png", lambda h: h.post("/v1/images:analyze", content=_bomb_png())),
           ("unknown_option", lambda h: h.post("/v1/videos", content=clip, params={"path": "/etc/passwd"})),
           ("no_consent", lambda h: h.post("/v1/images:analyze", content=photo, headers={"X-Consent": ""})),
           ("bad_json_job", lambda h: h.get("/v1/jobs/" + "x" * 300))]

    def bad_inputs():
        with httpx.Client(base_url=server.url, headers=CONSENT, timeout=60) as http:
            i = 0
            while not stop.is_set():
                name, fn = bad[i % len(bad)]
                call("bad:" + name, lambda: fn(http), {403, 404, 413, 415, 422, 429, 503})
                i += 1
                stop.wait(0.2)

    threads = [threading.Thread(target=f, daemon=True) for f in (images, videos, streams, bad_inputs)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    restarted = False
    while time.monotonic() - t0 < args.duration_s:
        mem.sample(server.proc.pid)
        if not restarted and time.monotonic() - t0 > args.duration_s / 2:
            down.set()
            server.kill()
            restart_t0 = time.monotonic()
            server.start()
            restart_s = time.monotonic() - restart_t0
            time.sleep(1.0)
            down.clear()
            restarted = True
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(120)
    # every submitted job must end done, once, with every frame once
    from affectlens.service.jobs import JobStore

    store = JobStore(work / "affectlens-data" / "affectlens.db")
    deadline = time.monotonic() + args.drain_timeout_s
    while time.monotonic() < deadline and any(
            (j := store.get(jid)) is not None and j.state in ("queued", "running") for jid in stats.jobs):
        mem.sample(server.proc.pid)
        time.sleep(0.5)
    audit = store.audit_log(limit=1_000_000)
    done_counts = Counter(a["job_id"] for a in audit if a["action"] == "job.done")
    problems = []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for jid in stats.jobs:
            job = store.get(jid)
            if job is None or job.state != "done":
                problems.append(f"{jid}: {job and job.state} {job and job.error}")
                continue
            if done_counts[jid] != 1:
                problems.append(f"{jid}: {done_counts[jid]} job.done records")
            idx = [f["info"]["frame_index"] for f in http.get(f"/v1/jobs/{jid}/results").json()["frames"]]
            if idx != sorted(set(idx)):
                problems.append(f"{jid}: duplicate or unordered frame indexes")
    store.close()
    server.stop()
    answers = {f"{k}|{s}": n for (k, s), n in sorted(stats.answers.items())}
    by_status: Counter = Counter()
    for (_, status), n in stats.answers.items():
        by_status[status] += n
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cpu": cpu_name(), "cores": os.cpu_count(),
        "duration_s": args.duration_s, "restart_s": round(restart_s, 1),
        "requests": sum(stats.answers.values()),
        "answers": answers,
        "by_status": dict(sorted(by_status.items())),
        "unexpected": stats.unexpected[:50], "unexpected_count": len(stats.unexpected),
        "peak_rss_mb": {"server": round(mem.server_kb / 1024, 1), "worker": round(mem.worker_kb / 1024, 1)},
        "jobs": {"submitted": len(stats.jobs), "done_once": len(stats.jobs) - len(problems), "problems": problems},
        "work_dir": str(work),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration-s", type=float, default=600.0)
    p.add_argument("--job-every-s", type=float, default=8.0)
    p.add_argument("--drain-timeout-s", type=float, default=300.0)
    p.add_argument("--threads", type=int, default=1, help="the server's threads setting")
    p.add_argument("--work-dir", default=None)
    p.add_argument("--out", default=None, help="write the report as JSON here")
    args = p.parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    ok = not report["unexpected_count"] and not report["jobs"]["problems"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
