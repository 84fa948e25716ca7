"""The HTTP/WebSocket service: ``create_app(config) -> FastAPI``.

A thin layer over the library: one shared :class:`~affectlens.recognizer.EmotionRecognizer`
for images, one :class:`~affectlens.video.analyzer.VideoAnalyzer` per WebSocket stream, and
``run_video`` in worker processes for video jobs. See ``docs/service.md`` for the protocol.
The routes live beside it: :mod:`~affectlens.service.image_routes`,
:mod:`~affectlens.service.job_routes`, :mod:`~affectlens.service.stream`; what they share is
:class:`~affectlens.service.state.ServiceState`.

Example:
    >>> from affectlens.service.app import create_app
    >>> from affectlens.service.config import ServiceConfig
    >>> app = create_app(ServiceConfig(data_dir="./data"))   # then: uvicorn.run(app, port=8000)
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from affectlens import __version__
from affectlens.cpu import cpu_info
from affectlens.service.config import ServiceConfig
from affectlens.service.image_routes import add_image_routes
from affectlens.service.job_routes import add_job_routes
from affectlens.service.middleware import PayloadTooLarge, ServiceMiddleware
from affectlens.service.schemas import Health
from affectlens.service.security import API_KEY_HEADER, CONSENT_HEADER, ServiceError
from affectlens.service.state import ServiceState

logger = logging.getLogger("affectlens.service")


def create_app(config: ServiceConfig | None = None) -> FastAPI:
    """Build the service.

    Args:
        config: :class:`ServiceConfig` (defaults: loopback, open mode, ``./affectlens-data``).

    Raises:
        ValueError: an invalid configuration (e.g. open mode on a public address), or a model it
            is configured to serve is missing or unreadable (named).
    """
    from affectlens.service.models import ModelCatalog
    from affectlens.service.stream import add_stream_route

    config = (config or ServiceConfig()).resolved()
    config.validate()
    svc = ServiceState(config)
    svc.models = ModelCatalog.from_config(config)  # a missing or unreadable model stops the start, named
    app = FastAPI(
        title="AffectLens", version=__version__, lifespan=_lifespan(svc),
        description="Facial emotion recognition: images, video jobs and live streams (WebSocket `/v1/stream`, "
                    "see docs/service.md). Outputs read facial appearance, not inner state. Every analysis must "
                    f"declare its consent basis ({CONSENT_HEADER} header or `consent` field).")
    app.state.svc = svc
    app.add_middleware(ServiceMiddleware, metrics=svc.metrics,
                       limits={"/v1/images:analyze": int(config.max_image_mb * 2 ** 20)},
                       default_limit=int(config.max_upload_mb * 2 ** 20))
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=[API_KEY_HEADER, CONSENT_HEADER, "Content-Type"])
    _install_error_handlers(app)
    add_image_routes(app, svc)
    add_job_routes(app, svc)
    _add_operation_routes(app, svc)
    add_stream_route(app, svc)
    return app


def _lifespan(svc: ServiceState):
    """Start the job store, worker pool and default model with the app; stop them with it."""
    config = svc.config

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from affectlens.service.connections import install_log_rate_limit

        install_log_rate_limit()  # after uvicorn configured its loggers
        if svc.keys.open_mode:
            logger.warning("=" * 72)
            logger.warning("OPEN MODE: no API keys configured. Anyone who can reach %s:%s can analyse faces.",
                           config.host, config.port)
            logger.warning("Create a key with: affectlens serve --new-key NAME --api-key-file FILE")
            logger.warning("=" * 72)
        logger.info("consent policy: %s; accepted bases: %s",
                    "required" if config.consent_required else "OFF (not required)", ", ".join(config.consent_bases))
        await run_in_threadpool(svc.start)
        try:
            yield
        finally:
            await run_in_threadpool(svc.stop)

    return lifespan


def _add_operation_routes(app: FastAPI, svc: ServiceState) -> None:
    """``/healthz``, ``/metrics`` and the web dashboard (``/`` and ``/static``)."""
    config = svc.config

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="Liveness and configuration summary")
    async def healthz():
        spec = svc.recognizer.classifier.spec if svc.recognizer else None
        return {"status": "ok" if svc.recognizer else "starting", "version": __version__,
                "model": svc.models.default.name if spec else None, "model_sha256": spec.sha256 if spec else None,
                "model_choice": svc.models.default.choice if svc.recognizer else None,
                "models": [dict(e.public(), default=e is svc.models.default) for e in svc.models.entries.values()],
                "models_loaded": svc.models.loaded(), "engine": config.engine,
                "cpu": cpu_info().describe(), "threads": config.threads,
                "open_mode": svc.keys.open_mode, "consent_required": config.consent_required,
                "consent_bases": list(config.consent_bases),
                "queue_depth": svc.pool.counts.get("queued", 0) if svc.pool else 0,
                "workers_running": svc.pool.running_count() if svc.pool else 0}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"], summary="Prometheus metrics")
    async def metrics():
        return PlainTextResponse(svc.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    from fastapi.staticfiles import StaticFiles

    static_dir = Path(__file__).resolve().parent / "static"

    @app.get("/", include_in_schema=False)
    async def dashboard():
        return FileResponse(static_dir / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static_dir), name="static")


def _install_error_handlers(app: FastAPI) -> None:
    def reply(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    @app.exception_handler(ServiceError)
    async def _service_error(request, exc: ServiceError):
        return reply(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(PayloadTooLarge)
    async def _too_large(request, exc: PayloadTooLarge):
        return reply(413, "payload_too_large", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]]
        return reply(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405 and (allowed := _allowed_methods(request)):
            headers = {**(headers or {}), "Allow": allowed}  # Starlette's names the path's first route only
        return reply(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request, exc: ClientDisconnect):  # the client left (or a read timeout closed it)
        logger.info("client left during %s %s", request.method, request.url.path)
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _internal(request, exc: Exception):
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return reply(500, "internal_error", f"internal error ({type(exc).__name__}); the server log has details")


def _allowed_methods(request: Request) -> str:
    """Every method some route of the request's path accepts (the ``Allow`` header of a 405)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))
