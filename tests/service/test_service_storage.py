"""Deletion that really deletes: a real ``affectlens serve`` process (own working directory), real
video jobs, and a listing of the data folder after the job ends, after DELETE and after TTL expiry,
for the default relative data folder and for an absolute one."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from affectlens.service.jobs import JobStore  # noqa: E402
from affectlens.service.worker import WorkerPool  # noqa: E402
from conftest import VIDEOS, need  # noqa: E402
from service_helpers import ServerProcess, wait_job  # noqa: E402

CONSENT = {"X-Consent": "subject-consented"}
TTL_S = 15.0


def _files_of(root: Path, job_id: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if job_id in str(p.relative_to(root)))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["relative-default", "absolute"])
def test_job_files_are_gone_after_job_end_delete_and_ttl(tmp_path, where):
    video = need(VIDEOS / "single_face.mp4").read_bytes()
    cwd = tmp_path / "cwd"
    if where == "absolute":
        data = tmp_path / "elsewhere" / "data"
        args = ["--data-dir", str(data)]
    else:
        data = cwd / "affectlens-data"  # the default ./affectlens-data, relative to the server's cwd
        args = []
    config = f"[service]\nresult_ttl_hours = {TTL_S / 3600}\ncleanup_interval_s = 0.5\nrate_limit_per_minute = 0\n"
    with ServerProcess(cwd, args, config=config) as srv, httpx.Client(base_url=srv.url, headers=CONSENT,
                                                                      timeout=60) as http:
        ids = []
        for _ in range(2):
            r = http.post("/v1/videos", content=video, params={"fps": "5", "end_s": "1"})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        deleted, expiring = ids
        for job_id in ids:  # each checked as soon as it is done (it expires TTL_S later)
            job = wait_job(http, job_id)
            assert job["state"] == "done", job
            # job end: the upload is gone, the results are where the API reads them, nothing else
            files = _files_of(data, job_id)
            assert {f"jobs/{job_id}/{n}" for n in ("frames.csv", "frames.jsonl", "intervals.csv", "report.html",
                                                   "summary.json")} | {f"logs/{job_id}.log"} <= set(files)
            assert all(f.startswith(f"jobs/{job_id}") or f == f"logs/{job_id}.log" for f in files), files
            assert not (data / "uploads" / job_id).exists()
            if job_id != deleted:
                continue
            res = http.get(f"/v1/jobs/{deleted}/results")
            assert res.status_code == 200, res.text
            assert res.json()["summary"]["source"]["source"] == "video.mp4"
            assert http.get(f"/v1/jobs/{deleted}/results", params={"format": "csv"}).status_code == 200
            assert http.get(f"/v1/jobs/{deleted}/report").status_code == 200
            # DELETE: nothing of that job is left anywhere
            assert http.delete(f"/v1/jobs/{deleted}").status_code == 204
            assert _files_of(data, deleted) == [] and _files_of(cwd, deleted) == []
        # TTL expiry: the cleanup removes the other job's results and its row
        t0 = time.monotonic()
        while http.get(f"/v1/jobs/{expiring}").status_code != 404:
            assert time.monotonic() - t0 < TTL_S + 20, "the job never expired"
            time.sleep(0.3)
        assert _files_of(data, expiring) == [] and _files_of(cwd, expiring) == []
    # the server wrote nothing outside its data folder (and the test's own config and log)
    assert sorted(p.name for p in cwd.iterdir()) == sorted(
        ["server.log", "service.toml"] + (["affectlens-data"] if where != "absolute" else []))
    assert sorted(p.name for p in (data / "uploads").iterdir()) == []
    assert sorted(p.name for p in (data / "jobs").iterdir()) == []


def _immutable(path: Path) -> bool:
    """Make ``path`` undeletable (``chattr +i`` as root, a read-only parent otherwise)."""
    if os.geteuid() == 0:
        return shutil.which("chattr") is not None and subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True).returncode == 0
    os.chmod(path.parent, 0o500)
    return True


def _mutable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    else:
        os.chmod(path.parent, 0o700)


def test_the_database_never_says_deleted_for_a_file_that_still_exists(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    up = tmp_path / "uploads" / "j1"
    up.mkdir(parents=True)
    media = up / "video.mp4"
    media.write_bytes(b"x")
    out = tmp_path / "jobs" / "j1"
    out.mkdir(parents=True)
    store.create(consent="contract", key_id="k", retain=False, media_path=str(media), out_dir=str(out),
                 options={}, job_id="j1")
    store.claim_next()
    store.finish("j1", "done", ttl_s=-1.0)  # already expired
    if not _immutable(media):
        pytest.skip("cannot make a file undeletable here")
    try:
        pool = WorkerPool(store, log_dir=tmp_path / "logs")
        assert pool.cleanup() == 0  # could not delete: not counted, the row stays
        job = store.get("j1")
        assert job is not None and job.media_path == str(media) and media.exists()
    finally:
        _mutable(media)
    assert pool.cleanup() == 1
    assert store.get("j1") is None and not up.exists() and not out.exists()
    store.close()
