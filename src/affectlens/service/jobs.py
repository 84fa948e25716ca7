"""Job store and audit log on SQLite (stdlib ``sqlite3``, WAL mode).

One row per video job; the server and its worker processes open the same file. States:
``queued`` → ``running`` → ``done`` | ``failed``. A job whose worker died is put back to
``queued`` (it resumes from its ``frames.jsonl``) until ``max_attempts`` runs, then ``failed``
with the reason — never left ``running``.

The audit table records who (key id), when, what (action, job, counts) and under which consent;
never images or file names from clients.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STATES = ("queued", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    progress REAL NOT NULL DEFAULT 0,
    eta_s REAL,
    frames INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    expires_at REAL,
    consent TEXT NOT NULL,
    key_id TEXT NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    media_path TEXT,
    out_dir TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    attempts INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    key_id TEXT NOT NULL,
    action TEXT NOT NULL,
    consent TEXT,
    job_id TEXT,
    detail TEXT
);
"""


@dataclass(frozen=True)
class Job:
    """One row of the ``jobs`` table."""

    id: str
    state: str
    progress: float
    eta_s: float | None
    frames: int
    error: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    consent: str
    key_id: str
    retain: bool
    media_path: str | None
    out_dir: str
    options: dict
    attempts: int
    worker_pid: int | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        d = dict(row)
        d["retain"] = bool(d["retain"])
        d["options"] = json.loads(d["options"] or "{}")
        return cls(**d)


class JobStore:
    """Thread-safe access to the jobs and audit tables of one SQLite file.

    Args:
        path: the database file (created with its tables when missing).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self):
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ jobs
    def create(self, *, consent: str, key_id: str, retain: bool, media_path: str, out_dir: str,
               options: dict, job_id: str | None = None) -> Job:
        now = time.time()
        job_id = job_id or uuid.uuid4().hex
        with self._tx() as c:
            c.execute("INSERT INTO jobs (id, state, created_at, updated_at, consent, key_id, retain, media_path, "
                      "out_dir, options) VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                      (job_id, now, now, consent, key_id, int(retain), media_path, out_dir, json.dumps(options)))
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def list(self, state: str | None = None) -> list[Job]:
        with self._lock:
            if state:
                rows = self._conn.execute("SELECT * FROM jobs WHERE state = ? ORDER BY created_at", (state,))
            else:
                rows = self._conn.execute("SELECT * FROM jobs ORDER BY created_at")
            return [Job.from_row(r) for r in rows.fetchall()]

    def count(self, state: str) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0])

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to ``running`` (attempts + 1) and return it."""
        now = time.time()
        with self._tx() as c:
            row = c.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at LIMIT 1").fetchone()
            if row is None:
                return None
            c.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?, updated_at = ?, "
                      "eta_s = NULL, error = NULL WHERE id = ? AND state = 'queued'", (now, now, row["id"]))
        return self.get(row["id"])

    def set_pid(self, job_id: str, pid: int | None) -> None:
        with self._tx() as c:
            c.execute("UPDATE jobs SET worker_pid = ?, updated_at = ? WHERE id = ?", (pid, time.time(), job_id))

    def update_progress(self, job_id: str, progress: float, eta_s: float | None, frames: int) -> None:
        with self._tx() as c:
            c.execute("UPDATE jobs SET progress = ?, eta_s = ?, frames = ?, updated_at = ? WHERE id = ? "
                      "AND state = 'running'", (max(0.0, min(1.0, progress)), eta_s, frames, time.time(), job_id))

    def finish(self, job_id: str, state: str, ttl_s: float, error: str | None = None,
               frames: int | None = None, media_deleted: bool = False) -> None:
        """Mark a job ``done`` or ``failed``; its results expire ``ttl_s`` from now.
        ``media_deleted`` records that its upload is gone."""
        if state not in ("done", "failed"):
            raise ValueError(f"finish: state must be 'done' or 'failed', got {state!r}")
        now = time.time()
        with self._tx() as c:
            c.execute("UPDATE jobs SET state = ?, error = ?, finished_at = ?, expires_at = ?, updated_at = ?, "
                      "eta_s = 0, worker_pid = NULL, progress = CASE WHEN ? = 'done' THEN 1.0 ELSE progress END, "
                      "frames = COALESCE(?, frames), "
                      "media_path = CASE WHEN ? THEN NULL ELSE media_path END WHERE id = ?",
                      (state, error, now, now + ttl_s, now, state, frames, int(media_deleted), job_id))

    def requeue(self, job_id: str, reason: str, refund_attempt: bool = False) -> None:
        """Put a job whose worker stopped back in the queue; ``reason`` stays in ``error`` until it runs.
        ``refund_attempt`` does not count the interrupted run (e.g. a server shutdown)."""
        with self._tx() as c:
            c.execute("UPDATE jobs SET state = 'queued', error = ?, worker_pid = NULL, eta_s = NULL, updated_at = ?, "
                      "attempts = CASE WHEN ? THEN MAX(0, attempts - 1) ELSE attempts END WHERE id = ?",
                      (reason, time.time(), int(refund_attempt), job_id))

    def clear_media(self, job_id: str) -> None:
        with self._tx() as c:
            c.execute("UPDATE jobs SET media_path = NULL, updated_at = ? WHERE id = ?", (time.time(), job_id))

    def delete(self, job_id: str) -> bool:
        with self._tx() as c:
            return c.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def expired(self, now: float | None = None) -> list[Job]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._conn.execute("SELECT * FROM jobs WHERE expires_at IS NOT NULL AND expires_at < ?",
                                      (now,)).fetchall()
        return [Job.from_row(r) for r in rows]

    def recover_running(self, max_attempts: int, ttl_s: float) -> list[tuple[str, str]]:
        """After a restart: every ``running`` job lost its worker. Re-queue it (it resumes) while
        it has attempts left, else fail it with the reason. Returns ``(job_id, new_state)`` pairs."""
        out = []
        for job in self.list("running"):
            reason = f"worker lost when the server stopped (attempt {job.attempts} of {max_attempts})"
            if job.attempts < max_attempts and job.media_path and Path(job.media_path).exists():
                self.requeue(job.id, reason)
                out.append((job.id, "queued"))
            else:
                why = reason if job.media_path and Path(job.media_path).exists() else reason + "; upload gone"
                self.finish(job.id, "failed", ttl_s, error=why + "; not retried")
                out.append((job.id, "failed"))
        return out

    # ------------------------------------------------------------------ audit
    def audit(self, key_id: str, action: str, consent: str | None = None, job_id: str | None = None,
              **detail) -> None:
        """Append an audit record (no images, no client file names)."""
        with self._tx() as c:
            c.execute("INSERT INTO audit (at, key_id, action, consent, job_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
                      (time.time(), key_id, action, consent, job_id, json.dumps(detail) if detail else None))

    def audit_log(self, limit: int = 1000) -> list[dict]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]
