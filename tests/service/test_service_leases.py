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
