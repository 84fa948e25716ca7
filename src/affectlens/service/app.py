"""The HTTP/WebSocket service: ``create_app(config) -> FastAPI``.

A thin layer over the library: one shared :class:`~affectlens.recognizer.EmotionRecognizer`
for images, one :class:`~affectlens.video.analyzer.VideoAnalyzer` per WebSocket stream, and
``run_video`` in worker processes for video jobs. See ``docs/service.md`` for the protocol.

Example:
    >>> from affectlens.service.app import create_app
    >>> from affectlens.service.config import ServiceConfig
    >>> app = create_app(ServiceConfig(data_dir="./data"))   # then: uvicorn.run(app, port=8000)
"""

from __future__ import annotations

import asyncio
import csv
import functools
import json
import logging
import math
import os
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timezone
from pathlib import Path

from fastapi import Depends, FastAPI, Header, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from affectlens import __version__
from affectlens.cpu import cpu_info
from affectlens.errors import InvalidImageError, InvalidVideoError
from affectlens.service.config import ServiceConfig
from affectlens.service.jobs import Job, JobStore
from affectlens.service.metrics import Metrics
from affectlens.service.middleware import PayloadTooLarge, ServiceMiddleware
from affectlens.service.models import check_smoother
from affectlens.service.ratelimit import DatabaseRateLimiter
from affectlens.service.schemas import ErrorResponse, Health, ImageAnalysis, JobResults, JobStatus
from affectlens.service.security import (API_KEY_HEADER, CONSENT_HEADER, KeyRing, Principal, RateLimiter,
                                         ServiceError, check_consent, check_origin, looks_like_image,
                                         sniff_video)
from affectlens.service.uploads import read_upload, storage_error
from affectlens.service.worker import JOB_DEFAULTS, JOB_OPTIONS, VIDEO_OPTION_KEYS, WorkerPool, delete_job_files

logger = logging.getLogger("affectlens.service")

_ERRORS = {s: {"model": ErrorResponse, "description": d} for s, d in (
    (400, "malformed multipart body or no part named 'file'"), (401, "missing or invalid API key"),
    (403, "no valid consent declaration"), (413, "upload too large"), (415, "not an image/video format"),
    (422, "undecodable content or invalid option"), (429, "rate limit reached"), (503, "overloaded or starting"))}
_JOB_ERRORS = {s: {"model": ErrorResponse, "description": d} for s, d in (
    (401, "missing or invalid API key"), (404, "no such job for this key"), (409, "job not done"),
    (422, "invalid query parameter"), (429, "rate limit reached"))}


def _upload_body(what: str, fields: dict[str, dict]) -> dict:
    """OpenAPI request body: multipart with a ``file`` field and options, or the raw bytes."""
    props = {"file": {"type": "string", "format": "binary", "description": what},
             "consent": {"type": "string", "description": "consent basis (or the X-Consent header)"}, **fields}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": props}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


class ServiceState:
    """Everything the routes share; built by :func:`create_app`, started by its lifespan."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.keys = KeyRing(config)
        # Per-process until start() opens the database (then shared, unless rate_limit_store = "memory").
        self.limiter: RateLimiter | DatabaseRateLimiter = RateLimiter()
        self.uploads_dir = config.data_dir / "uploads"
        self.jobs_dir = config.data_dir / "jobs"
        self.store: JobStore | None = None
        self.pool: WorkerPool | None = None
        # the default model's recognizer, shared by every request (ONNX Runtime sessions accept concurrent runs)
        self.recognizer = None
        self.models = None  # ModelCatalog: the models clients may name (built by create_app)
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        # Database work runs here, never on the event loop nor in the pool that decodes images: a slow
        # or locked database then makes its own requests wait (and answer 503), not every route.
        self.db_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="affectlens-db")
        self.metrics = Metrics({  # gauges read what the worker supervisor last counted (no query per scrape)
            "affectlens_jobs_queue_depth": ("Video jobs waiting for a worker.",
                                            lambda: self.pool.counts.get("queued", 0) if self.pool else 0),
            "affectlens_jobs_running": ("Video jobs running.",
                                        lambda: self.pool.counts.get("running", 0) if self.pool else 0),
            "affectlens_analyses_inflight": ("Image/stream analyses running or waiting.", lambda: self._inflight)})

    @property
    def ttl_s(self) -> float:
        return self.config.result_ttl_hours * 3600.0

    def start(self) -> None:
        for d in (self.config.data_dir, self.uploads_dir, self.jobs_dir, self.config.data_dir / "logs"):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(d, 0o700)  # media and results are personal data: owner only
        self.store = JobStore(self.config.database, busy_timeout_s=self.config.db_busy_timeout_s)
        if self.store.path is not None:
            for f in (self.store.path, *self.store.path.parent.glob(self.store.path.name + "-*")):
                if f.is_file():
                    os.chmod(f, 0o600)
        if self.config.rate_limit_store == "database":
            self.limiter = DatabaseRateLimiter(self.store.engine)
        self.pool = WorkerPool(self.store, max_workers=self.config.max_workers,
                               max_attempts=self.config.max_attempts, ttl_s=self.ttl_s,
                               job_timeout_s=self.config.job_timeout_s, log_dir=self.config.data_dir / "logs",
                               cleanup_interval_s=self.config.cleanup_interval_s, lease_s=self.config.job_lease_s,
                               threads=self.config.threads, engine=self.config.engine,
                               ray_address=self.config.ray_address, models=self.models.entry)
        self.pool.start()
        self.recognizer = self.models.recognizer(self.models.default)
        cfg = self.config.data_dir / "service-config.json"
        cfg.write_text(json.dumps(self.config.public_dict(), indent=2) + "\n")
        os.chmod(cfg, 0o600)

    def stop(self) -> None:
        if self.pool:
            self.pool.stop()
        if self.store:
            self.store.close()
        self.db_executor.shutdown(wait=False, cancel_futures=True)

    async def db(self, fn, *args, **kwargs):
        """Run a database call in the database threads.

        Raises:
            ServiceError: 503 ``database_busy`` with ``Retry-After`` when the database is locked,
                unreachable or times out (never a 500).
        """
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.db_executor, functools.partial(fn, *args, **kwargs))
        except SQLAlchemyError as exc:
            logger.warning("database unavailable: %s", str(getattr(exc, "orig", None) or exc).splitlines()[0])
            raise ServiceError(503, "database_busy", "the service database is busy or unavailable; retry shortly",
                               headers={"Retry-After": "2"}) from None

    @contextmanager
    def slot(self):
        """Admission control: at most ``max_inflight`` analyses at once, else 503 (shed, do not queue)."""
        with self._inflight_lock:
            if self._inflight >= self.config.max_inflight:
                raise ServiceError(503, "overloaded", f"{self._inflight} analyses in progress (limit "
                                   f"{self.config.max_inflight}); retry shortly", headers={"Retry-After": "1"})
            self._inflight += 1
        try:
            yield
        finally:
            with self._inflight_lock:
                self._inflight -= 1

    def model_for(self, who: Principal, requested: str | None):
        """``(ModelEntry, recognizer)`` of a request: the model it names, else its key's, else the default.

        Raises:
            ServiceError: 422 ``unknown_model`` naming the models this server serves.
        """
        entry = self.models.choose(requested, who.model)
        return entry, self.models.recognizer(entry)

    def analyze_bgr(self, bgr, fn):
        """Run ``fn(bgr)`` on the shared models (called in a worker thread; no global lock: ONNX
        Runtime sessions are safe to run concurrently, ``max_inflight`` bounds how many)."""
        return fn(bgr)


_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                        description="API key (the server stores only its sha256); not needed in open mode")


async def authenticate(request: Request, key: str | None = Security(_api_key)) -> Principal:
    """Dependency: the calling key (401 when missing/wrong), counted against its rate limit (429)."""
    svc: ServiceState = request.app.state.svc
    if svc.keys.open_mode and request.method not in ("GET", "HEAD", "OPTIONS"):
        # no key to prove intent: a page on another site must not make the browser submit analyses
        check_origin(request.headers, svc.config.cors_origins)
    who = svc.keys.authenticate(key)
    if who.rate_per_minute > 0:
        await svc.db(svc.limiter.check, who)  # may wait on the database: not on the event loop
    return who


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def job_status(job: Job) -> dict:
    base = f"/v1/jobs/{job.id}"
    return {"id": job.id, "state": job.state, "progress_percent": round(100.0 * job.progress, 1),
            "eta_s": job.eta_s, "frames_analysed": job.frames, "error": job.error, "attempts": job.attempts,
            "consent": job.consent, "retain": job.retain, "created_at": _iso(job.created_at),
            "updated_at": _iso(job.updated_at), "expires_at": _iso(job.expires_at), "options": job.options,
            "model": {"name": job.options.get("model"), "sha256": job.options.get("model_sha256")},
            "links": {"self": base, "results": base + "/results", "report": base + "/report",
                      "annotated": base + "/annotated" if job.options.get("annotate") else None}}


def _retain(v: str | None) -> bool:
    """The ``retain`` option: absent or empty is ``false``; anything but a boolean word is a 422."""
    if v is None or v.strip() == "":
        return False
    try:
        return _parse_bool(v)
    except ValueError:
        raise ServiceError(422, "invalid_option", f"retain must be true or false, got {v[:40]!r}") from None


def _parse_bool(v: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` (any case); anything else raises ValueError."""
    t = str(v).strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {v!r}")


def _num(v: str):
    if v == "":
        return None
    for typ in (int, float):
        try:
            return typ(v)
        except ValueError:
            pass
    return v


def _consent_source(request: Request, header: str | None, fields: dict[str, str]) -> str | None:
    return header or fields.get("consent") or request.query_params.get("consent")


def _job_options(svc: ServiceState, request: Request, fields: dict[str, str], who: Principal | None = None) -> dict:
    """Validated :class:`RunOptions`/:class:`VideoOptions` fields from query parameters and form fields,
    plus the job's model (``model``: its name, ``model_sha256``)."""
    from affectlens.video.analyzer import VideoOptions
    from affectlens.video.session import RunOptions

    given = {**request.query_params, **fields}
    unknown = sorted(set(given) - set(JOB_OPTIONS) - {"consent", "retain", "model"})
    if unknown:
        raise ServiceError(422, "invalid_option", f"unknown option(s) {', '.join(unknown)}; accepted: "
                           f"{', '.join(sorted(JOB_OPTIONS))}, consent, retain, model")
    opts = {**JOB_DEFAULTS, **{k: v for k, v in svc.config.video_defaults.items() if k in JOB_OPTIONS}}
    for k, typ in JOB_OPTIONS.items():
        if given.get(k, "") != "":
            try:
                opts[k] = _parse_bool(given[k]) if typ is bool else typ(given[k])
                if typ is float and not math.isfinite(opts[k]):
                    raise ValueError
            except ValueError:
                raise ServiceError(422, "invalid_option", f"{k} must be a finite {typ.__name__}, got "
                                   f"{given[k][:40]!r}") from None
    try:
        VideoOptions(**{k: opts[k] for k in VIDEO_OPTION_KEYS if k in opts})
        RunOptions(**{k: v for k, v in opts.items() if k not in VIDEO_OPTION_KEYS})  # every, fps, start/end too
    except ValueError as exc:
        raise ServiceError(422, "invalid_option", str(exc)) from None
    entry = svc.models.choose(given.get("model"), who.model if who else None)  # 422 unknown_model
    check_smoother(opts.get("smooth"), entry)
    opts["model"], opts["model_sha256"] = entry.name, entry.sha256
    return opts



def _probe_video(path: Path) -> None:
    from affectlens.video.source import VideoSource

    try:
        VideoSource(path).close()
    except InvalidVideoError as exc:
        raise ServiceError(422, "invalid_video", str(exc).replace(str(path), "upload")) from None


def create_app(config: ServiceConfig | None = None) -> FastAPI:
    """Build the service.

    Args:
        config: :class:`ServiceConfig` (defaults: loopback, open mode, ``./affectlens-data``).

    Raises:
        ValueError: an invalid configuration (e.g. open mode on a public address).
    """
    from affectlens.service.models import ModelCatalog

    config = (config or ServiceConfig()).resolved()
    config.validate()
    svc = ServiceState(config)
    svc.models = ModelCatalog.from_config(config)  # a missing or unreadable model stops the start, named

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

    app = FastAPI(
        title="AffectLens", version=__version__, lifespan=lifespan,
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

    # ------------------------------------------------------------------ images
    @app.post("/v1/images:analyze", response_model=ImageAnalysis, responses=_ERRORS, tags=["analysis"],
              openapi_extra=_upload_body("the image (JPEG, PNG, WebP, BMP, GIF, TIFF)", {"model": {
                  "type": "string", "description": "one of the models this server serves (GET /healthz lists them; "
                  "or the query parameter model); default: the API key's model, else the server's"}}),
              summary="Analyse one image: faces with boxes, landmarks and emotion probabilities")
    async def analyze_image(request: Request, who: Principal = Depends(authenticate),
                            x_consent: str | None = Header(None, alias=CONSENT_HEADER)):
        multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
        if not multipart:  # refuse before reading the body
            consent = check_consent(config, _consent_source(request, x_consent, {}))
        data, fields = await read_upload(request)  # in memory only (max_image_mb), so any part order
        if multipart:
            consent = check_consent(config, _consent_source(request, x_consent, fields))
        from affectlens.imageio import decode_image

        entry, recognizer = await run_in_threadpool(
            svc.model_for, who, fields.get("model") or request.query_params.get("model"))
        with svc.slot():
            try:
                if not data:
                    raise ServiceError(422, "invalid_image", "empty upload (0 bytes)")
                bgr = await run_in_threadpool(decode_image, data, "upload", recognizer.options.max_pixels)
            except InvalidImageError as exc:
                if not looks_like_image(data[:16]):
                    raise ServiceError(415, "unsupported_media_type",
                                       f"{exc}; expected JPEG, PNG, WebP, BMP, GIF or TIFF bytes") from None
                raise ServiceError(422, "invalid_image", str(exc)) from None
            faces = await run_in_threadpool(svc.analyze_bgr, bgr, recognizer.predict_bgr)
        svc.metrics.add_faces("image", len(faces))
        await svc.db(svc.store.audit, who.key_id, "image.analyze", consent, faces=len(faces), bytes=len(data),
                     model=entry.name)
        d = faces.to_dict()
        return {"faces": d["faces"], "labels": d["labels"], "image_size_hw": list(bgr.shape[:2]),
                "model": entry.name, "model_sha256": entry.sha256}

    # ------------------------------------------------------------------ video jobs
    video_fields = {k: {"type": {float: "number", int: "integer", bool: "boolean"}.get(t, "string")}
                    for k, t in JOB_OPTIONS.items()}
    video_fields["annotate"]["description"] = "also write an annotated video (GET /v1/jobs/{id}/annotated)"
    video_fields["blur_faces"]["description"] = "blur faces in the annotated video (default true)"
    video_fields["detect_every"]["description"] = "run the detector on every k-th analysed frame, track between"
    video_fields["retain"] = {"type": "boolean", "description": "keep the upload after the job (default false)"}
    video_fields["model"] = {"type": "string", "description": "one of the models this server serves (GET /healthz "
                             "lists them); default: the API key's model, else the server's"}
    from affectlens.video.analyzer import SMOOTHERS

    # the limits _job_options enforces (422 invalid_option), so that clients and fuzzers see them
    for k in ("every", "detect_every", "window"):
        video_fields[k]["minimum"] = 1
    video_fields["window"]["maximum"] = 300
    for k in ("fps", "interval_s"):
        video_fields[k]["exclusiveMinimum"] = 0
    video_fields["smooth"]["enum"] = list(SMOOTHERS)

    @app.post("/v1/videos", status_code=202, response_model=JobStatus, responses=_ERRORS, tags=["jobs"],
              openapi_extra=_upload_body("the video (mp4, mov, mkv, webm, avi, ...)", video_fields),
              summary="Upload a video; it is analysed by a worker process (202 + job)")
    async def submit_video(request: Request, who: Principal = Depends(authenticate),
                           x_consent: str | None = Header(None, alias=CONSENT_HEADER)):
        multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
        declared = _consent_source(request, x_consent, {})
        if not multipart or declared:  # refuse before reading (and storing) the body
            check_consent(config, declared)
        options = _job_options(svc, request, {}, who)  # query options: refused before the body is read
        retain = _retain(request.query_params.get("retain"))
        job_id = uuid.uuid4().hex
        up_dir = svc.uploads_dir / job_id
        try:
            up_dir.mkdir(mode=0o700)
        except OSError as exc:
            logger.error("cannot create an upload folder: %s", exc)
            raise storage_error(exc) from None
        tmp = up_dir / "upload.part"
        try:
            _, fields = await read_upload(request, dest=tmp,
                                          consent_known=bool(declared) or not config.consent_required)
            consent = check_consent(config, _consent_source(request, x_consent, fields))
            options = _job_options(svc, request, fields, who)
            retain = _retain(fields.get("retain") or request.query_params.get("retain"))
            with open(tmp, "rb") as fh:
                head = fh.read(512)
            if not head:
                raise ServiceError(422, "invalid_video", "empty upload (0 bytes)")
            suffix = sniff_video(head)
            if suffix is None:
                raise ServiceError(415, "unsupported_media_type", "upload is not a known video container (expected "
                                   "MP4/MOV, Matroska/WebM, AVI, MPEG-TS/PS, FLV or WMV bytes)")
            media = tmp.rename(up_dir / f"video{suffix}")
            await run_in_threadpool(_probe_video, media)
        except BaseException:
            shutil.rmtree(up_dir, ignore_errors=True)
            raise
        try:
            job = await svc.db(svc.store.create, consent=consent, key_id=who.key_id, retain=retain,
                               media_path=str(media), out_dir=str(svc.jobs_dir / job_id), options=options,
                               job_id=job_id)
        except BaseException:
            shutil.rmtree(up_dir, ignore_errors=True)  # no job row: nothing may stay on disk
            raise
        await svc.db(svc.store.audit, who.key_id, "video.submit", consent, job_id, bytes=media.stat().st_size,
                     retain=retain)
        svc.metrics.add("jobs_submitted")
        svc.pool.notify()
        return JSONResponse(job_status(job), status_code=202, headers={"Location": f"/v1/jobs/{job_id}"})

    async def _own_job(job_id: str, who: Principal) -> Job:
        job = await svc.db(svc.store.get, job_id)
        if job is None or job.key_id != who.key_id:
            raise ServiceError(404, "not_found", f"no job {job_id[:40]!r} for this API key (deleted or expired?)")
        return job

    async def _done_job(job_id: str, who: Principal) -> Job:
        job = await _own_job(job_id, who)
        if job.state != "done":
            why = f" ({job.error})" if job.error else ""
            raise ServiceError(409, "job_not_done", f"job {job_id} is {job.state}{why}; results exist once it is done")
        return job

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus, responses=_JOB_ERRORS, tags=["jobs"],
             summary="State, progress and ETA of a video job")
    async def get_job(job_id: str, who: Principal = Depends(authenticate)):
        return job_status(await _own_job(job_id, who))

    @app.get("/v1/jobs/{job_id}/results", response_model=JobResults, tags=["jobs"],
             responses={**_JOB_ERRORS, 200: {"description": "JSON (format=json) or CSV (format=csv)",
                                             "content": {"text/csv": {"schema": {"type": "string"}}}}},
             summary="Per-frame results, intervals and summary (JSON), or frames/intervals/episodes as CSV")
    async def get_results(job_id: str, who: Principal = Depends(authenticate),
                          format: str = Query("json", pattern="^(json|csv)$"),
                          part: str = Query("frames", pattern="^(frames|intervals|episodes)$",
                                            description="which table for format=csv")):
        job = await _done_job(job_id, who)
        out = Path(job.out_dir)
        if format == "csv":
            name = f"{part}.csv"
            if not (out / name).exists():  # a job finished before episodes were written
                raise ServiceError(404, "not_found", f"this job has no {name}")
            return FileResponse(out / name, media_type="text/csv", filename=f"{job_id}-{name}")
        return await run_in_threadpool(_results_json, job)

    @app.get("/v1/jobs/{job_id}/report", response_class=Response, tags=["jobs"],
             responses={**_JOB_ERRORS, 200: {"description": "HTML report",
                                             "content": {"text/html": {"schema": {"type": "string"}}}}},
             summary="The self-contained HTML report of a video job")
    async def get_report(job_id: str, who: Principal = Depends(authenticate)):
        job = await _done_job(job_id, who)
        return FileResponse(Path(job.out_dir) / "report.html", media_type="text/html")

    @app.get("/v1/jobs/{job_id}/annotated", response_class=Response, tags=["jobs"],
             responses={**_JOB_ERRORS, 200: {"description": "MP4 video", "content": {
                 "video/mp4": {"schema": {"type": "string", "format": "binary"}}}}},
             summary="The annotated video (MP4) of a job submitted with annotate=true")
    async def get_annotated(job_id: str, who: Principal = Depends(authenticate)):
        job = await _done_job(job_id, who)
        path = Path(job.out_dir) / "annotated.mp4"
        if not job.options.get("annotate") or not path.is_file():
            raise ServiceError(404, "not_found", f"job {job_id} has no annotated video (submit it with annotate=true)")
        await svc.db(svc.store.audit, who.key_id, "job.annotated", job.consent, job_id,
                     blurred=bool(job.options.get("blur_faces", True)))
        return FileResponse(path, media_type="video/mp4", filename=f"{job_id}-annotated.mp4")

    @app.delete("/v1/jobs/{job_id}", status_code=204, responses=_JOB_ERRORS, tags=["jobs"],
                summary="Delete a job, its results and any stored media (stops it when running)")
    async def delete_job(job_id: str, who: Principal = Depends(authenticate)):
        job = await _own_job(job_id, who)
        svc.pool.cancel(job_id)
        left = await run_in_threadpool(delete_job_files, job, svc.pool.log_dir)
        if left:  # the job stays listed: it still holds data
            logger.error("job %s: could not delete %s", job_id, ", ".join(left))
            raise ServiceError(503, "storage_error", f"job {job_id}: some of its files could not be deleted (a "
                               "server storage problem, logged); the job is kept, retry the DELETE later",
                               headers={"Retry-After": "30"})
        await svc.db(svc.store.delete, job_id)
        await svc.db(svc.store.audit, who.key_id, "job.delete", job.consent, job_id)
        return Response(status_code=204)

    # ------------------------------------------------------------------ operations
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

    # ------------------------------------------------------------------ web dashboard (static/)
    from fastapi.staticfiles import StaticFiles

    static_dir = Path(__file__).resolve().parent / "static"

    @app.get("/", include_in_schema=False)
    async def dashboard():
        return FileResponse(static_dir / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=static_dir), name="static")

    from affectlens.service.stream import add_stream_route

    add_stream_route(app, svc)
    return app


def _results_json(job: Job) -> dict:
    from affectlens.video.store import read_frames

    out = Path(job.out_dir)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    with open(out / "intervals.csv", newline="", encoding="utf-8") as fh:
        intervals = [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    frames = [f.to_dict() for f in read_frames(out / "frames.jsonl")]
    return {"job": job_status(job), "summary": summary, "intervals": intervals, "frames": frames}


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
