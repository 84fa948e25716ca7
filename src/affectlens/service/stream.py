"""WebSocket ``/v1/stream``: live analysis with one tracker/smoother state per connection.

Protocol (version 1):

1. Connect to ``/v1/stream``. Credentials and consent come from the ``X-API-Key`` /
   ``X-Consent`` headers or the ``consent`` query parameter; clients that cannot set headers
   (browsers) send them in a first text message ``{"type": "hello", "api_key": "...",
   "consent": "subject-consented"}`` within 10 s. Optional query parameters: ``smooth``
   (``moving-average``, ``ema``, ``hmm``, ``none``), ``window`` and ``model`` (one of the models
   the server serves; the hello may carry ``"model"`` too; default: the key's, else the server's).
2. The server answers ``{"type": "ready", "protocol": 1, "labels": [...], "max_frame_bytes": N,
   "model": NAME, "model_sha256": HEX}``.
3. Per frame, the client sends either
   a. a text message ``{"timestamp_ms": 1234.5}`` followed by a binary message with the JPEG
      (or PNG) bytes, or
   b. one binary message: the 4 ASCII bytes ``ALF1``, the timestamp in ms as a big-endian
      float64 (8 bytes), then the image bytes.
   A binary frame with neither uses the milliseconds since the connection opened.
   Timestamps must not go backwards. ``{"type": "reset"}`` forgets all tracks.
4. The server answers each frame, in order, with a :class:`~affectlens.service.schemas.StreamFrame`
   (``{"type": "faces", "frame_index", "timestamp_ms", "image_size_hw", "labels", "faces": [...]}``;
   ``scores`` smoothed per track, ``scores_raw`` this frame's), or with
   ``{"type": "error", "error": {"code", "message"}}`` for a frame it could not analyse (the
   stream goes on). Send the next frame after the answer to the previous one.

Refusals close the connection after an error message: 4401 (API key), 4403 (consent, or an
``Origin`` that is neither this server nor a configured CORS origin), 4429 (rate limit), 4408 (no
message for ``IDLE_TIMEOUT_S``), 1003 (a hello that is not ``{"type": "hello", "api_key": str,
"consent": str}``, or nested deeper than ``MAX_TEXT_DEPTH``). The models are shared by every
stream without a lock; each stream's tracker/smoother state has its own lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
import threading
import time

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from affectlens.errors import InvalidImageError, ModelLoadError
from affectlens.service.models import check_smoother
from affectlens.service.security import API_KEY_HEADER, CONSENT_HEADER, ServiceError, check_consent, check_origin

logger = logging.getLogger("affectlens.service")

MAGIC = b"ALF1"
HELLO_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 120.0
_CLOSE_CODES = {400: 1003, 401: 4401, 403: 4403, 429: 4429, 503: 4503}
MAX_TEXT_DEPTH = 8
MAX_TEXT_CHARS = 4096
_HELLO_KEYS = {"type", "api_key", "consent", "model"}


def loads_object(text: str) -> dict:
    """A small JSON object from a client's text message, its nesting checked before parsing.

    Raises:
        ValueError: too long, nested deeper than :data:`MAX_TEXT_DEPTH`, not JSON, or not an object.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"over {MAX_TEXT_CHARS} characters")
    depth = deepest = 0
    in_str = esc = False
    for ch in text:  # brackets outside strings; linear and bounded, unlike a recursive parser
        if in_str:
            esc, in_str = (not esc and ch == "\\"), in_str and (esc or ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_TEXT_DEPTH:
                raise ValueError(f"nested deeper than {MAX_TEXT_DEPTH} levels")
        elif ch in "]}":
            depth -= 1
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("not valid JSON") from None
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    return obj


def parse_hello(text: str) -> dict:
    """Validate the hello message: ``{"type": "hello", "api_key": str?, "consent": str?}``.

    Raises:
        ServiceError: 400 (close code 1003) naming the offending field.
    """
    try:
        hello = loads_object(text)
    except ValueError as exc:
        raise ServiceError(400, "bad_hello", f"the hello message must be a JSON object ({exc})") from None
    if hello.get("type", "hello") != "hello":
        raise ServiceError(400, "bad_hello",
                           f"expected a message of type 'hello' first, got {str(hello['type'])[:20]!r}")
    unknown = sorted(set(hello) - _HELLO_KEYS)
    if unknown:
        raise ServiceError(400, "bad_hello", f"unknown hello field(s) {', '.join(u[:20] for u in unknown[:5])}; "
                           "expected type, api_key, consent, model")
    for k in ("api_key", "consent", "model"):
        v = hello.get(k)
        if v is not None and (not isinstance(v, str) or len(v) > 256):
            raise ServiceError(400, "bad_hello", f"hello.{k} must be a string of at most 256 characters, got "
                               f"{type(v).__name__}")
    return hello


def _stream_faces(faces) -> list[dict]:
    raw = faces.data.get("probs_raw", faces.probs)
    out = []
    for i, f in enumerate(faces):
        d = f.to_dict()
        d["scores_raw"] = {k: round(float(p), 6) for k, p in zip(faces.labels, raw[i])} if raw.shape[1] else {}
        out.append(d)
    return out


def add_stream_route(app: FastAPI, svc) -> None:
    """Register ``/v1/stream`` on ``app`` (``svc`` is the app's ``ServiceState``)."""
    config = svc.config

    async def send_error(ws: WebSocket, code: str, message: str) -> None:
        await ws.send_text(json.dumps({"type": "error", "error": {"code": code, "message": message}}))

    async def refuse(ws: WebSocket, exc: ServiceError) -> None:
        await send_error(ws, exc.code, exc.message)
        await ws.close(code=_CLOSE_CODES.get(exc.status, 1008), reason=exc.code)

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        await ws.accept()
        key = ws.headers.get(API_KEY_HEADER)
        consent = ws.headers.get(CONSENT_HEADER) or ws.query_params.get("consent")
        model = ws.query_params.get("model")
        try:
            check_origin(ws.headers, config.cors_origins)  # no cross-site WebSocket hijacking
            if (key is None and not svc.keys.open_mode) or (consent is None and config.consent_required):
                no_key = key is None and not svc.keys.open_mode
                try:
                    text = await asyncio.wait_for(ws.receive_text(), HELLO_TIMEOUT_S)
                except (asyncio.TimeoutError, KeyError, TypeError):
                    raise ServiceError(401 if no_key else 403, "unauthorized" if no_key else "consent_required",
                                       "expected a first text message {\"type\": \"hello\", \"api_key\": ..., "
                                       "\"consent\": ...} (or the X-API-Key / X-Consent headers)") from None
                hello = parse_hello(text)
                key = key or hello.get("api_key")
                consent = consent or hello.get("consent")
                model = model or hello.get("model")
            who = svc.keys.authenticate(key)
            if who.rate_per_minute > 0:
                await svc.db(svc.limiter.check, who)
            consent = check_consent(config, consent)
            entry, recognizer = await run_in_threadpool(svc.model_for, who, model)
            check_smoother(ws.query_params.get("smooth"), entry)
            analyzer = _make_analyzer(recognizer, ws.query_params)
        except ServiceError as exc:
            await refuse(ws, exc)
            return
        except WebSocketDisconnect:
            return
        try:
            await svc.db(svc.store.audit, who.key_id, "stream.open", consent, model=entry.name)
        except ServiceError as exc:
            await refuse(ws, exc)
            return
        svc.metrics.add("stream_connections")
        frames = faces_total = 0
        state_lock = threading.Lock()  # this stream's tracker/smoother state; the models are shared, unlocked
        t_open = time.monotonic()
        pending_ts: float | None = None
        max_bytes = int(config.max_image_mb * 2 ** 20)
        await ws.send_text(json.dumps({"type": "ready", "protocol": 1, "labels": list(analyzer.labels),
                                       "max_frame_bytes": max_bytes, "model": entry.name,
                                       "model_sha256": entry.sha256}))
        try:
            while True:
                try:
                    msg = await asyncio.wait_for(ws.receive(), IDLE_TIMEOUT_S)
                except asyncio.TimeoutError:
                    await send_error(ws, "idle_timeout", f"no message for {IDLE_TIMEOUT_S:.0f} s; closing")
                    await ws.close(code=4408, reason="idle_timeout")
                    return
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("text") is not None:
                    try:
                        obj = loads_object(msg["text"])
                    except ValueError as exc:
                        await send_error(ws, "bad_message", f"text messages must be JSON objects ({exc})")
                        continue
                    if obj.get("type") == "reset":
                        analyzer.reset()
                        pending_ts = None
                    elif "timestamp_ms" in obj:
                        try:
                            pending_ts = float(obj["timestamp_ms"])
                            if not math.isfinite(pending_ts):
                                raise ValueError
                        except (TypeError, ValueError):
                            pending_ts = None
                            await send_error(ws, "invalid_timestamp", "timestamp_ms must be a finite number")
                    continue
                data = msg.get("bytes") or b""
                if data[:4] == MAGIC and len(data) >= 12:
                    ts, data = struct.unpack(">d", data[4:12])[0], data[12:]
                elif pending_ts is not None:
                    ts = pending_ts
                else:
                    ts = (time.monotonic() - t_open) * 1000.0
                pending_ts = None
                if not math.isfinite(ts):
                    await send_error(ws, "invalid_timestamp", f"timestamp must be a finite number, got {ts}")
                    continue
                if len(data) > max_bytes:
                    await send_error(ws, "payload_too_large", f"frame of {len(data)} bytes is over {max_bytes}")
                    continue
                try:
                    with svc.slot():
                        faces = await run_in_threadpool(_analyse, recognizer, analyzer, state_lock, data, ts, frames)
                except ServiceError as exc:
                    await send_error(ws, exc.code, exc.message)
                    continue
                except InvalidImageError as exc:
                    await send_error(ws, "invalid_image", str(exc))
                    continue
                except ValueError as exc:  # e.g. timestamps going backwards
                    await send_error(ws, "invalid_timestamp", str(exc))
                    continue
                frames += 1
                faces_total += len(faces)
                svc.metrics.add("stream_frames")
                svc.metrics.add_faces("stream", len(faces))
                await ws.send_text(json.dumps({
                    "type": "faces", "frame_index": frames - 1, "timestamp_ms": ts,
                    "image_size_hw": list(faces.info.image_size_hw), "labels": list(faces.labels),
                    "faces": _stream_faces(faces)}))
        except WebSocketDisconnect:
            return
        finally:
            svc.metrics.add("stream_connections", -1)
            try:
                await svc.db(svc.store.audit, who.key_id, "stream.close", consent, frames=frames, faces=faces_total)
            except ServiceError:
                logger.error("stream.close not audited (database unavailable): key %s, %d frames", who.key_id, frames)


def _make_analyzer(recognizer, params):
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions

    kw = {}
    if params.get("smooth"):
        kw["smooth"] = params["smooth"]
    if params.get("window"):
        if not params["window"].isdigit():
            raise ServiceError(422, "invalid_option", f"window must be an integer, got {params['window'][:20]!r}")
        kw["window"] = int(params["window"])
    try:
        return VideoAnalyzer(VideoOptions(**kw), recognizer=recognizer)
    except ValueError as exc:
        raise ServiceError(422, "invalid_option", str(exc)) from None
    except ModelLoadError as exc:  # e.g. a learned smoother's file that fails its check
        logger.error("stream: %s", exc)
        raise ServiceError(500, "model_error", "the smoother's model could not be loaded; see the server log") from None


def _analyse(recognizer, analyzer, state_lock, data: bytes, ts: float, index: int):
    from affectlens.imageio import decode_image

    bgr = decode_image(data, f"frame {index}", recognizer.options.max_pixels)
    with state_lock:
        return analyzer.process(bgr, ts, frame_index=index, source="stream")
