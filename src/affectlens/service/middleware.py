"""ASGI middleware: request body limits (413) and request metrics, for every HTTP request.

A body announced larger than the limit (``Content-Length``) is refused before it is read; a
body that turns out larger (chunked uploads) raises :class:`PayloadTooLarge` while the route
reads it, which the app turns into the same 413 JSON error.
"""

from __future__ import annotations

import json
import time

from affectlens.service.metrics import Metrics


class PayloadTooLarge(Exception):
    """The request body is over the limit of its route."""


class ServiceMiddleware:
    """Body size limits and request metrics.

    Args:
        app: the ASGI app to wrap.
        metrics: where requests and latencies are counted.
        limits: path → largest body in bytes.
        default_limit: limit for every other path.
    """

    def __init__(self, app, metrics: Metrics, limits: dict[str, int], default_limit: int):
        self.app, self.metrics, self.limits, self.default_limit = app, metrics, limits, default_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}
        limit = self.limits.get(scope["path"], self.default_limit)

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-content-type-options", b"nosniff")]
            await send(message)

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                await self._reply_413(send_wrapper, int(length), limit)
                return
            seen = {"n": 0}

            async def counted_receive():
                message = await receive()
                if message["type"] == "http.request":
                    seen["n"] += len(message.get("body", b""))
                    if seen["n"] > limit:
                        raise PayloadTooLarge(f"request body is over the limit of {limit / 2 ** 20:g} MiB")
                return message

            await self.app(scope, counted_receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope.get("method", "?"), template, status["code"],
                                         time.perf_counter() - t0)

    @staticmethod
    async def _reply_413(send, length: int, limit: int) -> None:
        body = json.dumps({"error": {"code": "payload_too_large",
                                     "message": f"request body of {length / 2 ** 20:.1f} MiB is over the limit of "
                                                f"{limit / 2 ** 20:g} MiB"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
