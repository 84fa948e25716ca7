"""Job store and audit log in a SQL database (SQLAlchemy Core): SQLite by default, any SQLAlchemy URL.

One row per video job; the server and its worker processes open the same database. States:
``queued`` → ``running`` → ``done`` | ``failed``. A job whose worker died is put back to
``queued`` (it resumes from its ``frames.jsonl``) until ``max_attempts`` runs, then ``failed``
with the reason — never left ``running``.

The audit table records who (key id), when, what (action, job, counts) and under which consent;
never images or file names from clients. Tables and engines: :mod:`affectlens.service.db`.

Example:
    >>> store = JobStore("data/affectlens.db")                       # SQLite file
    >>> store = JobStore("postgresql+psycopg://svc:secret@db/affect")  # PostgreSQL
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import case, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from affectlens.service.db import audit as audit_table
from affectlens.service.db import SCHEMA_REVISION, database_url, jobs, make_engine, mask_url, migrate, transaction

STATES = ("queued", "running", "done", "failed")


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
    owner: str | None = None
    lease_token: str | None = None
    lease_until: float | None = None

    @classmethod
    def from_row(cls, row) -> "Job":
        d = dict(row._mapping)
        d["retain"] = bool(d["retain"])
        d["options"] = json.loads(d["options"] or "{}")
        return cls(**d)


class JobStore:
    """Thread- and process-safe access to the jobs and audit tables of one database.

    Every method is one short transaction; several server and worker processes may share the
    database. The tables are created when missing, and an older schema is upgraded (Alembic).

    Args:
        path_or_url: a SQLite file (created with its folder when missing) or a SQLAlchemy URL.
        busy_timeout_s: how long a statement waits for a lock before it fails (the server uses a
            short one so that requests answer 503 rather than hang; workers wait longer).

    Raises:
        ValueError: a malformed URL or a missing driver (the URL is shown with its password masked).
        RuntimeError: the database cannot be reached or its tables cannot be created.
    """

    def __init__(self, path_or_url: str | os.PathLike, busy_timeout_s: float = 30.0):
        self.url = database_url(path_or_url, absolute=True)
        self.engine: Engine = make_engine(self.url, busy_timeout_s)
        for attempt in range(3):  # two processes starting at once may race to create the tables
            try:
                before = migrate(self.engine)
                if before not in (SCHEMA_REVISION, "none"):
                    logging.getLogger("affectlens.service").warning(
                        "job database %s upgraded from schema %s to %s", mask_url(self.url), before, SCHEMA_REVISION)
                break
            except SQLAlchemyError as exc:
                if attempt == 2:
                    self.engine.dispose()
                    raise RuntimeError(f"cannot open the job database {mask_url(self.url)}: "
                                       f"{getattr(exc, 'orig', None) or exc}") from exc
                time.sleep(0.2 * (attempt + 1))

    @property
    def path(self) -> Path | None:
        """The SQLite file, ``None`` for other databases."""
        if self.url.get_backend_name() == "sqlite" and self.url.database:
            return Path(self.url.database)
        return None

    def close(self) -> None:
        self.engine.dispose()

    def _tx(self):
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite): ``with store._tx() as conn:`` yields a
        SQLAlchemy Connection, commits on success, rolls back on any exception."""
        return transaction(self.engine, write=True)

    def _read(self):
        return transaction(self.engine)

    # ------------------------------------------------------------------ jobs
    def create(self, *, consent: str, key_id: str, retain: bool, media_path: str, out_dir: str,
               options: dict, job_id: str | None = None) -> Job:
        now = time.time()
        job_id = job_id or uuid.uuid4().hex
        with self._tx() as c:
            c.execute(insert(jobs).values(id=job_id, state="queued", created_at=now, updated_at=now, consent=consent,
                                          key_id=key_id, retain=bool(retain), media_path=media_path, out_dir=out_dir,
                                          options=json.dumps(options), progress=0.0, frames=0, attempts=0))
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        with self._read() as c:
            row = c.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return Job.from_row(row) if row else None

    def list(self, state: str | None = None) -> list[Job]:
        q = select(jobs).order_by(jobs.c.created_at, jobs.c.id)
        if state:
            q = q.where(jobs.c.state == state)
        with self._read() as c:
            return [Job.from_row(r) for r in c.execute(q).all()]

    def count(self, state: str) -> int:
        with self._read() as c:
            return int(c.execute(select(func.count()).select_from(jobs).where(jobs.c.state == state)).scalar_one())

    def counts(self) -> dict[str, int]:
        """Jobs per state (states without jobs are left out)."""
        with self._read() as c:
            return {st: int(n) for st, n in c.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))}

    def claim_next(self, owner: str | None = None, lease_s: float | None = None) -> Job | None:
        """Atomically move the oldest queued job to ``running`` (attempts + 1) and return it.

        The claim records ``owner`` (the server instance), a new ``lease_token`` and a lease of
        ``lease_s`` seconds that the owner renews (:meth:`renew_leases`); a job whose lease ran out
        is re-queued by :meth:`recover_running`. Without ``lease_s`` the claim has no lease (the job
        counts as abandoned as soon as its claimer is gone: tests and single-use tools).

        A job is never handed to two claimers: the update only applies while the row is still
        ``queued`` and its row count says who won (a loser tries the next job). On PostgreSQL the
        candidate is also picked ``FOR UPDATE SKIP LOCKED``, so concurrent claimers do not wait on
        each other; on SQLite the write transaction (``BEGIN IMMEDIATE``) serialises them.
        """
        pick = (select(jobs.c.id).where(jobs.c.state == "queued").order_by(jobs.c.created_at, jobs.c.id)
                .limit(1).with_for_update(skip_locked=True))
        while True:
            now = time.time()
            with self._tx() as c:
                job_id = c.execute(pick).scalar()
                if job_id is None:
                    return None
                won = c.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == "queued").values(
                    state="running", attempts=jobs.c.attempts + 1, started_at=now, updated_at=now, eta_s=None,
                    error=None, owner=owner, lease_token=uuid.uuid4().hex,
                    lease_until=None if lease_s is None else now + lease_s)).rowcount == 1
            if won:
                return self.get(job_id)

    def set_pid(self, job_id: str, pid: int | None) -> None:
        with self._tx() as c:
            c.execute(update(jobs).where(jobs.c.id == job_id).values(worker_pid=pid, updated_at=time.time()))

    def update_progress(self, job_id: str, progress: float, eta_s: float | None, frames: int,
                        token: str | None = None) -> bool:
        """Record progress of a running job. With ``token``, only while that claim holds an unexpired
        lease. Returns whether the row was updated (``False``: the job is no longer this worker's)."""
        now = time.time()
        cond = [jobs.c.id == job_id, jobs.c.state == "running"]
        if token is not None:
            cond += [jobs.c.lease_token == token, (jobs.c.lease_until.is_(None)) | (jobs.c.lease_until > now)]
        with self._tx() as c:
            return c.execute(update(jobs).where(*cond).values(
                progress=max(0.0, min(1.0, progress)), eta_s=eta_s, frames=frames, updated_at=now)).rowcount == 1

    def holds(self, job_id: str, token: str) -> bool:
        """Whether the claim ``token`` still holds the running job with an unexpired lease."""
        now = time.time()
        with self._read() as c:
            return c.execute(select(jobs.c.id).where(
                jobs.c.id == job_id, jobs.c.state == "running", jobs.c.lease_token == token,
                jobs.c.lease_until.is_(None) | (jobs.c.lease_until > now))).first() is not None

    def renew_leases(self, owner: str, lease_s: float) -> int:
        """Extend the lease of every job ``owner`` is running. Returns how many."""
        now = time.time()
        with self._tx() as c:
            return c.execute(update(jobs).where(jobs.c.owner == owner, jobs.c.state == "running",
                                                jobs.c.lease_until.is_not(None))
                             .values(lease_until=now + lease_s)).rowcount

    def finish(self, job_id: str, state: str, ttl_s: float, error: str | None = None,
               frames: int | None = None, media_deleted: bool = False, token: str | None = None) -> bool:
        """Mark a job ``done`` or ``failed``; its results expire ``ttl_s`` from now.
        ``media_deleted`` records that its upload is gone. With ``token``, only while that claim
        still holds the job. Returns whether the row was updated.

        Raises:
            ValueError: ``state`` is not ``done`` or ``failed``.
        """
        if state not in ("done", "failed"):
            raise ValueError(f"finish: state must be 'done' or 'failed', got {state!r}")
        now = time.time()
        values = {"state": state, "error": error, "finished_at": now, "expires_at": now + ttl_s, "updated_at": now,
                  "eta_s": 0.0, "worker_pid": None, "owner": None, "lease_until": None}
        if state == "done":
            values["progress"] = 1.0
        if frames is not None:
            values["frames"] = frames
        if media_deleted:
            values["media_path"] = None
        cond = [jobs.c.id == job_id]
        if token is not None:
            cond += [jobs.c.lease_token == token, jobs.c.state == "running"]
        with self._tx() as c:
            return c.execute(update(jobs).where(*cond).values(**values)).rowcount == 1

    def requeue(self, job_id: str, reason: str, refund_attempt: bool = False, token: str | None = None,
                expired_before: float | None = None) -> bool:
        """Put a job whose worker stopped back in the queue; ``reason`` stays in ``error`` until it runs.
        ``refund_attempt`` does not count the interrupted run (e.g. a server shutdown). With
        ``token``/``expired_before``, only while that claim holds it and its lease ended before then.
        Returns whether the row was updated."""
        values = {"state": "queued", "error": reason, "worker_pid": None, "eta_s": None, "updated_at": time.time(),
                  "owner": None, "lease_token": None, "lease_until": None}
        if refund_attempt:
            values["attempts"] = case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0)
        cond = [jobs.c.id == job_id]
        if token is not None:
            cond += [jobs.c.lease_token == token, jobs.c.state == "running"]
        if expired_before is not None:
            cond.append(jobs.c.lease_until.is_(None) | (jobs.c.lease_until < expired_before))
        with self._tx() as c:
            return c.execute(update(jobs).where(*cond).values(**values)).rowcount == 1

    def clear_media(self, job_id: str) -> None:
        with self._tx() as c:
            c.execute(update(jobs).where(jobs.c.id == job_id).values(media_path=None, updated_at=time.time()))

    def delete(self, job_id: str) -> bool:
        with self._tx() as c:
            return c.execute(delete(jobs).where(jobs.c.id == job_id)).rowcount > 0

    def expired(self, now: float | None = None) -> list[Job]:
        now = time.time() if now is None else now
        with self._read() as c:
            rows = c.execute(select(jobs).where(jobs.c.expires_at.is_not(None), jobs.c.expires_at < now)).all()
        return [Job.from_row(r) for r in rows]

    def recover_running(self, max_attempts: int, ttl_s: float, now: float | None = None) -> list[tuple[str, str]]:
        """Every ``running`` job whose lease expired (or that has none) lost its worker: re-queue it
        (it resumes) while it has attempts left, else fail it with the reason. A job whose lease
        still runs belongs to a live server (or one that died less than a lease ago) and is left
        alone. Returns ``(job_id, new_state)`` pairs."""
        now = time.time() if now is None else now
        out = []
        for job in self.list("running"):
            if job.lease_until is not None and job.lease_until >= now:
                continue
            reason = f"worker lost when the server stopped (attempt {job.attempts} of {max_attempts})"
            if job.attempts < max_attempts and job.media_path and Path(job.media_path).exists():
                if self.requeue(job.id, reason, token=job.lease_token, expired_before=now):
                    out.append((job.id, "queued"))
            else:
                why = reason if job.media_path and Path(job.media_path).exists() else reason + "; upload gone"
                if self.finish(job.id, "failed", ttl_s, error=why + "; not retried", token=job.lease_token or None):
                    out.append((job.id, "failed"))
        return out

    # ------------------------------------------------------------------ audit
    def audit(self, key_id: str, action: str, consent: str | None = None, job_id: str | None = None,
              **detail) -> None:
        """Append an audit record (no images, no client file names)."""
        with self._tx() as c:
            c.execute(insert(audit_table).values(at=time.time(), key_id=key_id, action=action, consent=consent,
                                                 job_id=job_id, detail=json.dumps(detail) if detail else None))

    def audit_log(self, limit: int = 1000) -> list[dict]:
        with self._read() as c:
            rows = c.execute(select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)).all()
        return [dict(r._mapping) for r in rows]

