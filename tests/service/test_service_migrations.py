"""Alembic migrations: a database made by the previous schema (no lease columns, no
``alembic_version``) upgrades in place without losing jobs, audit records or rate counts, on SQLite
and on PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid

import pytest

pytest.importorskip("alembic")

from sqlalchemy import create_engine, inspect, text  # noqa: E402

from affectlens.service.db import SCHEMA_REVISION, database_url, jobs  # noqa: E402
from affectlens.service.jobs import JobStore  # noqa: E402
from pg_helpers import postgres_url  # noqa: E402,F401 (a fixture)

# What the first release's create_all() made (SQLAlchemy's DDL for its tables, as in revision 0001).
PREVIOUS_SCHEMA = [
    """CREATE TABLE jobs (id TEXT NOT NULL, state TEXT NOT NULL, progress DOUBLE PRECISION DEFAULT '0' NOT NULL,
       eta_s DOUBLE PRECISION, frames INTEGER DEFAULT '0' NOT NULL, error TEXT, created_at DOUBLE PRECISION NOT NULL,
       updated_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
       expires_at DOUBLE PRECISION, consent TEXT NOT NULL, key_id TEXT NOT NULL, retain BOOLEAN DEFAULT '0' NOT NULL,
       media_path TEXT, out_dir TEXT NOT NULL, options TEXT DEFAULT '{}' NOT NULL, attempts INTEGER DEFAULT '0' NOT NULL,
       worker_pid INTEGER, PRIMARY KEY (id),
       CONSTRAINT jobs_state_check CHECK (state IN ('queued', 'running', 'done', 'failed')))""",
    "CREATE INDEX jobs_state ON jobs (state, created_at)",
    """CREATE TABLE audit (id {serial}, at DOUBLE PRECISION NOT NULL, key_id TEXT NOT NULL, action TEXT NOT NULL,
       consent TEXT, job_id TEXT, detail TEXT)""",
    """CREATE TABLE rate_hits (key_id TEXT NOT NULL, window_index BIGINT NOT NULL, hits INTEGER NOT NULL,
       PRIMARY KEY (key_id, window_index))""",
]


def _previous_database(url: str, tmp_path) -> dict:
    """A database as the previous release left it: three jobs (one of them 'running'), audit, rate counts."""
    engine = create_engine(url)
    serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if url.startswith("sqlite") else "SERIAL PRIMARY KEY"
    now = time.time()
    media = tmp_path / "uploads" / "run1" / "video.mp4"
    media.parent.mkdir(parents=True)
    media.write_bytes(b"x")
    rows = {
        "q1": ("queued", None, 0), "run1": ("running", str(media), 1), "done1": ("done", None, 1)}
    with engine.begin() as c:
        for ddl in PREVIOUS_SCHEMA:
            c.execute(text(ddl.replace("{serial}", serial)))
        for jid, (state, mp, attempts) in rows.items():
            c.execute(text("INSERT INTO jobs (id, state, created_at, updated_at, consent, key_id, retain, media_path, "
                           "out_dir, options, attempts, worker_pid) VALUES (:id, :st, :t, :t, 'contract', 'lab', "
                           ":r, :mp, :out, :opt, :a, :pid)"),
                      {"id": jid, "st": state, "t": now, "r": False, "mp": mp, "out": str(tmp_path / "jobs" / jid),
                       "opt": json.dumps({"fps": 5.0}), "a": attempts, "pid": 4242 if state == "running" else None})
        c.execute(text("INSERT INTO audit (at, key_id, action, consent, job_id) VALUES (:t, 'lab', 'video.submit', "
                       "'contract', 'done1')"), {"t": now})
        c.execute(text("INSERT INTO rate_hits VALUES ('lab', 7, 3)"))
    engine.dispose()
    return rows


@pytest.fixture(params=["sqlite", "postgresql"])
def old_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    server = request.getfixturevalue("postgres_url")
    name = "m_" + uuid.uuid4().hex[:12]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return database_url(server).set(database=name).render_as_string(hide_password=False)


def test_a_database_of_the_previous_schema_upgrades_without_losing_jobs(old_url, tmp_path):
    rows = _previous_database(old_url, tmp_path)
    store = JobStore(old_url)  # upgrades in place
    try:
        cols = {c["name"] for c in inspect(store.engine).get_columns("jobs")}
        assert cols == {c.name for c in jobs.columns}
        with store.engine.connect() as c:
            assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_REVISION
            assert c.execute(text("SELECT hits FROM rate_hits WHERE key_id = 'lab'")).scalar() == 3
        assert {j.id: j.state for j in store.list()} == {k: v[0] for k, v in rows.items()}
        assert store.get("done1").options == {"fps": 5.0}
        assert [a["action"] for a in store.audit_log()] == ["video.submit"]
        # the job the old server left running has no lease: recovered at once, then claimed with one
        assert dict(store.recover_running(max_attempts=3, ttl_s=60)) == {"run1": "queued"}
        first = store.claim_next(owner="srv-a", lease_s=30)
        assert first.id == "q1" and first.owner == "srv-a" and first.lease_until > time.time()
        store.audit("lab", "job.recover", job_id="run1")
        assert len(store.audit_log()) == 2
    finally:
        store.close()
    again = JobStore(old_url)  # an up-to-date database is left as it is
    assert len(again.list()) == 3
    again.close()


def test_a_new_database_is_created_at_the_current_revision(tmp_path):
    store = JobStore(tmp_path / "new.db")
    with store.engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_REVISION
    store.close()
