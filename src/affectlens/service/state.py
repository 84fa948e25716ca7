"""What the service's routes share: :class:`ServiceState` (models, job store, worker pool,
admission control, the database threads) and the :func:`authenticate` dependency."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.exc import SQLAlchemyError

from affectlens.service.config import ServiceConfig
from affectlens.service.jobs import JobStore
from affectlens.service.metrics import Metrics
from affectlens.service.ratelimit import DatabaseRateLimiter
from affectlens.service.security import API_KEY_HEADER, KeyRing, Principal, RateLimiter, ServiceError, check_origin
from affectlens.service.worker import WorkerPool

logger = logging.getLogger("affectlens.service")


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
