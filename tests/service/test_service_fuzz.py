"""Fuzzing the service over real HTTP and WebSocket (seeded, bounded: a few hundred requests).

Random and truncated bytes, corrupted images, wrong or missing content types, malformed multipart
bodies, huge headers, absurd option values and garbage on the WebSocket: the server must never
answer 500 (or crash a connection with an unhandled error), every error must be the JSON error
shape, and the server must still answer ``/healthz`` afterwards.
"""

from __future__ import annotations

import json
import math
import random
import struct

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
ws_client = pytest.importorskip("websockets.sync.client")

import cv2  # noqa: E402
from websockets.exceptions import ConnectionClosed  # noqa: E402

from affectlens.service.app import create_app  # noqa: E402
from affectlens.service.config import ServiceConfig, add_api_key  # noqa: E402
from conftest import IMAGES, VIDEOS, need  # noqa: E402
from service_helpers import LiveServer, captured_errors  # noqa: E402

SEED = 20240605
CONSENT = {"X-Consent": "research-protocol"}
#: statuses a client error may get (the app never answers 5xx except 503 overloaded)
CLIENT_ERRORS = {400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 503}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data = tmp_path_factory.mktemp("svc-fuzz")
    keys = data / "keys.txt"
    key = add_api_key(keys, "fuzzer")
    config = ServiceConfig(data_dir=data, api_key_file=keys, max_image_mb=1.0, max_upload_mb=2.0,
                           rate_limit_per_minute=0, cleanup_interval_s=3600)
    with captured_errors() as errors, LiveServer(create_app(config)) as srv:
        srv.key, srv.errors = key, errors
        srv.http = httpx.Client(base_url=srv.url, headers={"X-API-Key": key}, timeout=60)
        yield srv
        srv.http.close()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return need(IMAGES / "single_face.jpg").read_bytes()


@pytest.fixture(scope="module")
def png(jpeg) -> bytes:
    img = cv2.imdecode(__import__("numpy").frombuffer(jpeg, "uint8"), cv2.IMREAD_COLOR)
    return cv2.imencode(".png", cv2.resize(img, (160, 160)))[1].tobytes()


def _check(r: httpx.Response, allowed=CLIENT_ERRORS | {200, 202}) -> None:
    what = f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:300]}"
    assert r.status_code != 500 and r.status_code in allowed, what
    if r.status_code >= 400:
        assert r.headers.get("content-type", "").startswith("application/json"), what
        body = r.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, what
        assert isinstance(body["error"]["code"], str) and body["error"]["message"], what
        assert "Traceback" not in body["error"]["message"], what


def _still_healthy(live) -> None:
    assert httpx.get(live.url + "/healthz", timeout=30).json()["status"] == "ok"
    bad = [f"{r.name}: {r.getMessage()}" for r in live.errors.records]
    assert not bad, "server logged errors:\n" + "\n".join(bad[:5])


def _mutations(rng: random.Random, jpeg: bytes, png: bytes):
    """(description, body) pairs: random, truncated, corrupted and spliced image bytes."""
    for _ in range(40):
        yield "random", rng.randbytes(rng.choice([0, 1, 2, 3, 7, 16, 100, 1000, rng.randrange(1, 60000)]))
    for src, name in ((jpeg, "jpeg"), (png, "png")):
        for _ in range(25):
            yield f"truncated {name}", src[:rng.randrange(0, len(src))]
        for _ in range(15):
            b = bytearray(src)
            for _ in range(rng.choice([1, 5, 50])):
                b[rng.randrange(len(b))] = rng.randrange(256)
            yield f"corrupted {name}", bytes(b)
        yield f"{name} header + noise", src[:32] + rng.randbytes(2000)
    for magic in (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\x00", b"RIFF\0\0\0\0WEBP"):
        yield f"magic {magic[:4]!r} + noise", magic + rng.randbytes(rng.randrange(0, 5000))


CONTENT_TYPES = [None, "image/jpeg", "image/png", "application/octet-stream", "text/plain", "application/json",
                 "image/gif; charset=utf-8", "multipart/form-data", "multipart/form-data; boundary=",
                 "multipart/form-data; boundary=zzz", "application/x-www-form-urlencoded", "\x7f/\x7f", "a" * 300]


def test_random_truncated_and_corrupted_image_uploads(live, jpeg, png):
    rng = random.Random(SEED)
    statuses = set()
    for what, body in _mutations(rng, jpeg, png):
        ctype = rng.choice(CONTENT_TYPES)
        headers = {**CONSENT, **({"Content-Type": ctype} if ctype is not None else {})}
        try:
            r = live.http.post("/v1/images:analyze", content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise AssertionError(f"{what} with content type {ctype!r}: {exc!r}") from None
        _check(r, CLIENT_ERRORS | {200})
        statuses.add(r.status_code)
    assert {415, 422} <= statuses  # the fuzzer does reach the decoder
    _still_healthy(live)


def test_malformed_multipart_bodies(live, jpeg):
    rng = random.Random(SEED + 1)
    b = "fuzzb"
    part = lambda name, payload, extra="": (  # noqa: E731
        f'--{b}\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode() + payload + b"\r\n")
    bodies = [
        b"",
        b"--fuzzb",
        b"--fuzzb\r\n",
        b"--fuzzb\r\n\r\n\r\n--fuzzb--",
        part("file", jpeg[:500], '; filename="a.jpg"'),  # no closing boundary
        part("file", jpeg, '; filename="a.jpg"') + b"--fuzzb--\r\n",  # valid
        part("file", b"not an image", '; filename="a.jpg"') + b"--fuzzb--\r\n",
        part("file", b"text, not a file") + b"--fuzzb--\r\n",  # file given as a text field
        part("consent", b"contract") + b"--fuzzb--\r\n",  # no file
        part("file", jpeg, '; filename="a.jpg"') * 3 + b"--fuzzb--\r\n",  # several files
        b"".join(part(f"f{i}", b"x") for i in range(200)) + b"--fuzzb--\r\n",  # too many fields
        f'--{b}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{b}--\r\n'.encode(),  # no name
        f'--{b}\r\nX-Nothing: y\r\n\r\nx\r\n--{b}--\r\n'.encode(),  # no disposition
        f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'.encode()
        + b"X-Long: " + b"h" * 20000 + b"\r\n\r\n" + jpeg + f"\r\n--{b}--\r\n".encode(),  # huge part header
        '--fuzzb\r\nContent-Disposition: form-data; name="f\u00e9\u2603"\r\n\r\nx\r\n--fuzzb--\r\n'.encode(),
        b"--fuzzb\r\nContent-Disposition: form-data; name=\"\xff\xfe\"\r\n\r\nx\r\n--fuzzb--\r\n",
    ] + [rng.randbytes(rng.randrange(1, 3000)) for _ in range(10)] \
      + [b"--fuzzb\r\n" + rng.randbytes(rng.randrange(1, 3000)) for _ in range(10)]
    for path in ("/v1/images:analyze", "/v1/videos"):
        for body in bodies:
            for ctype in (f"multipart/form-data; boundary={b}", "multipart/form-data; boundary=other",
                          "multipart/form-data", "multipart/mixed; boundary=fuzzb"):
                r = live.http.post(path, content=body, headers={**CONSENT, "Content-Type": ctype})
                _check(r)
                assert r.status_code != 202, "garbage must not become a job"
    _still_healthy(live)


def test_huge_and_odd_headers(live, jpeg):
    cases = [
        {"X-Consent": "c" * 8000},
        {"X-Consent": "research-protocol", "X-API-Key": "k" * 8000},
        {"X-Consent": "\u00e9t\u00e9".encode()},  # non-ASCII bytes in a header
        {"X-Consent": "research-protocol", **{f"X-Pad-{i}": "p" * 100 for i in range(100)}},
        {"X-Consent": "research-protocol", "Content-Length": "0"},
        {"X-Consent": "research-protocol", "Content-Type": "image/jpeg; " + "; ".join(["x=y"] * 1000)},
        {"X-Consent": "research-protocol", "Accept": ",".join(["*/*"] * 2000)},
    ]
    for extra in cases:
        h = {"X-API-Key": live.key, **extra}
        r = httpx.post(live.url + "/v1/images:analyze", content=jpeg if "Content-Length" not in extra else b"",
                       headers=h, timeout=60)
        _check(r, CLIENT_ERRORS | {200})
    # Headers over uvicorn's limit (h11: 16 KiB in all) are refused by the HTTP server before the app
    # sees them: a plain-text 4xx or a closed connection, never a 5xx.
    for extra in ({"X-Consent": "c" * 100_000}, {f"X-Many-{i}": "v" * 200 for i in range(500)}):
        try:
            r = httpx.post(live.url + "/v1/images:analyze", content=jpeg, headers=extra, timeout=60)
            assert r.status_code < 500, r.text[:200]
        except httpx.HTTPError:
            pass
    _still_healthy(live)


ABSURD = ["", "0", "-1", "-0", "1e308", "-1e308", "1e999", "nan", "NaN", "inf", "-inf", "Infinity",
          "99999999999999999999999999", "0x10", "1_000", " 5 ", "5.5", "true", "null", "\u0663", "\u00bd",
          "a" * 5000, "%00", "'; DROP TABLE jobs; --", "../../etc/passwd"]
OPTIONS = ["fps", "every", "start_s", "end_s", "interval_s", "smooth", "window", "retain", "consent", "bogus"]


def test_absurd_option_and_query_values(live):
    rng = random.Random(SEED + 2)
    video = need(VIDEOS / "single_face.mp4").read_bytes()
    for i in range(120):
        params = {rng.choice(OPTIONS): rng.choice(ABSURD) for _ in range(rng.randint(1, 3))}
        body = rng.randbytes(rng.randrange(1, 4000))  # never a real video: nothing is queued
        r = live.http.post("/v1/videos", params=params, content=body, headers=CONSENT)
        _check(r, CLIENT_ERRORS)
    # non-finite or absurd numbers with a real video must be refused, not queued as a job
    for params in ({"fps": "nan"}, {"fps": "inf"}, {"interval_s": "nan"}, {"interval_s": "inf"},
                   {"start_s": "nan"}, {"end_s": "-inf"}, {"fps": "-1"}, {"every": "0"}, {"window": "0"},
                   {"window": "-3"}, {"smooth": "'; DROP TABLE jobs; --"}):
        r = live.http.post("/v1/videos", params=params, content=video, headers=CONSENT)
        _check(r, {422})
    for path in ("/v1/jobs/x", "/v1/jobs/" + "a" * 5000, "/v1/jobs/%00", "/v1/jobs/..%2F..%2Fetc%2Fpasswd",
                 "/v1/jobs/%ff%fe", "/v1/jobs/x/results?format=xml", "/v1/jobs/x/results?format=csv&part=../../x",
                 "/v1/jobs/x/results?format=" + "j" * 3000, "/v1/jobs/x/report?x=" + "%" * 10,
                 "/v1/images:analyze?consent=" + "c" * 5000, "/healthz?" + "&".join(f"k{i}=v" for i in range(500))):
        for method in ("GET", "DELETE", "POST"):
            _check(live.http.request(method, path, headers=CONSENT, content=b"x"))
    _still_healthy(live)


def _ws(live, query: str = "consent=research-protocol"):
    return ws_client.connect(f"{live.ws_url}/v1/stream?{query}", additional_headers={"X-API-Key": live.key},
                             max_size=2 ** 24, open_timeout=30)


def _reply(ws) -> dict:
    msg = json.loads(ws.recv(timeout=60))  # strict JSON: no NaN/Infinity from the server
    assert msg["type"] in ("faces", "error"), msg
    if msg["type"] == "error":
        assert set(msg["error"]) == {"code", "message"} and msg["error"]["code"] != "internal_error", msg
    else:
        assert all(math.isfinite(x) for x in (msg["timestamp_ms"],)), msg
    return msg


def test_websocket_garbage(live, jpeg):
    rng = random.Random(SEED + 3)
    with _ws(live) as ws:
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
        # text garbage is answered with an error only when it is not a JSON object
        for text in ("", "{", "[]", "null", "1e999", '"x"', "\x00" * 100, "{}" * 1000, "a" * 100_000):
            ws.send(text)
            assert _reply(ws)["type"] == "error"
        for obj in ({}, {"type": "nonsense"}, {"timestamp_ms": "x"}, {"timestamp_ms": None},
                    {"timestamp_ms": [1]}, {"type": "reset"}):
            ws.send(json.dumps(obj))  # objects are not answered except a bad timestamp
            if obj.get("timestamp_ms", 0) not in (0,) and not isinstance(obj.get("timestamp_ms"), (int, float)):
                assert _reply(ws)["error"]["code"] == "invalid_timestamp"
        # binary garbage: one answer per binary message, always
        frames = [b"", b"ALF1", b"ALF1" + b"\0" * 7, rng.randbytes(5000), jpeg[:1000],
                  b"ALF1" + struct.pack(">d", 5.0) + rng.randbytes(300)]
        for ts in (math.nan, math.inf, -math.inf, 1e308, -1e308, 1e300):
            frames.append(b"ALF1" + struct.pack(">d", ts) + jpeg)
        for data in frames:
            ws.send(data)
            _reply(ws)
        for text_ts in ("NaN", "Infinity", "-Infinity", "1e999", "1e308"):
            ws.send('{"timestamp_ms": %s}' % text_ts)
            if text_ts != "1e308":  # non-finite: refused at once, the next frame gets its own answer
                assert _reply(ws)["error"]["code"] == "invalid_timestamp"
            ws.send(jpeg)
            _reply(ws)
        # the stream still works after a reset
        ws.send(json.dumps({"type": "reset"}))
        ws.send(b"ALF1" + struct.pack(">d", 1e12) + jpeg)
        ok = _reply(ws)
        assert ok["type"] == "faces" and len(ok["faces"]) == 1, ok
        ws.send(b"ALF1" + struct.pack(">d", 1.0) + jpeg)  # backwards
        assert _reply(ws)["error"]["code"] == "invalid_timestamp"
    # absurd query parameters: refused with an error message and a close, never a crash
    for query in ("consent=research-protocol&smooth=bogus", "consent=research-protocol&window=-1",
                  "consent=research-protocol&window=" + "9" * 50, "consent=research-protocol&window=0",
                  "consent=" + "c" * 3000, "consent=contract&smooth=hmm&window=" + "1" * 5):
        with _ws(live, query) as ws:
            msg = json.loads(ws.recv(timeout=60))
            if msg["type"] == "error":
                assert msg["error"]["code"] != "internal_error"
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=30)
            else:
                assert msg["type"] == "ready"
    _still_healthy(live)
