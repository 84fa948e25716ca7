"""Per-key and per-request model choice (issue 22): a real model folder fine-tuned in the test
(CK+ crops, one epoch) served beside the default; images, video jobs and the WebSocket name the
model and the sha256 that produced their scores; unknown models and paths are refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("torch")
httpx = pytest.importorskip("httpx")
ws_client = pytest.importorskip("websockets.sync.client")

from affectlens.service.app import create_app  # noqa: E402
from affectlens.service.config import ServiceConfig, add_api_key, read_key_file  # noqa: E402
from conftest import IMAGES, SHARED, VIDEOS, need  # noqa: E402
from service_helpers import LiveServer, wait_job  # noqa: E402

CONSENT = {"X-Consent": "subject-consented"}
CK_LABELS = {"angry", "disgust", "fear", "happy", "sad", "surprise", "contempt"}

pytestmark = pytest.mark.slow


def _cli(*args):
    r = subprocess.run([sys.executable, "-m", "affectlens", *map(str, args)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.fixture(scope="module")
def ck_model(tmp_path_factory):
    """``dataset prepare --crops`` on 10 subjects per CK+ class, then ``train --data`` for one epoch."""
    work = tmp_path_factory.mktemp("ckmodel")
    files = sorted(need(SHARED / "ckplus48").glob("*/*.png"))
    for cls in sorted({f.parent.name for f in files}):
        subjects = sorted({f.name[:4] for f in files if f.parent.name == cls})[:10]
        (work / "crops" / cls).mkdir(parents=True)
        for f in files:
            if f.parent.name == cls and f.name[:4] in subjects:
                shutil.copy(f, work / "crops" / cls / f.name)  # a temporary copy, deleted with tmp_path
    _cli("dataset", "prepare", work / "crops", "--out", work / "ds", "--crops", "-q")
    _cli("train", "--data", work / "ds", "--base", "default", "--out", work / "ckplus-ft", "--epochs", "1",
         "--threads", "2")
    return work / "ckplus-ft"


@pytest.fixture(scope="module")
def live(ck_model, tmp_path_factory):
    data = tmp_path_factory.mktemp("svc-models")
    keys = data / "keys.txt"
    plain = add_api_key(keys, "plain")
    ck = add_api_key(keys, "ck", model="ckplus-ft")
    config = ServiceConfig(data_dir=data, api_key_file=keys, allowed_models=(str(ck_model),),
                           rate_limit_per_minute=0, max_loaded_models=2)
    with LiveServer(create_app(config)) as srv:
        srv.data, srv.model_dir = data, ck_model
        srv.http = httpx.Client(base_url=srv.url, headers={"X-API-Key": plain, **CONSENT}, timeout=60)
        srv.ck = httpx.Client(base_url=srv.url, headers={"X-API-Key": ck, **CONSENT}, timeout=60)
        yield srv
        srv.http.close()
        srv.ck.close()


def test_healthz_lists_the_allowed_models_with_their_sha256(live):
    h = httpx.get(live.url + "/healthz").json()
    models = {m["name"]: m for m in h["models"]}
    spec = json.loads((live.model_dir / "model.json").read_text())
    assert set(models) == {h["model"], "ckplus-ft"}
    assert models["ckplus-ft"]["sha256"] == spec["sha256"] and set(models["ckplus-ft"]["labels"]) == CK_LABELS
    assert models[h["model"]]["default"] and not models["ckplus-ft"]["default"]
    assert models[h["model"]]["sha256"] == h["model_sha256"] != spec["sha256"]
    assert str(live.model_dir) not in json.dumps(h)  # no server path reaches clients


def test_image_model_per_request_and_per_key(live):
    img = need(IMAGES / "single_face.jpg").read_bytes()
    health = httpx.get(live.url + "/healthz").json()
    default = live.http.post("/v1/images:analyze", content=img).json()
    chosen = live.http.post("/v1/images:analyze", files={"file": ("a.jpg", img)}, data={"model": "ckplus-ft"}).json()
    by_key = live.ck.post("/v1/images:analyze", content=img).json()
    back = live.ck.post("/v1/images:analyze", content=img, params={"model": "default"}).json()
    assert default["model_sha256"] == health["model_sha256"] and "neutral" in default["labels"]
    assert chosen["model"] == by_key["model"] == "ckplus-ft"
    assert chosen["model_sha256"] == by_key["model_sha256"] != default["model_sha256"]
    assert set(chosen["labels"]) == CK_LABELS and set(chosen["faces"][0]["scores"]) == CK_LABELS
    assert chosen["faces"][0]["scores"] == by_key["faces"][0]["scores"]
    assert back["model_sha256"] == default["model_sha256"]
    assert set(httpx.get(live.url + "/healthz").json()["models_loaded"]) == {health["model"], "ckplus-ft"}


@pytest.mark.parametrize("name", ["no-such-model", "/etc/passwd", "__MODEL_DIR__", "../ckplus-ft",
                                  "fer-vgg48s-ens-zoom"])
def test_unknown_or_path_models_are_refused_naming_the_allowed_ones(live, name):
    name = str(live.model_dir) if name == "__MODEL_DIR__" else name
    img = need(IMAGES / "single_face.jpg").read_bytes()
    for r in (live.http.post("/v1/images:analyze", content=img, params={"model": name}),
              live.http.post("/v1/videos", content=need(VIDEOS / "single_face.mp4").read_bytes(),
                             params={"model": name})):
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["code"] == "unknown_model" and "ckplus-ft" in err["message"], err
    assert not any((live.data / "uploads").iterdir())  # refused before the upload was stored


def test_two_jobs_with_different_models_name_their_sha256_and_labels(live):
    video = need(VIDEOS / "single_face.mp4").read_bytes()
    a = live.http.post("/v1/videos", content=video, params={"fps": "5"}).json()
    b = live.http.post("/v1/videos", files={"file": ("v.mp4", video)}, data={"fps": "5", "model": "ckplus-ft"}).json()
    c = live.ck.post("/v1/videos", content=video, params={"fps": "5"}).json()  # the key's model
    assert b["model"] == c["model"] == {"name": "ckplus-ft", "sha256": b["model"]["sha256"]}
    results = {}
    for job in (a, b, c):
        client = live.ck if job is c else live.http
        done = wait_job(client, job["id"])
        assert done["state"] == "done", done
        results[job["id"]] = client.get(f"/v1/jobs/{job['id']}/results").json()
    ra, rb, rc = (results[j["id"]] for j in (a, b, c))
    assert ra["job"]["model"]["sha256"] != rb["job"]["model"]["sha256"] == rc["job"]["model"]["sha256"]
    assert ra["job"]["model"]["sha256"] == httpx.get(live.url + "/healthz").json()["model_sha256"]
    faced_a = [f for f in ra["frames"] if f["faces"]]
    faced_b = [f for f in rb["frames"] if f["faces"]]
    assert faced_a and faced_b and len(faced_a) == len(faced_b)
    assert "neutral" in faced_a[0]["labels"] and set(faced_b[0]["labels"]) == CK_LABELS
    assert set(faced_b[0]["faces"][0]["scores"]) == CK_LABELS
    assert [f["faces"][0]["scores"] for f in rb["frames"] if f["faces"]] == \
        [f["faces"][0]["scores"] for f in rc["frames"] if f["faces"]]
    for job in (a, b):
        assert live.http.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert live.ck.delete(f"/v1/jobs/{c['id']}").status_code == 204


def test_stream_hello_names_the_model(live):
    with ws_client.connect(live.url.replace("http", "ws") + "/v1/stream") as ws:
        ws.send(json.dumps({"type": "hello", "api_key": live.http.headers["X-API-Key"],
                            "consent": "subject-consented", "model": "ckplus-ft"}))
        ready = json.loads(ws.recv(timeout=30))
        assert ready["type"] == "ready" and ready["model"] == "ckplus-ft" and set(ready["labels"]) == CK_LABELS
        ws.send(need(IMAGES / "single_face.jpg").read_bytes())
        frame = json.loads(ws.recv(timeout=30))
        assert frame["type"] == "faces" and set(frame["faces"][0]["scores"]) == CK_LABELS
    with ws_client.connect(live.url.replace("http", "ws") + "/v1/stream") as ws:
        ws.send(json.dumps({"type": "hello", "api_key": live.http.headers["X-API-Key"],
                            "consent": "subject-consented", "model": "/tmp/evil.onnx"}))
        err = json.loads(ws.recv(timeout=30))
        assert err["type"] == "error" and err["error"]["code"] == "unknown_model"


def test_key_file_model_field_and_a_key_naming_an_unserved_model(live, tmp_path):
    keys = tmp_path / "keys.txt"
    add_api_key(keys, "a", rate_per_minute=5, model="ckplus-ft")
    add_api_key(keys, "b", model="elsewhere")
    parsed = {k.key_id: k for k in read_key_file(keys)}
    assert (parsed["a"].rate_per_minute, parsed["a"].model) == (5, "ckplus-ft") and parsed["b"].model == "elsewhere"
    with pytest.raises(ValueError, match="elsewhere.*allowed: .*ckplus-ft"):
        create_app(ServiceConfig(data_dir=tmp_path / "d", api_key_file=keys, allowed_models=(str(live.model_dir),)))
    with pytest.raises(ValueError, match="no-such-folder"):
        create_app(ServiceConfig(data_dir=tmp_path / "d", allowed_models=(str(tmp_path / "no-such-folder"),)))


def test_loaded_models_are_cached_and_bounded(live):
    from affectlens.service.models import ModelCatalog

    cat = ModelCatalog.from_config(ServiceConfig(allowed_models=(str(live.model_dir),), max_loaded_models=1))
    first = cat.recognizer(cat.default)
    assert cat.recognizer(cat.entry("default")) is first  # loaded once
    ck = cat.recognizer(cat.entry("ckplus-ft"))
    assert cat.loaded() == ["ckplus-ft"] and set(ck.labels) == CK_LABELS  # the least recently used went
    assert cat.recognizer(cat.default) is not first and cat.loaded() == [cat.default.name]


def test_new_key_with_a_model_from_the_command_line(tmp_path):
    keys = tmp_path / "keys.txt"
    r = subprocess.run([sys.executable, "-m", "affectlens", "serve", "--new-key", "cc", "--key-model", "ckplus-ft",
                        "--api-key-file", str(keys)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().startswith("al_"), r.stderr
    (key,) = read_key_file(keys)
    assert (key.key_id, key.model) == ("cc", "ckplus-ft")
    r = subprocess.run([sys.executable, "-m", "affectlens", "serve", "--new-key", "cc", "--key-model", "../x",
                        "--api-key-file", str(keys)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "model name must use letters" in r.stderr


def test_learned_smoothing_is_refused_up_front_for_a_model_without_a_temporal_model(live):
    """A custom model's labels have no shipped temporal model: the video job and the stream say so
    with 422 before any work (no upload kept, no crash, no server path in the message)."""
    video = need(VIDEOS / "single_face.mp4").read_bytes()
    r = live.http.post("/v1/videos", content=video, params={"model": "ckplus-ft", "smooth": "learned"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_option" and "smooth=learned" in err["message"] and "/" not in err["message"]
    assert not any((live.data / "uploads").iterdir())
    ok = live.http.post("/v1/videos", content=video, params={"smooth": "learned", "classify_per_s": "0",
                                                             "fps": "5", "end_s": "1"})
    assert ok.status_code == 202, ok.text  # the default model has one; every face read
    assert wait_job(live.http, ok.json()["id"])["state"] == "done"
    assert live.http.delete(f"/v1/jobs/{ok.json()['id']}").status_code == 204
    url = live.url.replace("http", "ws") + "/v1/stream?smooth=learned"
    with ws_client.connect(url) as ws:
        ws.send(json.dumps({"type": "hello", "api_key": live.http.headers["X-API-Key"],
                            "consent": "subject-consented", "model": "ckplus-ft"}))
        err = json.loads(ws.recv(timeout=30))
        assert err["type"] == "error" and err["error"]["code"] == "invalid_option", err
