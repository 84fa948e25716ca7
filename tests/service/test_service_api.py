"""The service end to end: a real uvicorn server on loopback, real HTTP (httpx), a real WebSocket
client (websockets), a real SQLite file and real worker processes."""

from __future__ import annotations

import json
import os
import signal
import struct
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
ws_client = pytest.importorskip("websockets.sync.client")

import cv2  # noqa: E402
from sqlalchemy import text as sql_text  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from affectlens.service.app import create_app  # noqa: E402
from affectlens.service.config import ServiceConfig, add_api_key  # noqa: E402
from affectlens.service.jobs import JobStore  # noqa: E402
from conftest import VIDEOS, need  # noqa: E402
from service_helpers import LiveServer, wait_job  # noqa: E402

CONSENT = {"X-Consent": "subject-consented"}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data = tmp_path_factory.mktemp("svc")
    keys = data / "keys.txt"
    key = add_api_key(keys, "tester")
    limited = add_api_key(keys, "limited", rate_per_minute=3)
    other = add_api_key(keys, "other")
    # A job a crashed server left "running" after its last attempt: start-up must fail it, with the reason.
    store = JobStore(data / "affectlens.db")
    stale = store.create(consent="contract", key_id="tester", retain=False, media_path=str(data / "gone.mp4"),
                         out_dir=str(data / "jobs" / "stale"), options={})
    store.claim_next()
    with store._tx() as c:
        c.execute(sql_text("UPDATE jobs SET attempts = 2 WHERE id = :id"), {"id": stale.id})
    store.close()
    config = ServiceConfig(data_dir=data, api_key_file=keys, max_image_mb=1.0, max_upload_mb=4.0,
                           rate_limit_per_minute=1000, max_attempts=2, cleanup_interval_s=3600)
    app = create_app(config)
    with LiveServer(app) as srv:
        srv.data, srv.app, srv.stale_id = data, app, stale.id
        srv.key, srv.limited, srv.other = key, limited, other
        srv.http = httpx.Client(base_url=srv.url, headers={"X-API-Key": key}, timeout=60)
        yield srv
        srv.http.close()


def _error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert "Traceback" not in body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


# ---------------------------------------------------------------------- basics
def test_healthz_and_openapi_list_the_endpoints(live):
    h = httpx.get(live.url + "/healthz").json()
    from affectlens.cpu import cpu_info
    from affectlens.models import select_variant

    assert h["model"] == select_variant()[0] and h["model_choice"] == select_variant()[1]
    assert cpu_info().int8_path in h["cpu"]
    assert h["status"] == "ok" and h["open_mode"] is False and h["consent_required"] is True
    paths = httpx.get(live.url + "/openapi.json").json()["paths"]
    for p in ("/v1/images:analyze", "/v1/videos", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/results",
              "/v1/jobs/{job_id}/report", "/healthz", "/metrics"):
        assert p in paths, p
    assert "delete" in paths["/v1/jobs/{job_id}"]
    schema = httpx.get(live.url + "/openapi.json").json()["components"]["schemas"]
    assert set(schema["FaceRecord"]["properties"]) >= {"bbox", "landmarks", "det_score", "scores", "emotion"}
    assert "multipart/form-data" in paths["/v1/images:analyze"]["post"]["requestBody"]["content"]


def test_stale_running_job_is_failed_with_a_reason_at_startup(live):
    job = live.http.get(f"/v1/jobs/{live.stale_id}").json()
    assert job["state"] == "failed"
    assert "worker lost" in job["error"] and "not retried" in job["error"]


def test_missing_or_wrong_api_key_is_401(live, single_face_path):
    body = single_face_path.read_bytes()
    _error(httpx.post(live.url + "/v1/images:analyze", content=body, headers=CONSENT), 401, "unauthorized")
    r = httpx.post(live.url + "/v1/images:analyze", content=body, headers={**CONSENT, "X-API-Key": "al_wrong"})
    assert "invalid API key" in _error(r, 401, "unauthorized")["message"]
    _error(httpx.get(live.url + "/v1/jobs/abc"), 401, "unauthorized")


@pytest.mark.parametrize("headers, data", [
    ({}, None),                                       # raw body, no declaration
    ({"X-Consent": "because-i-said-so"}, None),       # not an accepted basis
    ({}, {"consent": ""}),                            # multipart with an empty field
])
def test_analysis_without_valid_consent_is_403(live, single_face_path, headers, data):
    if data is None:
        r = live.http.post("/v1/images:analyze", content=single_face_path.read_bytes(), headers=headers)
    else:
        r = live.http.post("/v1/images:analyze", files={"file": ("x.jpg", single_face_path.read_bytes())},
                           data=data, headers=headers)
    msg = _error(r, 403, "consent_required")["message"]
    assert "subject-consented" in msg


# ---------------------------------------------------------------------- images
def test_image_with_one_face(live, single_face_path):
    r = live.http.post("/v1/images:analyze", files={"file": ("face.jpg", single_face_path.read_bytes())},
                       data={"consent": "research-protocol"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["faces"]) == 1 and len(body["labels"]) == len(body["faces"][0]["scores"]) >= 7
    face = body["faces"][0]
    assert set(face["scores"]) == set(body["labels"])
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert face["emotion"] == max(face["scores"], key=face["scores"].get)
    assert len(face["bbox"]) == 4 and len(face["landmarks"]) == 5 and face["track_id"] is None
    h, w = cv2.imread(str(single_face_path)).shape[:2]
    assert body["image_size_hw"] == [h, w]
    # the raw-body form gives the same answer
    raw = live.http.post("/v1/images:analyze", content=single_face_path.read_bytes(), headers=CONSENT).json()
    assert raw["faces"] == body["faces"]


def test_bytes_that_are_not_an_image_are_415_and_a_broken_or_empty_upload_is_422(live, single_face_path):
    noise = os.urandom(4096)
    msg = _error(live.http.post("/v1/images:analyze", content=noise, headers=CONSENT), 415,
                 "unsupported_media_type")["message"]
    assert "not a decodable image" in msg
    truncated = single_face_path.read_bytes()[:3000]
    _error(live.http.post("/v1/images:analyze", content=truncated, headers=CONSENT), 422, "invalid_image")
    # an empty upload is a 422 for images as for video jobs
    msg = _error(live.http.post("/v1/images:analyze", content=b"", headers=CONSENT), 422, "invalid_image")["message"]
    assert "empty upload" in msg


def test_malformed_multipart_is_400(live, single_face_path):
    r = live.http.post("/v1/images:analyze", content=b"--x\r\nnot really multipart",
                       headers={**CONSENT, "Content-Type": "multipart/form-data; boundary=x"})
    _error(r, 400, "bad_request")
    r = live.http.post("/v1/images:analyze", data={"consent": "contract"},
                       files={"image": ("f.jpg", single_face_path.read_bytes())})
    assert "'file'" in _error(r, 400, "bad_request")["message"]


def test_oversize_upload_is_413(live):
    big = b"\xff\xd8\xff" + bytes(int(1.5 * 2 ** 20))
    msg = _error(live.http.post("/v1/images:analyze", content=big, headers=CONSENT), 413,
                 "payload_too_large")["message"]
    assert "1 MiB" in msg
    _error(live.http.post("/v1/videos", content=bytes(5 * 2 ** 20), headers=CONSENT), 413, "payload_too_large")


def test_rate_limit_per_key_is_429(live):
    h = {"X-API-Key": live.limited}
    codes = [httpx.get(live.url + "/v1/jobs/nope", headers=h).status_code for _ in range(3)]
    assert codes == [404, 404, 404]
    r = httpx.get(live.url + "/v1/jobs/nope", headers=h)
    assert "3 requests per minute" in _error(r, 429, "rate_limited")["message"]
    assert int(r.headers["Retry-After"]) >= 1
    assert live.http.get("/v1/jobs/nope").status_code == 404  # other keys are not affected


def test_unknown_routes_and_methods_are_json_errors(live):
    _error(live.http.get("/v1/nothing-here"), 404, "not_found")
    _error(live.http.put("/v1/videos"), 405, "method_not_allowed")


# ---------------------------------------------------------------------- video jobs
def test_video_job_lifecycle(live):
    video = need(VIDEOS / "single_face.mp4")
    r = live.http.post("/v1/videos", files={"file": ("clip.mp4", video.read_bytes())},
                       data={"consent": "contract", "fps": "10"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running") and r.headers["location"] == f"/v1/jobs/{job['id']}"
    job = wait_job(live.http, job["id"])
    assert job["state"] == "done", job
    assert job["progress_percent"] == 100.0 and job["frames_analysed"] > 10 and job["expires_at"]

    res = live.http.get(f"/v1/jobs/{job['id']}/results").json()
    assert len(res["frames"]) == job["frames_analysed"]
    assert res["summary"]["source"]["source"] == "video.mp4"  # no server path leaks into results
    assert res["intervals"] and res["intervals"][0]["track_id"] == 1
    faced = [f for f in res["frames"] if f["faces"]]
    assert faced and sum(faced[-1]["faces"][0]["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    csv_text = live.http.get(f"/v1/jobs/{job['id']}/results", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("frame_index") or "timestamp_ms" in csv_text.splitlines()[0]
    assert "track_id" in live.http.get(f"/v1/jobs/{job['id']}/results",
                                       params={"format": "csv", "part": "intervals"}).text.splitlines()[0]
    episodes = live.http.get(f"/v1/jobs/{job['id']}/results", params={"format": "csv", "part": "episodes"})
    assert episodes.status_code == 200 and "peak_ms" in episodes.text.splitlines()[0]
    report = live.http.get(f"/v1/jobs/{job['id']}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "<html" in report.text[:200].lower()

    # not retained: the upload is gone once the job ended; results stay until deleted
    assert not (live.data / "uploads" / job["id"]).exists()
    assert (live.data / "jobs" / job["id"] / "summary.json").exists()
    # other keys cannot see it
    _error(httpx.get(live.url + f"/v1/jobs/{job['id']}", headers={"X-API-Key": live.other}), 404, "not_found")

    assert live.http.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert not (live.data / "jobs" / job["id"]).exists()
    _error(live.http.get(f"/v1/jobs/{job['id']}"), 404, "not_found")
    _error(live.http.get(f"/v1/jobs/{job['id']}/report"), 404, "not_found")

    audit = JobStore(live.data / "affectlens.db").audit_log()
    actions = {(a["action"], a["job_id"]) for a in audit}
    assert {("video.submit", job["id"]), ("job.done", job["id"]), ("job.delete", job["id"])} <= actions
    assert all(a["key_id"] in ("tester", "limited", "other", "server", "open") for a in audit)


def test_retained_upload_is_kept_until_delete(live):
    video = need(VIDEOS / "single_face.mp4")
    r = live.http.post("/v1/videos", content=video.read_bytes(),
                       params={"retain": "true", "fps": "5", "end_s": "1"}, headers=CONSENT)
    assert r.status_code == 202, r.text
    job = wait_job(live.http, r.json()["id"])
    assert job["state"] == "done" and job["retain"] is True
    assert (live.data / "uploads" / job["id"] / "video.mp4").exists()
    assert live.http.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert not (live.data / "uploads" / job["id"]).exists()


def _face_detail(frame, bbox) -> float:
    """Laplacian variance (sharpness) of the middle of a face box."""
    x1, y1, x2, y2 = bbox
    w, h = x2 - x1, y2 - y1
    crop = frame[int(y1 + 0.2 * h):int(y2 - 0.2 * h), int(x1 + 0.2 * w):int(x2 - 0.2 * w)]
    return float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def _first_frame(data: bytes, path):
    path.write_bytes(data)
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok, f"{path.name} does not decode"
    return frame


@pytest.mark.parametrize("blur", ["default", "false"])
def test_annotated_video_blurs_faces_unless_asked_not_to(live, tmp_path, blur):
    video = need(VIDEOS / "single_face.mp4")
    params = {"annotate": "true", "every": "6", "end_s": "1"}
    if blur != "default":
        params["blur_faces"] = blur
    r = live.http.post("/v1/videos", content=video.read_bytes(), params=params, headers=CONSENT)
    assert r.status_code == 202, r.text
    job = wait_job(live.http, r.json()["id"])
    assert job["state"] == "done", job
    assert job["options"]["blur_faces"] is (blur == "default")
    assert job["links"]["annotated"] == f"/v1/jobs/{job['id']}/annotated"
    r = live.http.get(job["links"]["annotated"])
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    drawn = _first_frame(r.content, tmp_path / "annotated.mp4")
    original = _first_frame(video.read_bytes(), tmp_path / "original.mp4")
    assert drawn.shape == original.shape
    box = live.http.get(f"/v1/jobs/{job['id']}/results").json()["frames"][0]["faces"][0]["bbox"]
    ratio = _face_detail(drawn, box) / _face_detail(original, box)
    if blur == "default":
        assert ratio < 0.1, ratio       # privacy by default: no recognisable face in the output
    else:
        assert ratio > 0.5, ratio       # explicitly unblurred: the face keeps its detail
    assert live.http.delete(f"/v1/jobs/{job['id']}").status_code == 204


def test_job_without_annotate_has_no_annotated_video(live):
    r = live.http.post("/v1/videos", content=need(VIDEOS / "single_face.mp4").read_bytes(),
                       params={"every": "12", "end_s": "0.5", "blur_faces": "maybe"}, headers=CONSENT)
    _error(r, 422, "invalid_option")
    r = live.http.post("/v1/videos", content=need(VIDEOS / "single_face.mp4").read_bytes(),
                       params={"every": "12", "end_s": "0.5"}, headers=CONSENT)
    job = wait_job(live.http, r.json()["id"])
    assert job["state"] == "done" and job["links"]["annotated"] is None
    _error(live.http.get(f"/v1/jobs/{job['id']}/annotated"), 404, "not_found")
    assert live.http.delete(f"/v1/jobs/{job['id']}").status_code == 204


@pytest.mark.parametrize("content, params, status, code", [
    (b"definitely not a video" * 10, {}, 415, "unsupported_media_type"),
    (b"\x00\x00\x00\x18ftypmp42" + bytes(200), {}, 422, "invalid_video"),   # an MP4 header and nothing else
    (None, {"fps": "fast"}, 422, "invalid_option"),
    (None, {"smooth": "kalman"}, 422, "invalid_option"),
    (None, {"path": "/etc/passwd"}, 422, "invalid_option"),                   # no path input from clients
    (None, {"every": "0"}, 422, "invalid_option"),
    (None, {"start_s": "2", "end_s": "1"}, 422, "invalid_option"),
])
def test_bad_video_uploads_are_refused(live, content, params, status, code):
    if content is None:
        content = need(VIDEOS / "single_face.mp4").read_bytes()
    r = live.http.post("/v1/videos", content=content, params=params, headers=CONSENT)
    _error(r, status, code)
    assert not any((live.data / "uploads").iterdir())


def test_killed_worker_is_requeued_and_the_job_resumes(live):
    video = need(VIDEOS / "single_face.mp4")
    job_id = live.http.post("/v1/videos", content=video.read_bytes(), headers=CONSENT).json()["id"]
    pool = live.app.state.svc.pool
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        job = live.http.get(f"/v1/jobs/{job_id}").json()
        if job["state"] == "running" and job["frames_analysed"] > 0:
            break
        assert job["state"] in ("queued", "running"), job
        time.sleep(0.05)
    else:
        raise AssertionError("the worker never reported progress")
    pid = pool.running_pids()[job_id]
    os.kill(pid, signal.SIGKILL)
    job = wait_job(live.http, job_id)
    assert job["state"] == "done" and job["attempts"] == 2, job
    audit = JobStore(live.data / "affectlens.db").audit_log()
    requeue = [a for a in audit if a["action"] == "job.requeue" and a["job_id"] == job_id]
    assert requeue and "killed by signal 9" in json.loads(requeue[0]["detail"])["reason"]
    res = live.http.get(f"/v1/jobs/{job_id}/results").json()
    idx = [f["info"]["frame_index"] for f in res["frames"]]
    assert idx == sorted(set(idx)) and len(idx) >= 60  # resumed, no duplicate frames
    live.http.delete(f"/v1/jobs/{job_id}")


# ---------------------------------------------------------------------- live stream
def _jpeg_frames(n: int) -> list[tuple[float, bytes]]:
    cap = cv2.VideoCapture(str(need(VIDEOS / "single_face.mp4")))
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        assert ok
        out.append((cap.get(cv2.CAP_PROP_POS_MSEC), cv2.imencode(".jpg", frame)[1].tobytes()))
    cap.release()
    return out


def test_stream_tracks_one_face_with_one_id(live):
    frames = _jpeg_frames(10)
    with ws_client.connect(live.ws_url + "/v1/stream?consent=subject-consented",
                           additional_headers={"X-API-Key": live.key}) as ws:
        ready = json.loads(ws.recv())
        assert ready["type"] == "ready" and len(ready["labels"]) >= 7
        replies = []
        for i, (ts, jpg) in enumerate(frames):
            if i % 2:  # both framings of the protocol
                ws.send(b"ALF1" + struct.pack(">d", ts) + jpg)
            else:
                ws.send(json.dumps({"timestamp_ms": ts}))
                ws.send(jpg)
            replies.append(json.loads(ws.recv()))
        ws.send(b"garbage")
        err = json.loads(ws.recv())
        assert err["type"] == "error" and err["error"]["code"] == "invalid_image"
        assert "binary frame 11 of this stream" in err["error"]["message"]  # the 11th sent, not an index
    assert [r["type"] for r in replies] == ["faces"] * 10
    assert [r["frame_index"] for r in replies] == list(range(10))
    assert all(len(r["faces"]) == 1 for r in replies)
    ids = [r["faces"][0]["track_id"] for r in replies]
    assert len({i for i in ids if i is not None}) == 1 and ids[-1] is not None
    assert ids.index(ids[-1]) <= 3 and None not in ids[ids.index(ids[-1]):]
    last = replies[-1]["faces"][0]
    assert sum(last["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert set(last["scores_raw"]) == set(last["scores"])


def test_stream_hello_message_and_refusals(live):
    ts, jpg = _jpeg_frames(1)[0]
    with ws_client.connect(live.ws_url + "/v1/stream") as ws:  # browser style: credentials in a first message
        ws.send(json.dumps({"type": "hello", "api_key": live.key, "consent": "research-protocol"}))
        assert json.loads(ws.recv())["type"] == "ready"
        ws.send(b"ALF1" + struct.pack(">d", ts) + jpg)
        assert len(json.loads(ws.recv())["faces"]) == 1
    for hello, close_code, code in (({"api_key": live.key}, 4403, "consent_required"),
                                    ({"api_key": "al_wrong", "consent": "contract"}, 4401, "unauthorized")):
        with ws_client.connect(live.ws_url + "/v1/stream") as ws:
            ws.send(json.dumps({"type": "hello", **hello}))
            err = json.loads(ws.recv())
            assert err["type"] == "error" and err["error"]["code"] == code
            with pytest.raises(ConnectionClosed) as info:
                ws.recv()
            assert info.value.rcvd.code == close_code


def test_a_stream_left_at_once_is_counted_closed_and_audited(live):
    """Clients that go before (or right after) the ready message: the open-streams gauge comes back
    down and every stream.open gets its stream.close in the audit log."""
    def opens_and_closes():
        audit = JobStore(live.data / "affectlens.db").audit_log(limit=100000)
        return (sum(a["action"] == "stream.open" for a in audit), sum(a["action"] == "stream.close" for a in audit))

    def gauge():
        text = httpx.get(live.url + "/metrics").text
        return float(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("affectlens_stream_connections ")))

    before = opens_and_closes()
    for _ in range(5):
        ws = ws_client.connect(live.ws_url + "/v1/stream?consent=subject-consented",
                               additional_headers={"X-API-Key": live.key})
        ws.close()
    t0 = time.monotonic()
    while (gauge() != 0 or opens_and_closes()[1] - before[1] < 5) and time.monotonic() - t0 < 20:
        time.sleep(0.1)
    opens, closes = opens_and_closes()
    assert gauge() == 0
    assert opens - before[0] == 5 and closes - before[1] == 5, (before, opens, closes)


# ---------------------------------------------------------------------- metrics (last: counts the above)
def test_metrics_expose_requests_latency_faces_and_queue(live):
    # requests of its own (a sample photo from an installed wheel), so that it does not depend on
    # the tests above, which skip without ../shared
    from affectlens.samples import sample_images

    photo = sample_images()[0].read_bytes()
    assert live.http.post("/v1/images:analyze", content=photo, headers=CONSENT).status_code == 200
    assert live.http.post("/v1/images:analyze", content=photo).status_code == 403
    assert live.http.get("/v1/jobs/nope").status_code == 404
    text = httpx.get(live.url + "/metrics").text
    assert 'affectlens_http_requests_total{method="POST",route="/v1/images:analyze",status="200"}' in text
    assert 'affectlens_http_requests_total{method="POST",route="/v1/images:analyze",status="403"}' in text
    assert 'affectlens_http_request_duration_seconds_bucket{route="/v1/images:analyze",le="+Inf"}' in text
    assert "affectlens_jobs_queue_depth 0" in text
    faces = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
             if line.startswith("affectlens_faces_analysed_total")}
    if faces:  # the image and stream tests ran in this module
        assert faces['affectlens_faces_analysed_total{endpoint="image"}'] >= 1
    assert "affectlens_stream_frames_total" in text
    assert "/v1/jobs/{job_id}" in text and "nope" not in text  # route templates, not raw paths
