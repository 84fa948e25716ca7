"""One run per job: ``kill -9`` of the server mid-job stops its worker, the restarted server re-runs
the job only after its lease expired, with one worker, and every frame index appears once."""

from __future__ import annotations

import json
import os
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from affectlens.service.jobs import JobStore  # noqa: E402
from conftest import VIDEOS, need  # noqa: E402
from pg_helpers import postgres_url  # noqa: E402,F401 (a fixture)
from service_helpers import ServerProcess  # noqa: E402

CONSENT = {"X-Consent": "subject-consented"}
LEASE_S = 4.0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return not any(line.startswith("State:") and line.split()[1] in ("Z", "X") for line in fh)
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_kill_9_of_the_server_mid_job_gives_one_worker_and_no_duplicate_frames(tmp_path):
    video = need(VIDEOS / "single_face.mp4").read_bytes()
    config = f"[service]\njob_lease_s = {LEASE_S}\ncleanup_interval_s = 3600\n"
    data = tmp_path / "affectlens-data"
    first = ServerProcess(tmp_path, [], config=config).start()
    try:
        with httpx.Client(base_url=first.url, headers=CONSENT, timeout=60) as http:
            job_id = http.post("/v1/videos", content=video).json()["id"]
            t0 = time.monotonic()
            while True:
                job = http.get(f"/v1/jobs/{job_id}").json()
                if job["state"] == "running" and job["frames_analysed"] >= 5:
                    break
                assert job["state"] in ("queued", "running") and time.monotonic() - t0 < 90, job
                time.sleep(0.05)
        store = JobStore(data / "affectlens.db")
        before = store.get(job_id)
        first.kill()  # SIGKILL: no shutdown handler runs
        killed_at = time.time()
        worker = before.worker_pid
        assert worker and before.owner and before.lease_until
        t0 = time.monotonic()
        while _alive(worker):  # the orphaned worker notices and stops by itself
            assert time.monotonic() - t0 < 5, "the worker of a killed server kept running"
            time.sleep(0.1)
        worker_gone_at = time.time()
        assert store.get(job_id).state == "running"  # nothing recorded by the stopped worker
    finally:
        first.stop()
    second = ServerProcess(tmp_path, [], config=config, port=first.port)
    with second, httpx.Client(base_url=second.url, headers=CONSENT, timeout=60) as http:
        t0 = time.monotonic()
        while True:
            job = store.get(job_id)
            if job.state in ("done", "failed"):
                break
            assert time.monotonic() - t0 < 120, job
            time.sleep(0.05)
        status = http.get(f"/v1/jobs/{job_id}").json()
        assert status["state"] == "done" and status["attempts"] == 2, status
        frames = http.get(f"/v1/jobs/{job_id}/results").json()["frames"]
    idx = [f["info"]["frame_index"] for f in frames]
    assert idx == list(range(len(idx))) and len(idx) == 72, idx  # every frame once, none missing
    audit = [a for a in store.audit_log() if a["job_id"] == job_id]
    assert [a["action"] for a in audit].count("job.done") == 1
    recover = [a for a in audit if a["action"] == "job.recover"]
    assert len(recover) == 1 and json.loads(recover[0]["detail"])["state"] == "queued"
    # re-run only after the lease the dead server held had expired (it renewed it at most until its death)
    assert recover[0]["at"] >= before.lease_until and recover[0]["at"] >= worker_gone_at > killed_at
    log = (data / "logs" / f"{job_id}.log").read_text()
    pids = {int(line.split(" worker ")[1].split()[0]) for line in log.splitlines() if " worker " in line}
    assert len(pids) == 2 and worker in pids, log[-2000:]
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    import uuid

    from sqlalchemy import create_engine, text

    from affectlens.service.db import database_url

    server = request.getfixturevalue("postgres_url")
    name = "l_" + uuid.uuid4().hex[:12]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return database_url(server).set(database=name).render_as_string(hide_password=False)


def test_a_second_server_leaves_a_live_servers_job_alone_and_takes_it_after_the_lease(shared_db, tmp_path):
    a, b = JobStore(shared_db), JobStore(shared_db)  # two servers' connections to one database
    media = tmp_path / "uploads" / "j" / "video.mp4"
    media.parent.mkdir(parents=True)
    media.write_bytes(b"x")
    a.create(consent="contract", key_id="k", retain=False, media_path=str(media), out_dir=str(tmp_path / "jobs" / "j"),
             options={}, job_id="j")
    job = a.claim_next(owner="server-a", lease_s=2.0)
    assert b.claim_next(owner="server-b", lease_s=2.0) is None  # never claimed twice
    assert b.recover_running(max_attempts=3, ttl_s=60) == []    # a's lease runs: b leaves it alone
    time.sleep(1.0)
    assert a.renew_leases("server-a", 2.0) == 1 and b.renew_leases("server-b", 2.0) == 0
    time.sleep(1.5)
    assert b.recover_running(max_attempts=3, ttl_s=60) == []    # renewed: still a's
    assert a.update_progress("j", 0.5, None, 10, token=job.lease_token)
    time.sleep(2.2)                                               # a died: no renewal
    assert b.recover_running(max_attempts=3, ttl_s=60) == [("j", "queued")]
    taken = b.claim_next(owner="server-b", lease_s=2.0)
    assert taken.id == "j" and taken.attempts == 2 and taken.lease_token != job.lease_token
    # the old worker's writes are refused from now on: it stops without recording anything
    assert not a.update_progress("j", 0.9, None, 20, token=job.lease_token)
    assert not a.finish("j", "done", ttl_s=60, token=job.lease_token)
    assert b.finish("j", "done", ttl_s=60, frames=30, token=taken.lease_token)
    assert b.get("j").state == "done" and b.get("j").frames == 30
    a.close()
    b.close()
