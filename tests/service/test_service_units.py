"""Service pieces without a server: config and keys, consent, rate limits, sniffing, the job store,
clean-up, metrics, schemas that mirror the library's types, and the ``serve`` command."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text as sql_text

from affectlens.faces import Faces, FrameInfo
from affectlens.service.config import ServiceConfig, add_api_key, hash_key, is_loopback, read_key_file
from affectlens.service.jobs import JobStore
from affectlens.service.metrics import Metrics
from affectlens.service.security import (KeyRing, Principal, RateLimiter, ServiceError, check_consent,
                                         looks_like_image, sniff_video)
from affectlens.service.worker import WorkerPool, attempt_eta_s


# ---------------------------------------------------------------------- schemas mirror the library
def _faces() -> Faces:
    probs = np.full((1, 7), 1 / 7, np.float32)
    return Faces(np.array([[1, 2, 30, 40]]), np.array([0.9]), np.zeros((1, 5, 2)), probs,
                 info=FrameInfo("x.jpg", 3, 100.0, (48, 64)))


def test_schemas_mirror_face_frameinfo_and_faces_to_dict():
    schemas = pytest.importorskip("affectlens.service.schemas")
    d = _faces().to_dict()
    assert set(schemas.FaceRecord.model_fields) == set(d["faces"][0])
    assert set(schemas.FrameInfoRecord.model_fields) == set(d["info"])
    assert set(schemas.FacesRecord.model_fields) == set(d)
    schemas.FacesRecord.model_validate(d)  # the library's output validates against the API schema


# ---------------------------------------------------------------------- keys and config
def test_add_api_key_stores_only_the_hash(tmp_path):
    f = tmp_path / "keys.txt"
    key = add_api_key(f, "lab-1")
    add_api_key(f, "slow", rate_per_minute=5)
    text = f.read_text()
    assert key not in text and hash_key(key) in text
    keys = read_key_file(f)
    assert [(k.key_id, k.rate_per_minute) for k in keys] == [("lab-1", None), ("slow", 5)]
    ring = KeyRing(ServiceConfig(api_key_file=f, rate_limit_per_minute=60))
    assert ring.authenticate(key) == Principal("lab-1", 60)
    for bad in (None, "", key + "x"):
        with pytest.raises(ServiceError) as info:
            ring.authenticate(bad)
        assert info.value.status == 401


@pytest.mark.parametrize("line, ok", [
    ("a:" + "0" * 64, True),
    ("a:" + "0" * 64 + ":10  # comment", True),
    ("a:" + "0" * 63, False),
    ("a:" + "G" * 64, False),
    ("a:" + "0" * 64 + ":0", False),
    ("just-a-key", False),
])
def test_key_file_lines(tmp_path, line, ok):
    f = tmp_path / "k.txt"
    f.write_text(line + "\n")
    if ok:
        assert len(read_key_file(f)) == 1
    else:
        with pytest.raises(ValueError, match="k.txt:1"):
            read_key_file(f)


def test_open_mode_only_on_loopback(tmp_path):
    ServiceConfig(host="127.0.0.1", data_dir=tmp_path).validate()
    ServiceConfig(host="::1", data_dir=tmp_path).validate()
    with pytest.raises(ValueError, match="open mode"):
        ServiceConfig(host="0.0.0.0", data_dir=tmp_path).validate()
    f = tmp_path / "keys.txt"
    add_api_key(f, "k")
    ServiceConfig(host="0.0.0.0", data_dir=tmp_path, api_key_file=f).validate()
    assert is_loopback("localhost") and not is_loopback("10.0.0.1") and not is_loopback("example.org")


@pytest.mark.parametrize("kw, match", [
    ({"database_url": "not a url://x"}, "not a valid SQLAlchemy URL"),
    ({"database_url": "nosuchdb://u:secret@db/affect"}, r"nosuchdb://u:\*\*\*@db/affect.*no dialect 'nosuchdb'"),
    ({"database_url": "mysql://u:secret@db/affect"}, r"mysql://u:\*\*\*@db/affect.*driver is not installed"),
    ({"rate_limit_store": "redis"}, "rate_limit_store"),
    ({"max_upload_mb": 0}, "max_upload_mb"),
    ({"rate_limit_per_minute": -1}, "rate_limit_per_minute"),
    ({"consent_bases": ()}, "consent_bases"),
    ({"api_key_file": "missing-keys.txt"}, "no such file"),
])
def test_invalid_config_is_refused_with_a_message(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        ServiceConfig(data_dir=tmp_path, **kw).validate()


def test_config_from_toml_with_overrides(tmp_path):
    f = tmp_path / "service.toml"
    f.write_text('[service]\nport = 9000\nresult_ttl_hours = 2\nconsent_bases = ["contract"]\n')
    cfg = ServiceConfig.from_toml(f, port=9100, host=None)
    assert (cfg.port, cfg.result_ttl_hours, cfg.consent_bases, cfg.host) == (9100, 2, ("contract",), "127.0.0.1")
    assert cfg.db_path == Path("affectlens-data") / "affectlens.db"
    assert cfg.database == "sqlite:///affectlens-data/affectlens.db"
    f.write_text("[service]\nprot = 1\n")
    with pytest.raises(ValueError, match="unknown service setting"):
        ServiceConfig.from_toml(f)


# ---------------------------------------------------------------------- consent, rate limit, sniffing
@pytest.mark.parametrize("required, declared, expect", [
    (True, "subject-consented", "subject-consented"),
    (True, " contract ", "contract"),
    (True, None, 403),
    (True, "", 403),
    (True, "legitimate-interest", 403),
    (False, None, "not-declared"),
    (False, "contract", "contract"),
])
def test_consent_policy(required, declared, expect):
    cfg = ServiceConfig(consent_required=required)
    if expect == 403:
        with pytest.raises(ServiceError) as info:
            check_consent(cfg, declared)
        assert info.value.status == 403 and info.value.code == "consent_required"
    else:
        assert check_consent(cfg, declared) == expect


def test_rate_limiter_sliding_window():
    rl = RateLimiter()
    who = Principal("k", 2)
    rl.check(who, now=0.0)
    rl.check(who, now=1.0)
    with pytest.raises(ServiceError) as info:
        rl.check(who, now=2.0)
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "58"
    rl.check(who, now=60.5)  # the first hit left the window
    rl.check(Principal("unlimited", 0), now=60.5)


@pytest.mark.parametrize("head, suffix", [
    (b"\x00\x00\x00\x18ftypisom", ".mp4"),
    (b"\x00\x00\x00\x14ftypqt  ", ".mov"),
    (b"\x1a\x45\xdf\xa3\x00webm", ".webm"),
    (b"\x1a\x45\xdf\xa3\x00matroska", ".mkv"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", ".avi"),
    (b"\xff\xd8\xff\xe0JFIF", None),
    (b"hello world", None),
])
def test_sniff_video(head, suffix):
    assert sniff_video(head) == suffix


def test_looks_like_image():
    assert looks_like_image(b"\x89PNG\r\n\x1a\n....") and looks_like_image(b"\xff\xd8\xff\xdb")
    assert looks_like_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") and not looks_like_image(b"<html>")


# ---------------------------------------------------------------------- job store and clean-up
def _job(store, tmp_path, name="v", retain=False):
    jid = f"{name}{time.monotonic_ns()}"
    up = tmp_path / "uploads" / jid
    up.mkdir(parents=True)
    (up / "video.mp4").write_bytes(b"x")
    out = tmp_path / "jobs" / jid
    out.mkdir(parents=True)
    (out / "summary.json").write_text("{}")
    return store.create(consent="contract", key_id="k", retain=retain, media_path=str(up / "video.mp4"),
                        out_dir=str(out), options={"fps": 5.0}, job_id=jid)


def test_job_store_claims_in_order_and_recovers_running_jobs(tmp_path):
    store = JobStore(tmp_path / "db" / "jobs.db")
    a, b = _job(store, tmp_path, "a"), _job(store, tmp_path, "b")
    assert store.get(a.id).options == {"fps": 5.0} and store.count("queued") == 2
    first = store.claim_next()
    assert first.id == a.id and first.state == "running" and first.attempts == 1
    store.claim_next()
    with store._tx() as c:
        c.execute(sql_text("UPDATE jobs SET attempts = 2 WHERE id = :id"), {"id": b.id})
    result = dict(store.recover_running(max_attempts=2, ttl_s=60))
    assert result == {a.id: "queued", b.id: "failed"}
    assert "worker lost" in store.get(a.id).error and "not retried" in store.get(b.id).error
    assert store.get(b.id).expires_at is not None
    store.requeue(a.id, "shutdown", refund_attempt=True)
    assert store.get(a.id).attempts == 0
    store.audit("k", "image.analyze", "contract", faces=2)
    log = store.audit_log()
    assert log[0]["action"] == "image.analyze" and log[0]["consent"] == "contract"
    assert set(log[0]) == {"id", "at", "key_id", "action", "consent", "job_id", "detail"}  # no image column
    store.close()


def test_cleanup_deletes_expired_results_and_unretained_uploads(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    done, kept = _job(store, tmp_path, "done"), _job(store, tmp_path, "kept", retain=True)
    for j in (done, kept):
        store.claim_next()
        store.finish(j.id, "done", ttl_s=3600)
    pool = WorkerPool(store, log_dir=tmp_path / "logs")
    assert pool.cleanup() == 0
    assert not Path(done.media_path).exists() and store.get(done.id).media_path is None
    assert Path(kept.media_path).exists() and Path(done.out_dir).exists()
    assert pool.cleanup(now=time.time() + 7200) == 2
    assert store.get(done.id) is None and not Path(done.out_dir).exists()
    assert not Path(kept.media_path).exists()
    assert tmp_path.exists() and (tmp_path / "uploads").exists()  # only the jobs' own folders go
    assert [a["action"] for a in store.audit_log()[:2]] == ["job.expire", "job.expire"]
    store.close()


# ---------------------------------------------------------------------- metrics
def test_metrics_text_format():
    m = Metrics({"affectlens_jobs_queue_depth": ("queued", lambda: 3), "broken": ("x", lambda: 1 / 0)})
    m.observe_request("GET", "/healthz", 200, 0.003)
    m.observe_request("GET", "/healthz", 200, 0.2)
    m.add_faces("image", 2)
    text = m.render()
    assert 'affectlens_http_requests_total{method="GET",route="/healthz",status="200"} 2' in text
    assert 'affectlens_http_request_duration_seconds_bucket{route="/healthz",le="0.005"} 1' in text
    assert 'affectlens_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"} 2' in text
    assert 'affectlens_faces_analysed_total{endpoint="image"} 2' in text
    assert "affectlens_jobs_queue_depth 3" in text and "broken" not in text
    assert text.endswith("\n")


# ---------------------------------------------------------------------- the serve command
def test_cli_imports_without_fastapi_and_lists_serve():
    code = ("import sys; sys.modules['fastapi'] = None; import affectlens.cli as c; "
            "p = c.build_parser(); a = p.parse_args(['serve', '--port', '0']); print(a.func.__name__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "cmd_serve"


def test_serve_new_key_and_open_mode_refusal(tmp_path, capsys):
    from affectlens.cli import main

    keys = tmp_path / "keys.txt"
    assert main(["serve", "--new-key", "ux-lab", "--api-key-file", str(keys)]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("al_") and read_key_file(keys)[0].sha256 == hash_key(key)
    assert main(["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d")]) == 2
    assert "open mode" in capsys.readouterr().err


def test_an_unhandled_exception_is_a_json_500_without_a_traceback(tmp_path):
    from fastapi.testclient import TestClient

    from affectlens.service.app import create_app

    app = create_app(ServiceConfig(data_dir=tmp_path, cleanup_interval_s=3600))

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret detail /etc/passwd")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/json")
    body = r.json()["error"]
    assert body["code"] == "internal_error" and "RuntimeError" in body["message"]
    assert "secret detail" not in body["message"] and "Traceback" not in r.text


def test_a_server_default_window_does_not_refuse_a_client_choosing_another_smoother(tmp_path):
    """An operator's moving-average window is the default smoother's setting: a client that asks for
    smooth=hmm gets past the options (here to the empty-body check), one that sends window with hmm
    is told why."""
    from fastapi.testclient import TestClient

    from affectlens.service.app import create_app

    app = create_app(ServiceConfig(data_dir=tmp_path, video_defaults={"smooth": "moving-average", "window": 15}))
    with TestClient(app) as client:
        headers = {"X-Consent": "subject-consented", "Origin": "http://testserver"}
        r = client.post("/v1/videos?smooth=hmm", content=b"", headers=headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_video", r.text
        r = client.post("/v1/videos?smooth=hmm&window=10", content=b"", headers=headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_option", r.text
        assert "moving-average" in r.json()["error"]["message"]


def test_a_resumed_attempts_eta_counts_its_own_pace():
    assert attempt_eta_s(10.0, 0.0, 0.5) == pytest.approx(10.0)   # fresh: half done in 10 s
    # resumed at 60%: 10 s for the next 10% means 30 s for the last 30% (not 10 / 0.7 * 0.3 = 4.3 s)
    assert attempt_eta_s(10.0, 0.6, 0.7) == pytest.approx(30.0)
    assert attempt_eta_s(1.0, 0.6, 0.61) is None                   # too little done to tell
