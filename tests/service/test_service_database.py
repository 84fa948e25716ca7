"""The service database: the JobStore contract on SQLite (by path and by URL) and on PostgreSQL,
atomic job claims under concurrent claimers, the shared database rate limiter, worker processes
that get the database URL, and two live servers on one database sharing a key's rate limit."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import create_engine, text  # noqa: E402

from affectlens.service.db import database_url, mask_url  # noqa: E402
from affectlens.service.jobs import JobStore  # noqa: E402
from affectlens.service.ratelimit import DatabaseRateLimiter  # noqa: E402
from affectlens.service.security import Principal, ServiceError  # noqa: E402
from affectlens.service.worker import WorkerPool, worker_database_arg  # noqa: E402
from pg_helpers import postgres_url  # noqa: E402,F401 (a fixture)

BACKENDS = ["sqlite-path", "sqlite-url", "postgresql"]


def _fresh_postgres_database(server_url: str) -> str:
    """A new, empty database on the test server; its URL."""
    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return database_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    """Where a store lives: a SQLite file path, a ``sqlite:///`` URL, or a fresh PostgreSQL database."""
    if request.param == "sqlite-path":
        return tmp_path / "db" / "jobs.db"
    if request.param == "sqlite-url":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return _fresh_postgres_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(db):
    s = JobStore(db)
    yield s
    s.close()


def _job(store, tmp_path, name="v", retain=False, media=True):
    jid = f"{name}{time.monotonic_ns()}"
    up = tmp_path / "uploads" / jid
    up.mkdir(parents=True)
    if media:
        (up / "video.mp4").write_bytes(b"x")
    return store.create(consent="contract", key_id="k", retain=retain, media_path=str(up / "video.mp4"),
                        out_dir=str(tmp_path / "jobs" / jid), options={"fps": 5.0, "blur_faces": True}, job_id=jid)


# ---------------------------------------------------------------------- the JobStore contract
def test_create_get_list_count(store, tmp_path):
    a = _job(store, tmp_path, "a", retain=True)
    b = _job(store, tmp_path, "b")
    assert (a.state, a.progress, a.frames, a.attempts, a.retain, a.worker_pid) == ("queued", 0.0, 0, 0, True, None)
    assert a.options == {"fps": 5.0, "blur_faces": True} and a.created_at == a.updated_at
    assert store.get(b.id) == b and store.get("nope") is None
    assert [j.id for j in store.list()] == [a.id, b.id] == [j.id for j in store.list("queued")]
    assert store.list("running") == [] and store.count("queued") == 2 and store.count("done") == 0
    auto = store.create(consent="c", key_id="k", retain=False, media_path="m", out_dir="o", options={})
    assert len(auto.id) == 32 and store.count("queued") == 3


def test_claim_progress_finish(store, tmp_path):
    a, b = _job(store, tmp_path, "a"), _job(store, tmp_path, "b")
    first = store.claim_next()
    assert (first.id, first.state, first.attempts) == (a.id, "running", 1) and first.started_at is not None
    store.set_pid(a.id, 4242)
    assert store.get(a.id).worker_pid == 4242
    store.update_progress(a.id, 1.7, 3.5, 12)
    got = store.get(a.id)
    assert (got.progress, got.eta_s, got.frames) == (1.0, 3.5, 12)
    store.update_progress(b.id, 0.5, 1.0, 3)  # not running: ignored
    assert store.get(b.id).progress == 0.0
    store.finish(a.id, "done", ttl_s=60, frames=20, media_deleted=True)
    got = store.get(a.id)
    assert (got.state, got.progress, got.frames, got.media_path, got.worker_pid, got.eta_s) == \
        ("done", 1.0, 20, None, None, 0.0)
    assert got.expires_at == pytest.approx(got.finished_at + 60)
    store.claim_next()
    store.update_progress(b.id, 0.25, None, 2)
    store.finish(b.id, "failed", ttl_s=60, error="boom")
    got = store.get(b.id)
    assert (got.state, got.progress, got.frames, got.error) == ("failed", 0.25, 2, "boom")
    assert got.media_path == b.media_path
    assert store.claim_next() is None
    with pytest.raises(ValueError, match="'done' or 'failed'"):
        store.finish(a.id, "running", ttl_s=1)


def test_requeue_clear_delete_expired(store, tmp_path):
    a = _job(store, tmp_path, "a")
    store.claim_next()
    store.requeue(a.id, "worker died")
    got = store.get(a.id)
    assert (got.state, got.error, got.attempts, got.worker_pid) == ("queued", "worker died", 1, None)
    assert store.claim_next().attempts == 2 and store.get(a.id).error is None
    store.requeue(a.id, "shutdown", refund_attempt=True)
    assert store.get(a.id).attempts == 1
    store.requeue(a.id, "again", refund_attempt=True)
    store.requeue(a.id, "and again", refund_attempt=True)
    assert store.get(a.id).attempts == 0  # never below zero
    store.clear_media(a.id)
    assert store.get(a.id).media_path is None
    store.claim_next()
    store.finish(a.id, "done", ttl_s=10)
    assert store.expired() == [] and [j.id for j in store.expired(now=time.time() + 20)] == [a.id]
    assert store.delete(a.id) is True and store.delete(a.id) is False and store.get(a.id) is None


def test_recover_running(store, tmp_path):
    a, b, c = _job(store, tmp_path, "a"), _job(store, tmp_path, "b"), _job(store, tmp_path, "c", media=False)
    for _ in range(3):
        store.claim_next()
    with store._tx() as conn:
        conn.execute(text("UPDATE jobs SET attempts = 2 WHERE id = :id"), {"id": b.id})
    result = dict(store.recover_running(max_attempts=2, ttl_s=60))
    assert result == {a.id: "queued", b.id: "failed", c.id: "failed"}
    assert "worker lost" in store.get(a.id).error and "not retried" in store.get(b.id).error
    assert "upload gone" in store.get(c.id).error


def test_audit_log(store):
    store.audit("k", "video.submit", "contract", "job1", bytes=10, retain=False)
    store.audit("server", "job.expire")
    log = store.audit_log()
    assert [r["action"] for r in log] == ["job.expire", "video.submit"]
    assert set(log[0]) == {"id", "at", "key_id", "action", "consent", "job_id", "detail"}
    assert log[0]["detail"] is None and log[1]["detail"] == '{"bytes": 10, "retain": false}'
    assert (log[1]["key_id"], log[1]["consent"], log[1]["job_id"]) == ("k", "contract", "job1")
    assert len(store.audit_log(limit=1)) == 1


def test_transactions_roll_back_and_data_persists(db, tmp_path):
    store = JobStore(db)
    a = _job(store, tmp_path, "a")
    with pytest.raises(RuntimeError):
        with store._tx() as conn:
            conn.execute(text("UPDATE jobs SET state = 'done' WHERE id = :id"), {"id": a.id})
            raise RuntimeError("abort")
    assert store.get(a.id).state == "queued"
    store.close()
    again = JobStore(db)  # tables exist: opened, not recreated
    assert again.get(a.id) == a
    again.close()


def test_store_url_and_path():
    s = JobStore.__new__(JobStore)
    s.url = database_url("rel/jobs.db", absolute=True)
    assert s.path == Path.cwd() / "rel" / "jobs.db" and s.url.drivername == "sqlite"
    s.url = database_url("postgresql+psycopg://u:pw@db/x")
    assert s.path is None
    assert mask_url(s.url) == "postgresql+psycopg://u:***@db/x" == mask_url("postgresql+psycopg://u:pw@db/x")
    assert worker_database_arg(s)[0] == "-"  # the password never goes on a command line
    s.url = database_url("sqlite:////srv/a.db")
    assert worker_database_arg(s) == ("sqlite:////srv/a.db", None)


# ---------------------------------------------------------------------- atomic claims
def test_claim_next_is_atomic_under_concurrent_claimers(db, tmp_path):
    """8 claimers, each with its own connection pool (like separate processes): every job once."""
    setup = JobStore(db)
    n_jobs, n_claimers = 60, 8
    ids = {_job(setup, tmp_path, f"j{i}_").id for i in range(n_jobs)}
    claimed: list[list[str]] = [[] for _ in range(n_claimers)]
    errors: list[BaseException] = []
    start = threading.Barrier(n_claimers)

    def claimer(i: int) -> None:
        store = JobStore(db)
        try:
            start.wait()
            while (job := store.claim_next()) is not None:
                assert job.state == "running" and job.attempts == 1
                claimed[i].append(job.id)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(n_claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    every = [j for c in claimed for j in c]
    assert len(every) == n_jobs and set(every) == ids  # each job exactly once
    assert setup.count("running") == n_jobs and all(j.attempts == 1 for j in setup.list())
    setup.close()


# ---------------------------------------------------------------------- the shared rate limiter
def test_database_rate_limiter_sliding_window(store):
    rl = DatabaseRateLimiter(store.engine)
    who = Principal("k", 2)
    t0 = 6000.0  # the start of a window (windows are floor(t / 60))
    rl.check(who, now=t0 + 1)
    rl.check(who, now=t0 + 2)
    with pytest.raises(ServiceError) as info:
        rl.check(who, now=t0 + 3)
    assert info.value.status == 429 and info.value.code == "rate_limited"
    assert info.value.headers["Retry-After"] == "87"  # next window, once half of this one has faded
    with pytest.raises(ServiceError):
        rl.check(who, now=t0 + 80)  # 2 * (1 - 20/60) = 1.33 still weigh in from the previous window
    rl.check(who, now=t0 + 90)  # 2 * 0.5 = 1 left: room for one
    with pytest.raises(ServiceError) as info:
        rl.check(who, now=t0 + 91)
    assert int(info.value.headers["Retry-After"]) >= 1
    rl.check(who, now=t0 + 185)  # two windows on: the old rows no longer count
    rl.check(Principal("other", 1), now=t0 + 91)  # keys are counted apart
    for _ in range(5):
        rl.check(Principal("unlimited", 0), now=t0 + 91)
    with store._tx() as c:  # rows older than the previous window were dropped
        windows = {r[0] for r in c.execute(text("SELECT window_index FROM rate_hits WHERE key_id = 'k'"))}
    assert windows == {int((t0 + 185) // 60)}


def test_database_rate_limiter_holds_across_limiters_and_threads(db):
    """4 'servers' (own engines), 4 threads each, 10 requests a thread, limit 25: exactly 25 pass."""
    stores = [JobStore(db) for _ in range(4)]
    limiters = [DatabaseRateLimiter(s.engine) for s in stores]
    who, now = Principal("shared", 25), 12000.0 + 30
    ok, refused = [], []
    lock = threading.Lock()

    def client(rl: DatabaseRateLimiter) -> None:
        for _ in range(10):
            try:
                rl.check(who, now=now)
                outcome = ok
            except ServiceError as exc:
                assert exc.status == 429
                outcome = refused
            with lock:
                outcome.append(1)

    threads = [threading.Thread(target=client, args=(rl,)) for rl in limiters for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert (len(ok), len(refused)) == (25, 135)
    for s in stores:
        s.close()


# ---------------------------------------------------------------------- workers get the URL
def test_worker_process_opens_the_database_by_url(tmp_path, request):
    """A worker started by the pool records its outcome in the pool's database (here: its upload is
    gone). On PostgreSQL the URL carries a password: it travels in the environment."""
    urls = [f"sqlite:///{tmp_path / 'w.db'}"]
    try:
        server = request.getfixturevalue("postgres_url")
        urls.append(database_url(_fresh_postgres_database(server)).set(password="not-needed")
                    .render_as_string(hide_password=False))  # trust auth ignores it
    except pytest.skip.Exception:
        pass
    for url in urls:
        store = JobStore(url)
        job = _job(store, tmp_path, "w", media=False)
        pool = WorkerPool(store, log_dir=tmp_path / "logs", poll_s=0.05, ttl_s=60)
        pool.start()
        try:
            deadline = time.monotonic() + 60
            while store.get(job.id).state in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            pool.stop()
        got = store.get(job.id)
        assert (got.state, got.error) == ("failed", "the upload is gone (deleted before the job ran)"), url
        log = (tmp_path / "logs" / f"{job.id}.log").read_text()
        assert "not-needed" not in log
        store.close()


# ---------------------------------------------------------------------- two live servers, one database
@pytest.mark.parametrize("backend, store, expect", [
    ("sqlite", "database", [404] * 5 + [429] * 3),  # 3 + 2 passed, then both refuse
    ("postgresql", "database", [404] * 5 + [429] * 3),
    ("sqlite", "memory", [404] * 8),  # per-process limiters: each server sees 4, under its own 5
])
def test_two_servers_on_one_database_share_a_rate_limit(tmp_path, request, backend, store, expect):
    """Requests of one key split across two servers: 429 once their total passes the key's limit
    (with the default database limiter; ``rate_limit_store = "memory"`` counts per process)."""
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from affectlens.service.app import create_app
    from affectlens.service.config import ServiceConfig, add_api_key
    from service_helpers import LiveServer

    url = (f"sqlite:///{tmp_path / 'shared.db'}" if backend == "sqlite"
           else _fresh_postgres_database(request.getfixturevalue("postgres_url")))
    keys = tmp_path / "keys.txt"
    key = add_api_key(keys, "limited", rate_per_minute=5)
    apps = [create_app(ServiceConfig(data_dir=tmp_path / f"server{i}", database_url=url, api_key_file=keys,
                                     cleanup_interval_s=3600, rate_limit_store=store)) for i in range(2)]
    with LiveServer(apps[0]) as a, LiveServer(apps[1]) as b:
        answers = [httpx.get(f"{srv.url}/v1/jobs/none", headers={"X-API-Key": key}, timeout=30)
                   for srv in (a, b, a, b, a, b, a, b)]
    assert [r.status_code for r in answers] == expect
    if store == "database":
        refused = answers[-1]
        assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["Retry-After"]) >= 1
