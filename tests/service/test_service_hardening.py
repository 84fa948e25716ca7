"""The low-severity findings of the service audit, each on a real server (uvicorn on loopback, open
mode, consent required): hello validation, bounded metric labels, Origin checks, storage failures,
OpenCV paths in errors, strict ``retain``, consent before a multipart body is stored."""

from __future__ import annotations

import json
import os
import socket

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
ws_client = pytest.importorskip("websockets.sync.client")

from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

from affectlens.service.app import create_app  # noqa: E402
from affectlens.service.config import ServiceConfig  # noqa: E402
from service_helpers import LiveServer  # noqa: E402

CONSENT = {"X-Consent": "subject-consented"}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data = tmp_path_factory.mktemp("hard")
    app = create_app(ServiceConfig(data_dir=data, max_upload_mb=8.0, cleanup_interval_s=3600, threads=1))
    with LiveServer(app) as srv:
        srv.data, srv.app = data, app
        srv.http = httpx.Client(base_url=srv.url, timeout=60)
        yield srv
        srv.http.close()


def _uploads(live) -> list[str]:
    return sorted(p.name for p in (live.data / "uploads").iterdir())


def _closed_with(ws) -> tuple[dict | None, int]:
    msg = None
    try:
        msg = json.loads(ws.recv(timeout=10))
        ws.recv(timeout=10)
    except ConnectionClosed as exc:
        return msg, exc.rcvd.code
    raise AssertionError(f"still open after {msg}")


@pytest.mark.parametrize("hello", [
    {"type": "hello", "consent": ["subject-consented"]},
    {"type": "hello", "consent": 1},
    {"type": "hello", "consent": True},
    {"type": "hello", "consent": {"basis": "contract"}},
    {"type": "hello", "consent": "contract", "api_key": 12345},
    {"type": "hello", "consent": "contract", "api_key": ["k"]},
    {"type": "hello", "consent": "contract", "extra": 1},
    {"type": "goodbye", "consent": "contract"},
    "[" * 100_000,
    "[]",
    "not json",
])
def test_a_malformed_hello_is_refused_with_a_close_code(live, hello):
    with ws_client.connect(live.ws_url + "/v1/stream", max_size=2 ** 22) as ws:
        ws.send(hello if isinstance(hello, str) else json.dumps(hello))
        msg, code = _closed_with(ws)
    assert code == 1003 and msg["type"] == "error" and msg["error"]["code"] == "bad_hello", msg


def test_deep_json_during_a_stream_is_an_error_message_and_the_stream_goes_on(live):
    with ws_client.connect(live.ws_url + "/v1/stream", max_size=2 ** 22) as ws:
        ws.send(json.dumps({"type": "hello", "consent": "contract"}))
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        for text in ("[" * 100_000, '{"a":' * 50 + "1" + "}" * 50):
            ws.send(text)
            err = json.loads(ws.recv(timeout=10))
            assert err["type"] == "error" and err["error"]["code"] == "bad_message"
        ws.send(json.dumps({"timestamp_ms": "x"}))
        assert json.loads(ws.recv(timeout=10))["error"]["code"] == "invalid_timestamp"  # still serving


def test_metrics_do_not_grow_a_series_per_invented_method(live):
    for i in range(50):
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as s:
            s.sendall(f"FOO{i} /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            s.recv(4096)
    text = live.http.get("/metrics").text
    assert "FOO" not in text and 'method="OTHER"' in text
    methods = {line.split('method="')[1].split('"')[0] for line in text.splitlines()
               if line.startswith("affectlens_http_requests_total{")}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}


def test_cross_site_requests_are_refused_in_open_mode(live, single_face_path):
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    r = live.http.post("/v1/videos?consent=subject-consented", content=b"x" * 1000, headers=evil)
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
    r = live.http.post("/v1/images:analyze?consent=subject-consented", content=single_face_path.read_bytes(),
                       headers=evil)
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
    assert _uploads(live) == []
    same = {"Origin": live.url, **CONSENT}  # the dashboard on this server
    assert live.http.post("/v1/images:analyze", content=single_face_path.read_bytes(), headers=same).status_code == 200
    with ws_client.connect(live.ws_url + "/v1/stream", additional_headers={"Origin": "http://evil.example"}) as ws:
        msg, code = _closed_with(ws)
    assert code == 4403 and msg["error"]["code"] == "cross_origin"


def test_storage_failures_are_the_servers_fault(live):
    uploads = live.data / "uploads"
    uploads.rename(live.data / "uploads.bak")
    uploads.write_text("not a folder")  # every write below it fails
    try:
        for kw in ({"content": b"\x00\x00\x00\x18ftypmp42" + bytes(100), "headers": CONSENT},
                   {"files": {"file": ("v.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(100))},
                    "data": {"consent": "contract"}}):
            r = live.http.post("/v1/videos", **kw)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "storage_error" and r.headers["retry-after"]
            assert "not a folder" not in r.text and str(live.data) not in r.text
    finally:
        uploads.unlink()
        (live.data / "uploads.bak").rename(uploads)


def test_decode_errors_name_no_opencv_source_file(live):
    import cv2
    import numpy as np

    png = bytearray(cv2.imencode(".png", np.full((64, 64, 3), 7, np.uint8))[1].tobytes())
    png[50:120] = bytes(70)
    r = live.http.post("/v1/images:analyze", content=bytes(png), headers=CONSENT)
    assert r.status_code == 422, r.text
    assert ".cpp" not in r.text and "opencv" not in r.text.lower()


@pytest.mark.parametrize("value", ["maybe", "2", "tru", "null"])
def test_retain_must_be_a_boolean(live, value):
    r = live.http.post("/v1/videos", params={"retain": value}, content=b"\x00\x00\x00\x18ftypmp42" + bytes(100),
                       headers=CONSENT)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_option", r.text
    r = live.http.post("/v1/videos", files={"file": ("v.mp4", b"\x00" * 100)}, data={"retain": value},
                       headers=CONSENT)
    assert r.status_code == 422 and "retain" in r.json()["error"]["message"]
    assert _uploads(live) == []


def test_consent_is_checked_before_a_multipart_video_is_stored(live):
    big = os.urandom(3 * 2 ** 20)
    # the file part comes first and no consent came with the headers: refused as the part begins
    boundary = "b0undary"
    parts = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"v.mp4\"\r\n"
             "Content-Type: video/mp4\r\n\r\n").encode() + big + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"consent\"\r\n\r\ncontract\r\n"
        f"--{boundary}--\r\n").encode()

    r = live.http.post("/v1/videos", content=parts,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_required", r.text
    assert "before" in r.json()["error"]["message"]
    assert _uploads(live) == []
    # consent first: accepted and read (here the bytes are no video: 415 after reading them)
    r = live.http.post("/v1/videos", files={"file": ("v.mp4", big)}, data={"consent": "contract"})
    assert r.status_code == 415, r.text
    assert _uploads(live) == []


def test_stored_folders_are_owner_only(live):
    for d in ("", "uploads", "jobs", "logs"):
        assert (live.data / d).stat().st_mode & 0o777 == 0o700, d
    for f in ("affectlens.db", "service-config.json"):
        assert (live.data / f).stat().st_mode & 0o777 == 0o600, f


def test_healthz_names_the_model_its_sha256_and_the_thread_setting(live):
    from affectlens.models.registry import resolve_spec

    spec = resolve_spec(None)
    h = live.http.get("/healthz").json()
    assert (h["model"], h["model_sha256"], h["threads"]) == (spec.name, spec.sha256, 1)


def test_concurrent_analyses_share_the_models_without_a_global_lock(live, single_face_path):
    from concurrent.futures import ThreadPoolExecutor

    body = single_face_path.read_bytes()
    one = live.http.post("/v1/images:analyze", content=body, headers=CONSENT).json()
    with ThreadPoolExecutor(4) as ex:
        many = list(ex.map(lambda _: live.http.post("/v1/images:analyze", content=body, headers=CONSENT), range(8)))
    assert all(r.status_code in (200, 503) for r in many)
    ok = [r.json() for r in many if r.status_code == 200]
    assert ok and all(r["faces"] == one["faces"] for r in ok)  # concurrent runs give identical results
    assert not hasattr(live.app.state.svc, "model_lock")
