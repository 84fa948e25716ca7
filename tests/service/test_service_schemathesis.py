"""Property-based tests of the service against its own OpenAPI schema (schemathesis + Hypothesis).

The schema is loaded from a real server (``GET /openapi.json`` over loopback). For every operation,
schemathesis generates requests that follow the schema (positive: the consent header is then a valid
basis, so uploads reach the decoder) and requests that break it (negative), and checks every answer:

* no server error: no 5xx, except 503 ``overloaded`` (documented admission control);
* the status code is documented for the operation, the response content type is a documented one
  and the body validates against the documented schema (``ErrorResponse`` for every error);
* requests that break the schema are refused with a 4xx;
* every error is the JSON error shape and no call logs an unhandled error on the server.

Schemathesis cannot make up image or video bytes, so real, truncated and random uploads under
several content types are added as explicit cases, and the job routes are also fuzzed with the id
of a real finished job (so results, CSV, report and annotated video are checked against the schema).

Bounded and reproducible: a fixed seed, ``derandomize``, a few examples per operation, no Hypothesis
example database. ``tests/service/test_service_fuzz.py`` covers what the schema cannot describe
(malformed multipart, huge headers, WebSocket garbage).
"""

from __future__ import annotations

import os
import random
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.configuration import set_hypothesis_home_dir  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,  # noqa: E402
                                               response_headers_conformance, response_schema_conformance,
                                               status_code_conformance)

from affectlens.service.app import create_app  # noqa: E402
from affectlens.service.config import ServiceConfig, add_api_key  # noqa: E402
from conftest import IMAGES, VIDEOS, need  # noqa: E402
from service_helpers import LiveServer, captured_errors  # noqa: E402

SEED = 20240611
CONSENT = "subject-consented"
#: per operation and generation mode (~300 generated requests in all); raise it for a longer local run:
#: AFFECTLENS_SCHEMATHESIS_EXAMPLES=500 pytest tests/service/test_service_schemathesis.py
MAX_EXAMPLES = int(os.environ.get("AFFECTLENS_SCHEMATHESIS_EXAMPLES", "25"))
UPLOADS = ("POST /v1/images:analyze", "POST /v1/videos")
JOB_ROUTES = ("GET /v1/jobs/{job_id}", "GET /v1/jobs/{job_id}/results", "GET /v1/jobs/{job_id}/report",
              "GET /v1/jobs/{job_id}/annotated")
#: every operation of the schema; a new endpoint must be added here (test_schema_lists_every_operation)
OPERATIONS = (*UPLOADS, *JOB_ROUTES, "DELETE /v1/jobs/{job_id}", "GET /healthz", "GET /metrics")


@pytest.fixture(scope="module", autouse=True)
def _hypothesis_home(tmp_path_factory):
    """Hypothesis keeps caches (and, with a database, examples) under ./.hypothesis: not in the checkout."""
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data = tmp_path_factory.mktemp("svc-schemathesis")
    keys = data / "keys.txt"
    key = add_api_key(keys, "schemathesis")
    config = ServiceConfig(data_dir=data, api_key_file=keys, max_image_mb=1.0, max_upload_mb=2.0,
                           rate_limit_per_minute=0, cleanup_interval_s=3600)
    with captured_errors() as errors, LiveServer(create_app(config)) as srv:
        srv.key, srv.errors = key, errors
        srv.auth = {"X-API-Key": key}
        yield srv


@pytest.fixture(scope="module")
def api_schema(live):
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        # the key is sent by the tests (below), not generated: generated keys would only ever get 401
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
                       "with-security-parameters": False},
        # 503 is the documented "overloaded" answer of admission control (checked by _error_shape)
        "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}},
    })
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json", config=config, timeout=30)
    schema.config.base_url = live.url
    return schema


def _error_shape(ctx, response, case) -> None:
    """Every error is ``{"error": {"code", "message"}}`` and a 503 only ever means ``overloaded``."""
    if response.status_code < 400:
        return None
    what = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.headers.get("content-type", [""])[0].startswith("application/json"), what
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, what
    assert body["error"]["code"] != "internal_error" and "Traceback" not in body["error"]["message"], what
    if response.status_code >= 500:
        assert response.status_code == 503 and body["error"]["code"] == "overloaded", what
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection, _error_shape]


def _settings(max_examples: int = MAX_EXAMPLES):
    # Shrinking stays on (a failure is reported minimal); only the generate phase spends the budget.
    return settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck))


def _run(live, operation, mode: GenerationMode, statuses: list[int], **fixed) -> None:
    """Generate ``max_examples`` cases of ``operation`` in ``mode`` and check each answer."""

    @_settings()
    @given(case=operation.as_strategy(mode, **fixed))
    def check(case):
        r = case.call_and_validate(base_url=live.url, headers=live.auth, checks=CHECKS, timeout=60)
        statuses.append(r.status_code)

    check()


def _still_healthy(live) -> None:
    assert httpx.get(live.url + "/healthz", timeout=30).json()["status"] == "ok"
    bad = [f"{r.name}: {r.getMessage()}" for r in live.errors.records]
    assert not bad, "server logged errors:\n" + "\n".join(bad[:5])


def test_schema_lists_every_operation(api_schema):
    labels = {op.ok().label for op in api_schema.get_all_operations()}
    assert labels == set(OPERATIONS)


#: operations with something in the schema to violate (a body, a constrained query parameter); with the API
#: key sent by the tests, the others (a free-form string path parameter, no parameters) have no invalid input
NEGATABLE = (*UPLOADS, "GET /v1/jobs/{job_id}/results")


@pytest.mark.parametrize("label, mode", [(op, GenerationMode.POSITIVE) for op in OPERATIONS]
                         + [(op, GenerationMode.NEGATIVE) for op in NEGATABLE], ids=lambda x: getattr(x, "value", x))
def test_generated_requests(live, api_schema, label, mode):
    operation = api_schema.find_operation_by_label(label)
    fixed = {}
    if label in UPLOADS and mode is GenerationMode.POSITIVE:
        fixed["headers"] = {"X-Consent": CONSENT}  # a valid basis: the body is read and decoded
    statuses: list[int] = []
    _run(live, operation, mode, statuses, **fixed)
    assert statuses
    if label in UPLOADS and mode is GenerationMode.POSITIVE:
        assert {415, 422} & set(statuses), statuses  # generated bodies do reach the decoder
    if mode is GenerationMode.NEGATIVE:
        assert all(400 <= s < 500 for s in statuses), statuses
    _still_healthy(live)


# ---------------------------------------------------------------------- explicit upload bodies
def _bodies(rng: random.Random, real: bytes, name: str):
    """(description, bytes): the real file, truncated, corrupted, random and empty bodies."""
    yield name, real
    for n in (0, 1, 16, 100, len(real) // 2, len(real) - 1):
        yield f"{name} truncated to {n} bytes", real[:n]
    b = bytearray(real)
    for _ in range(50):
        b[rng.randrange(64, len(b))] = rng.randrange(256)
    yield f"corrupted {name}", bytes(b)
    yield "random bytes", rng.randbytes(3000)
    yield "text", b"hello, not media"


CONTENT_TYPES = ("application/octet-stream", "image/jpeg", "video/mp4", "text/plain", "application/json",
                 "application/x-www-form-urlencoded")


def _call(live, operation, body: bytes, media_type: str, **kw):
    """One explicit case of ``operation``, sent raw (``media_type``) or as multipart (``file`` part)."""
    headers = {"X-Consent": CONSENT, **kw.pop("headers", {})}
    if media_type == "multipart/form-data":
        case = operation.Case(body={"file": body, **kw.pop("fields", {})}, media_type=media_type, headers=headers,
                              **kw)
    else:
        case = operation.Case(body=body, media_type="application/octet-stream", headers=headers, **kw)
    extra = {} if media_type in ("multipart/form-data", "application/octet-stream") else {"Content-Type": media_type}
    return case.call_and_validate(base_url=live.url, headers={**live.auth, **extra}, checks=CHECKS, timeout=60)


def test_image_uploads_real_truncated_and_random(live, api_schema):
    operation = api_schema.find_operation_by_label("POST /v1/images:analyze")
    rng = random.Random(SEED)
    jpeg = need(IMAGES / "single_face.jpg").read_bytes()
    seen = {}
    for what, body in _bodies(rng, jpeg, "jpeg"):
        for media_type in ("multipart/form-data", *CONTENT_TYPES):
            r = _call(live, operation, body, media_type)
            seen.setdefault(r.status_code, []).append(f"{what} as {media_type}")
            if what == "jpeg":
                assert r.status_code == 200 and len(r.json()["faces"]) == 1, (media_type, r.text[:300])
            elif not body:
                assert r.status_code in (400, 415, 422), (what, media_type, r.status_code)
    assert {200, 415, 422} <= set(seen), seen
    _still_healthy(live)


def test_video_uploads_truncated_and_random(live, api_schema):
    operation = api_schema.find_operation_by_label("POST /v1/videos")
    rng = random.Random(SEED + 1)
    video = need(VIDEOS / "single_face.mp4").read_bytes()
    statuses = set()
    for what, body in _bodies(rng, video, "mp4"):
        if what == "mp4":
            continue  # the real video is test_real_job_results_conform
        for media_type in ("multipart/form-data", "application/octet-stream", "text/plain"):
            r = _call(live, operation, body, media_type)
            assert r.status_code in (202, 400, 415, 422), (what, media_type, r.status_code, r.text[:300])
            if r.status_code == 202:  # an MP4 missing its last byte or so still opens: a job, removed at once
                assert "truncated" in what, what
                assert httpx.delete(f"{live.url}/v1/jobs/{r.json()['id']}", headers=live.auth).status_code == 204
            statuses.add(r.status_code)
    assert {415, 422} <= statuses
    _still_healthy(live)


def test_real_job_results_conform(live, api_schema):
    """A real (short) job, then the job routes fuzzed with its id: 200 answers checked against the schema."""
    video = need(VIDEOS / "single_face.mp4").read_bytes()
    submit = api_schema.find_operation_by_label("POST /v1/videos")
    r = _call(live, submit, video, "multipart/form-data",
              fields={"every": 12, "end_s": 0.5, "annotate": True})
    assert r.status_code == 202, r.text[:300]
    job_id = r.json()["id"]
    t0 = time.monotonic()
    while (state := httpx.get(f"{live.url}/v1/jobs/{job_id}", headers=live.auth, timeout=30).json()["state"]) \
            not in ("done", "failed"):
        assert time.monotonic() - t0 < 90, f"job {job_id} still {state}"
        time.sleep(0.2)
    assert state == "done"
    for label in JOB_ROUTES:
        statuses: list[int] = []
        _run(live, api_schema.find_operation_by_label(label), GenerationMode.POSITIVE, statuses,
             path_parameters={"job_id": job_id})
        assert 200 in statuses, (label, statuses)
    delete = api_schema.find_operation_by_label("DELETE /v1/jobs/{job_id}")
    for expected in (204, 404):
        r = delete.Case(path_parameters={"job_id": job_id}).call_and_validate(
            base_url=live.url, headers=live.auth, checks=CHECKS, timeout=60)
        assert r.status_code == expected
    _still_healthy(live)


def test_missing_or_wrong_key_is_401_on_every_protected_operation(live, api_schema):
    for label in OPERATIONS:
        operation = api_schema.find_operation_by_label(label)
        if not operation.definition.raw.get("security"):
            continue
        for headers in ({}, {"X-API-Key": "wrong"}):
            case = operation.Case(path_parameters={"job_id": "x"} if "{job_id}" in label else None,
                                  headers={"X-Consent": CONSENT})
            r = case.call(base_url=live.url, headers=headers, timeout=60)
            case.validate_response(r, checks=CHECKS)
            assert r.status_code == 401, (label, r.status_code)


def test_undocumented_methods_are_405_and_allow_lists_the_documented_ones(live):
    documented: dict[str, set[str]] = {}
    for label in OPERATIONS:
        method, path = label.split(" ", 1)
        documented.setdefault(path, set()).add(method)
    for path, methods in documented.items():
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} - methods):
            r = httpx.request(method, live.url + path.replace("{job_id}", "x"), headers=live.auth, timeout=30)
            assert r.status_code == 405, (method, path, r.status_code)
            assert set(r.headers["allow"].split(", ")) == methods, (method, path, r.headers["allow"])
            assert r.json()["error"]["code"] == "method_not_allowed"
