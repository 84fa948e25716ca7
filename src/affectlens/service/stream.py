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

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        await ws.accept()
        session = await _open(ws, svc)
        if session is None:
            return
        try:
            await ws.send_text(json.dumps({"type": "ready", "protocol": 1, "labels": list(session.analyzer.labels),
                                           "max_frame_bytes": session.max_bytes, "model": session.entry.name,
                                           "model_sha256": session.entry.sha256}))
            while True:
                try:
                    msg = await asyncio.wait_for(ws.receive(), IDLE_TIMEOUT_S)
                except asyncio.TimeoutError:
                    await _send_error(ws, "idle_timeout", f"no message for {IDLE_TIMEOUT_S:.0f} s; closing")
                    await ws.close(code=4408, reason="idle_timeout")
                    return
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("text") is not None:
                    await session.on_text(ws, msg["text"])
                else:
                    await session.on_frame(ws, msg.get("bytes") or b"")
        except WebSocketDisconnect:
            return
        finally:
            await session.close()


class _Session:
    """One open stream: its key, consent, model and tracker/smoother state (with its own lock;
    the models are shared, unlocked), the pending timestamp and the counts audited at close."""

    def __init__(self, svc, who, consent: str, entry, recognizer, analyzer):
        self.svc, self.who, self.consent = svc, who, consent
        self.entry, self.recognizer, self.analyzer = entry, recognizer, analyzer
        self.state_lock = threading.Lock()
        self.frames = self.faces_total = 0
        self.received = 0  # binary frames received, answered or not (names a frame in an error)
        self.t_open = time.monotonic()
        self.pending_ts: float | None = None
        self.max_bytes = int(svc.config.max_image_mb * 2 ** 20)

    async def on_text(self, ws: WebSocket, text: str) -> None:
        """A reset, or the timestamp of the next binary frame. Text that is not a JSON object, or a
        timestamp that is not a finite number, is answered with an error; other objects are ignored."""
        try:
            obj = loads_object(text)
        except ValueError as exc:
            await _send_error(ws, "bad_message", f"text messages must be JSON objects ({exc})")
            return
        if obj.get("type") == "reset":
            self.analyzer.reset()
            self.pending_ts = None
        elif "timestamp_ms" in obj:
            try:
                self.pending_ts = float(obj["timestamp_ms"])
                if not math.isfinite(self.pending_ts):
                    raise ValueError
            except (TypeError, ValueError):
                self.pending_ts = None
                await _send_error(ws, "invalid_timestamp", "timestamp_ms must be a finite number")

    def timestamp(self, data: bytes) -> tuple[float, bytes]:
        """``(timestamp in ms, image bytes)`` of a binary frame: its ``ALF1`` header, else the
        pending text timestamp, else the milliseconds since the stream opened."""
        if data[:4] == MAGIC and len(data) >= 12:
            ts, data = struct.unpack(">d", data[4:12])[0], data[12:]
        elif self.pending_ts is not None:
            ts = self.pending_ts
        else:
            ts = (time.monotonic() - self.t_open) * 1000.0
        self.pending_ts = None
        return ts, data

    async def on_frame(self, ws: WebSocket, data: bytes) -> None:
        """Analyse one binary frame and answer with its faces, or with an error (the stream goes on)."""
        self.received += 1
        ts, data = self.timestamp(data)
        if not math.isfinite(ts):
            await _send_error(ws, "invalid_timestamp", f"timestamp must be a finite number, got {ts}")
            return
        if len(data) > self.max_bytes:
            await _send_error(ws, "payload_too_large", f"frame of {len(data)} bytes is over {self.max_bytes}")
            return
        try:
            with self.svc.slot():
                faces = await run_in_threadpool(_analyse, self.recognizer, self.analyzer, self.state_lock, data, ts,
                                                self.frames, self.received)
        except ServiceError as exc:
            await _send_error(ws, exc.code, exc.message)
            return
        except InvalidImageError as exc:
            await _send_error(ws, "invalid_image", str(exc))
            return
        except ValueError as exc:  # e.g. timestamps going backwards
            await _send_error(ws, "invalid_timestamp", str(exc))
            return
        self.frames += 1
        self.faces_total += len(faces)
        self.svc.metrics.add("stream_frames")
        self.svc.metrics.add_faces("stream", len(faces))
        await ws.send_text(json.dumps({
            "type": "faces", "frame_index": self.frames - 1, "timestamp_ms": ts,
            "image_size_hw": list(faces.info.image_size_hw), "labels": list(faces.labels),
            "faces": _stream_faces(faces)}))

    async def close(self) -> None:
        """Count the stream closed and audit it (frames and faces, never their content)."""
        self.svc.metrics.add("stream_connections", -1)
        try:
            await self.svc.db(self.svc.store.audit, self.who.key_id, "stream.close", self.consent,
                              frames=self.frames, faces=self.faces_total)
        except ServiceError:
            logger.error("stream.close not audited (database unavailable): key %s, %d frames", self.who.key_id,
                         self.frames)


async def _open(ws: WebSocket, svc) -> _Session | None:
    """The handshake: origin, key (header or hello), rate limit, consent, model and smoother
    options and the ``stream.open`` audit (counted open from here). Returns ``None`` after
    refusing (an error message, then the close code of :data:`_CLOSE_CODES`) or a disconnect."""
    config = svc.config
    key = ws.headers.get(API_KEY_HEADER)
    consent = ws.headers.get(CONSENT_HEADER) or ws.query_params.get("consent")
    model = ws.query_params.get("model")
    try:
        check_origin(ws.headers, config.cors_origins)  # no cross-site WebSocket hijacking
        if (key is None and not svc.keys.open_mode) or (consent is None and config.consent_required):
            hello = await _receive_hello(ws, no_key=key is None and not svc.keys.open_mode)
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
        await svc.db(svc.store.audit, who.key_id, "stream.open", consent, model=entry.name)
    except ServiceError as exc:
        await _send_error(ws, exc.code, exc.message)
        await ws.close(code=_CLOSE_CODES.get(exc.status, 1008), reason=exc.code)
        return None
    except WebSocketDisconnect:
        return None
    svc.metrics.add("stream_connections")
    return _Session(svc, who, consent, entry, recognizer, analyzer)


async def _receive_hello(ws: WebSocket, no_key: bool) -> dict:
    """The client's first text message, validated by :func:`parse_hello`.

    Raises:
        ServiceError: 401 (no key) or 403 (no consent) when none comes within ``HELLO_TIMEOUT_S``
            or it is not text; 400 for a malformed hello.
    """
    try:
        text = await asyncio.wait_for(ws.receive_text(), HELLO_TIMEOUT_S)
    except (asyncio.TimeoutError, KeyError, TypeError):
        raise ServiceError(401 if no_key else 403, "unauthorized" if no_key else "consent_required",
                           "expected a first text message {\"type\": \"hello\", \"api_key\": ..., "
                           "\"consent\": ...} (or the X-API-Key / X-Consent headers)") from None
    return parse_hello(text)


async def _send_error(ws: WebSocket, code: str, message: str) -> None:
    await ws.send_text(json.dumps({"type": "error", "error": {"code": code, "message": message}}))


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


def _analyse(recognizer, analyzer, state_lock, data: bytes, ts: float, index: int, received: int):
    """Decode and analyse one frame: ``index`` is its ``frame_index`` if it is answered with faces
    (frames analysed so far), ``received`` its number among all binary frames (1-based, in errors)."""
    from affectlens.imageio import decode_image

    bgr = decode_image(data, f"binary frame {received} of this stream", recognizer.options.max_pixels)
    with state_lock:
        return analyzer.process(bgr, ts, frame_index=index, source="stream")
