"""``affectlens serve --engine ray`` (issue 19): video jobs run as Ray tasks on a local Ray started in
the test, through real HTTP; the same frames and labels as the local engine's worker process for the
same clip, a bad video reported as failed, a Ray worker killed mid-job re-queued within the attempt
rules, and a deleted job leaving nothing on disk."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

pytest.importorskip("fastapi")
ray = pytest.importorskip("ray")
httpx = pytest.importorskip("httpx")

from affectlens.service.app import create_app  # noqa: E402
from affectlens.service.config import ServiceConfig  # noqa: E402
from affectlens.service.jobs import JobStore  # noqa: E402
from conftest import VIDEOS, need  # noqa: E402
from service_helpers import LiveServer, wait_job  # noqa: E402

pytestmark = pytest.mark.slow

CONSENT = {"X-Consent": "subject-consented"}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _server(data, engine: str):
    config = ServiceConfig(data_dir=data, engine=engine, max_attempts=2, rate_limit_per_minute=0, threads=1,
                           consent_required=True)
    srv = LiveServer(create_app(config))
    srv.data = data
    return srv


@pytest.fixture(scope="module")
def ray_server(local_ray, tmp_path_factory):
    with _server(tmp_path_factory.mktemp("svc-ray"), "ray") as srv:
        srv.http = httpx.Client(base_url=srv.url, headers=CONSENT, timeout=60)
        yield srv
        srv.http.close()


def _frames(res: dict) -> list[tuple]:
    """(frame index, [(track, emotion, rounded scores)]) of every analysed frame."""
    return [(f["info"]["frame_index"], [(x["track_id"], x["emotion"], {k: round(v, 4) for k, v in x["scores"].items()})
                                        for x in f["faces"]]) for f in res["frames"]]


def test_ray_job_gives_the_local_engines_results(ray_server, tmp_path):
    clip = need(VIDEOS / "single_face.mp4").read_bytes()
    assert httpx.get(ray_server.url + "/healthz").json()["engine"] == "ray"
    job = ray_server.http.post("/v1/videos", content=clip, params={"fps": "10"}).json()
    done = wait_job(ray_server.http, job["id"])
    assert done["state"] == "done" and done["progress_percent"] == 100.0, done
    row = JobStore(ray_server.data / "affectlens.db").get(job["id"])
    assert row.worker_pid is None  # the Ray task recorded its pid while running; cleared when done
    by_ray = ray_server.http.get(f"/v1/jobs/{job['id']}/results").json()
    with _server(tmp_path / "local", "local") as local, httpx.Client(base_url=local.url, headers=CONSENT,
                                                                      timeout=60) as http:
        assert httpx.get(local.url + "/healthz").json()["engine"] == "local"
        ljob = http.post("/v1/videos", content=clip, params={"fps": "10"}).json()
        assert wait_job(http, ljob["id"])["state"] == "done"
        by_local = http.get(f"/v1/jobs/{ljob['id']}/results").json()
    assert _frames(by_ray) == _frames(by_local) and len(by_ray["frames"]) == done["frames_analysed"] > 10
    assert by_ray["job"]["model"] == by_local["job"]["model"]
    assert by_ray["summary"]["source"]["source"] == "video.mp4"  # no server path in results
    # same storage rules: upload gone at the end, results only under the data folder, gone on delete
    assert not (ray_server.data / "uploads" / job["id"]).exists()
    assert (ray_server.data / "jobs" / job["id"] / "frames.jsonl").exists()
    log = ray_server.data / "logs" / f"{job['id']}.log"  # the task's log records: in the data folder
    assert "attempt 1 started" in log.read_text()
    assert ray_server.http.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert not (ray_server.data / "jobs" / job["id"]).exists()
    assert not (ray_server.data / "logs" / f"{job['id']}.log").exists()


def _undecodable_avi(path) -> bytes:
    """An AVI container whose every frame chunk holds random bytes: it opens (so the upload is
    accepted), and no frame decodes (so the job fails while it runs)."""
    import random
    import struct

    import cv2
    import numpy as np

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(20):
        w.write(np.full((120, 160, 3), 10 * i, np.uint8))
    w.release()
    data, rng, i = bytearray(path.read_bytes()), random.Random(0), 0
    while (i := data.find(b"00dc", i)) >= 0:  # each frame chunk: "00dc", its size, the JPEG bytes
        size = struct.unpack("<I", data[i + 4:i + 8])[0]
        if size > 100 and i + 8 + size <= len(data):
            data[i + 8:i + 8 + size] = rng.randbytes(size)
        i += 4
    return bytes(data)


def test_bad_video_is_reported_failed(ray_server, tmp_path):
    r = ray_server.http.post("/v1/videos", content=_undecodable_avi(tmp_path / "bad.avi"))
    assert r.status_code == 202, r.text
    job = wait_job(ray_server.http, r.json()["id"])
    assert job["state"] == "failed" and "no decodable frame" in job["error"], job
    assert str(ray_server.data) not in job["error"]  # the upload is called "upload", never by its path
    assert not (ray_server.data / "uploads" / job["id"]).exists()
    assert ray_server.http.delete(f"/v1/jobs/{job['id']}").status_code == 204


def _kill_task_when_running(store: JobStore, job_id: str, attempt: int) -> None:
    """SIGKILL the Ray worker process running ``attempt`` of a job once it has reported progress."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        row = store.get(job_id)
        if row.state == "running" and row.attempts == attempt and row.frames > 0 and row.worker_pid:
            os.kill(row.worker_pid, signal.SIGKILL)  # the Ray worker process running the task
            return
        assert row.state in ("queued", "running"), row
        time.sleep(0.02)
    raise AssertionError(f"attempt {attempt} of the Ray task never reported progress")


def test_killed_ray_worker_is_requeued_and_the_job_resumes_then_fails_when_out_of_attempts(ray_server):
    clip = need(VIDEOS / "single_face.mp4").read_bytes()
    store = JobStore(ray_server.data / "affectlens.db")
    job_id = ray_server.http.post("/v1/videos", content=clip).json()["id"]
    _kill_task_when_running(store, job_id, 1)
    job = wait_job(ray_server.http, job_id)
    assert job["state"] == "done" and job["attempts"] == 2, job
    requeue = [a for a in store.audit_log() if a["action"] == "job.requeue" and a["job_id"] == job_id]
    assert requeue and "Ray task failed" in json.loads(requeue[0]["detail"])["reason"]
    idx = [f["info"]["frame_index"] for f in ray_server.http.get(f"/v1/jobs/{job_id}/results").json()["frames"]]
    assert idx == sorted(set(idx)) and len(idx) >= 60  # resumed, no duplicate frames
    assert ray_server.http.delete(f"/v1/jobs/{job_id}").status_code == 204

    job_id = ray_server.http.post("/v1/videos", content=clip).json()["id"]  # killed on both attempts (max 2)
    _kill_task_when_running(store, job_id, 1)
    _kill_task_when_running(store, job_id, 2)
    job = wait_job(ray_server.http, job_id)
    assert job["state"] == "failed" and job["attempts"] == 2, job
    assert "Ray task failed" in job["error"] and "attempt 2 of 2" in job["error"] and "not retried" in job["error"]
    assert not (ray_server.data / "uploads" / job_id).exists()  # the upload goes when the job ends
    assert ray_server.http.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not (ray_server.data / "jobs" / job_id).exists()
    store.close()
