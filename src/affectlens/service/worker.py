"""Video jobs off the request path: one worker *process* per running job, supervised by a thread.

:class:`WorkerPool` (in the server) claims queued jobs from the :class:`JobStore`, starts
``python -m affectlens.service.worker DB JOB_ID`` for each (``DB`` is the database URL, or ``-``
when the URL holds a password, which then travels in the environment variable
``AFFECTLENS_DATABASE_URL`` rather than on a command line anyone can list), and watches the processes. The worker
runs :func:`affectlens.video.session.run_video` and writes progress, ETA and its final state to
the database itself. When a worker exits without doing so (killed, crashed, out of memory), the
pool re-queues the job — it resumes from its ``frames.jsonl`` — until ``max_attempts`` runs, then
marks it ``failed`` with the reason. Jobs are never left ``running``.

With ``engine="ray"`` (``affectlens serve --engine ray``) a job runs as a Ray task instead of a
process: the Ray engine of ``affectlens batch`` (:mod:`affectlens.batch.ray_engine`) starts or joins
Ray and ships each model once through the object store; the task runs the same :func:`run_job`
(progress, outcome and deletion rules unchanged), and a task that fails without recording an
outcome (its Ray worker died, the node was lost) is re-queued or failed exactly like a lost process.

Uploads are deleted when a job ends unless the client asked ``retain=true``; results are deleted
by :meth:`WorkerPool.cleanup` once they expire.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from affectlens.service.db import DATABASE_URL_ENV
from affectlens.service.jobs import Job, JobStore

logger = logging.getLogger("affectlens.service")

#: Options a client may set on a video job, with their types (everything else is refused).
JOB_OPTIONS = {"fps": float, "every": int, "start_s": float, "end_s": float, "interval_s": float,
               "smooth": str, "window": int, "detect_every": int, "classify_per_s": float, "annotate": bool,
               "blur_faces": bool}
#: Defaults the service applies before the client's options: annotated videos blur faces unless the
#: client explicitly asks for them unblurred (privacy by default).
JOB_DEFAULTS = {"blur_faces": True}
#: The options that belong to :class:`VideoOptions` (the rest are :class:`RunOptions` fields).
VIDEO_OPTION_KEYS = ("smooth", "window", "detect_every", "classify_per_s")
#: What the server records in a job's options about its model (not analysis options).
MODEL_KEYS = ("model", "model_sha256")


def remove_path(path: str | Path | None) -> bool:
    """Delete a file or a folder tree. Returns ``True`` when nothing is left at ``path`` (a failure
    is logged, never hidden: callers record a deletion only when this returns ``True``)."""
    if not path:
        return True
    p = Path(path)
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.error("cannot delete %s: %s", p, exc.strerror or exc)
    return not (p.exists() or p.is_symlink())


def drop_media(job: Job) -> bool:
    """Delete a job's upload: its own folder (named after the job) or, failing that, just the file.
    Returns whether it is gone."""
    if not job.media_path:
        return True
    media = Path(job.media_path)
    return remove_path(media.parent if media.parent.name == job.id else media)


class WorkerPool:
    """Runs queued jobs in worker processes and recovers from their failures.

    Args:
        store: the job store (its URL is passed to the workers).
        max_workers: jobs running at once.
        max_attempts: runs of a job before a lost worker fails it for good.
        ttl_s: results expire this long after a job ends.
        job_timeout_s: a worker running longer is killed and its job failed.
        log_dir: one log file per job for the worker's stderr (never sent to clients).
        poll_s: how often the supervisor looks at the queue and the processes.
    """

    def __init__(self, store: JobStore, *, max_workers: int = 1, max_attempts: int = 2, ttl_s: float = 86400.0,
                 job_timeout_s: float = 3600.0, log_dir: str | Path, poll_s: float = 0.2,
                 cleanup_interval_s: float = 300.0, lease_s: float = 30.0, owner: str | None = None,
                 threads: int = 0, engine: str = "local", ray_address: str | None = None, models=None):
        self.store = store
        #: ``name -> ModelEntry`` of the allowed models (``None``: every job runs the default model)
        self.models = models
        self.engine = engine
        self._ray: RayJobs | None = RayJobs(store, ray_address, threads) if engine == "ray" else None
        self.threads = threads
        self.lease_s = lease_s
        #: this server instance: the owner recorded on the jobs it runs (host, pid and a random part)
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._last_lease = 0.0
        self.max_workers, self.max_attempts = max_workers, max_attempts
        self.ttl_s, self.job_timeout_s, self.poll_s = ttl_s, job_timeout_s, poll_s
        self.cleanup_interval_s = cleanup_interval_s
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._procs: dict[str, tuple] = {}  # job -> (process or Ray task, start, lease token)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_cleanup = 0.0
        self._last_count = 0.0
        #: jobs per state, as last counted by the supervisor (what /healthz and /metrics show)
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Recover jobs a previous server left ``running``, clean up, start supervising.

        Raises:
            EngineError: ``engine="ray"`` and Ray cannot be started or joined.
        """
        if self._ray is not None:
            self._ray.start()
        self._recover()
        self.cleanup()
        self.counts = self.store.counts()
        self._thread = threading.Thread(target=self._run, name="affectlens-workers", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop supervising; running workers are stopped and their jobs re-queued (not counted as an attempt)."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout_s)
        with self._lock:
            procs = dict(self._procs)
            self._procs.clear()
        for job_id, (proc, _, token) in procs.items():
            _terminate(proc)
            self.store.requeue(job_id, "server stopped while the job was running; it resumes on restart",
                               refund_attempt=True, token=token)  # a shutdown is not the job's fault
        if self._ray is not None:
            self._ray.close()

    def notify(self) -> None:
        """Wake the supervisor (a job was queued)."""
        self._wake.set()

    def running_count(self) -> int:
        """Jobs this pool is running now (worker processes or Ray tasks)."""
        with self._lock:
            return len(self._procs)

    def running_pids(self) -> dict[str, int]:
        """Job id -> worker process id of the jobs running in local worker processes (not Ray tasks)."""
        with self._lock:
            return {j: p.pid for j, (p, _, _) in self._procs.items() if p.pid is not None}

    def cancel(self, job_id: str) -> bool:
        """Kill the worker of a job (e.g. before deleting it). Returns whether one was running."""
        with self._lock:
            entry = self._procs.pop(job_id, None)
        if entry is None:
            return False
        _terminate(entry[0])
        return True

    # ------------------------------------------------------------------ supervision
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                if time.monotonic() - self._last_lease > self.lease_s / 3:
                    self._last_lease = time.monotonic()
                    self.store.renew_leases(self.owner, self.lease_s)
                    self._recover()  # jobs of servers that died: re-run once their lease ran out
                self._launch()
                if time.monotonic() - self._last_count > 1.0:
                    self._last_count = time.monotonic()
                    self.counts = self.store.counts()
                if time.monotonic() - self._last_cleanup > self.cleanup_interval_s:
                    self.cleanup()
            except SQLAlchemyError as exc:  # locked or unreachable: try again at the next poll
                logger.warning("worker supervisor: job database unavailable (%s)",
                               str(getattr(exc, "orig", None) or exc).splitlines()[0])
            except Exception:  # keep supervising whatever happens; the log says what
                logger.exception("worker supervisor error")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _launch(self) -> None:
        while True:
            with self._lock:
                if len(self._procs) >= self.max_workers:
                    return
            job = self.store.claim_next(owner=self.owner, lease_s=self.lease_s)
            if job is None:
                return
            try:
                model = self._job_model(job)
            except ValueError as exc:
                if self.store.finish(job.id, "failed", self.ttl_s, error=str(exc), token=job.lease_token):
                    self._after(job.id, audit=True)
                continue
            if self._ray is not None:
                proc = self._ray.submit(job, self.ttl_s, model, self.log_dir / f"{job.id}.log")
            else:
                proc = self._spawn(job, model)
                if proc is None:
                    continue
                self.store.set_pid(job.id, proc.pid)
            with self._lock:
                self._procs[job.id] = (proc, time.monotonic(), job.lease_token)
            logger.info("job %s: %s started (attempt %d)", job.id, proc, job.attempts)

    def _job_model(self, job: Job):
        """The allowed model a job was submitted with (``None``: the default of the worker).

        Raises:
            ValueError: the model is no longer served, or its file changed since the job was submitted.
        """
        if self.models is None:
            return None
        from affectlens.service.security import ServiceError

        name = job.options.get("model")
        try:
            entry = self.models(name)
        except ServiceError as exc:
            raise ValueError(f"the job's model is no longer served by this server: {exc.message}") from None
        want = job.options.get("model_sha256")
        if want and want != entry.sha256:
            raise ValueError(f"model {entry.name!r} changed since the job was submitted (sha256 {want[:12]}... then, "
                             f"{entry.sha256[:12]}... now); submit the video again")
        return entry

    def _spawn(self, job: Job, model) -> subprocess.Popen | None:
        """Start ``python -m affectlens.service.worker`` for a claimed job (``None``: it could not start)."""
        log = os.fdopen(os.open(self.log_dir / f"{job.id}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        db_arg, env = worker_database_arg(self.store)
        cmd = [sys.executable, "-m", "affectlens.service.worker", db_arg, job.id, "--ttl-s", str(self.ttl_s),
               "--token", job.lease_token, "--parent-pid", str(os.getpid()), "--threads", str(self.threads)]
        if model is not None:
            cmd += ["--model", model.ref]
        try:
            return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        except OSError as exc:
            if self.store.finish(job.id, "failed", self.ttl_s, error=f"cannot start a worker process: {exc}",
                                 token=job.lease_token):
                self._after(job.id, audit=True)
            return None
        finally:
            log.close()

    def _reap(self) -> None:
        with self._lock:
            items = list(self._procs.items())
        for job_id, (proc, t0, token) in items:
            rc = proc.poll()
            if rc is None:
                if time.monotonic() - t0 > self.job_timeout_s:
                    _terminate(proc)
                    timed_out = self.store.finish(job_id, "failed", self.ttl_s, token=token,
                                                  error=f"timed out after {self.job_timeout_s:.0f} s (job_timeout_s)")
                    self._forget(job_id)
                    if timed_out:
                        self._after(job_id, audit=True)
                continue
            self._forget(job_id)
            job = self.store.get(job_id)
            if job is None:
                continue  # deleted while running
            if job.lease_token != token:
                continue  # no longer this run's job (its lease ran out and another run took it)
            if job.state == "running":  # the worker died without recording an outcome
                why = f"killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
                why = getattr(proc, "failure", None) or f"worker process {why}"
                reason = f"{why} (attempt {job.attempts} of {self.max_attempts})"
                if job.attempts < self.max_attempts and job.media_path and Path(job.media_path).exists():
                    logger.warning("job %s: %s; re-queued, it resumes from its last saved frame", job_id, reason)
                    self.store.requeue(job_id, reason + "; re-queued", token=token)
                    self.store.audit("server", "job.requeue", job_id=job_id, reason=reason)
                    continue
                logger.error("job %s: %s; failed", job_id, reason)
                if self.store.finish(job_id, "failed", self.ttl_s, error=reason + "; not retried", token=token):
                    self._after(job_id, audit=True)
            else:
                self._after(job_id)  # the worker recorded its outcome (and audited it)

    def _recover(self) -> None:
        for job_id, state in self.store.recover_running(self.max_attempts, self.ttl_s):
            logger.warning("job %s: its worker was lost (server stopped, lease expired): now %s", job_id, state)
            self.store.audit("server", "job.recover", job_id=job_id, state=state)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._procs.pop(job_id, None)

    def _after(self, job_id: str, audit: bool = False) -> None:
        """A job ended: drop its upload unless retained (if the worker did not), audit an outcome decided here."""
        job = self.store.get(job_id)
        if job is None:
            return
        if job.media_path and not job.retain and drop_media(job):
            self.store.clear_media(job_id)
        if audit:
            self.store.audit(job.key_id, f"job.{job.state}", job.consent, job_id, frames=job.frames,
                             error=job.error)

    def cleanup(self, now: float | None = None) -> int:
        """Delete expired jobs (results and media) and uploads of ended jobs not retained.
        Returns how many jobs expired."""
        self._last_cleanup = time.monotonic()
        n = 0
        for job in self.store.expired(now):
            self.cancel(job.id)
            left = delete_job_files(job, self.log_dir)
            if left:  # the row stays (and says what is stored) until its files are really gone
                logger.error("job %s expired but %s could not be deleted; retrying at the next cleanup",
                             job.id, ", ".join(left))
                continue
            self.store.delete(job.id)
            self.store.audit("server", "job.expire", job.consent, job.id)
            n += 1
        for state in ("done", "failed"):
            for job in self.store.list(state):
                if job.media_path and not job.retain and drop_media(job):
                    self.store.clear_media(job.id)
        return n


class _RayRun:
    """A job running as a Ray task, seen through the part of :class:`subprocess.Popen` the pool uses
    (``poll``, ``terminate``, ``kill``, ``wait``, ``pid``); ``failure`` says why a task ended in error."""

    pid = None  # the task records its Ray worker's pid in the job row itself

    def __init__(self, ref, job_id: str):
        import ray

        self.ray, self.ref, self.job_id = ray, ref, job_id
        self.returncode: int | None = None
        self.failure: str | None = None

    def __str__(self) -> str:
        return f"Ray task {self.ref.task_id().hex()[:12]}"

    def poll(self) -> int | None:
        if self.returncode is None:
            ready, _ = self.ray.wait([self.ref], timeout=0)
            if ready:
                try:
                    self.returncode = int(self.ray.get(self.ref))
                except Exception as exc:  # noqa: BLE001 - worker died, node lost, task cancelled: all mean "lost"
                    first = (str(exc).strip().splitlines() or [""])[0][:300]
                    self.failure = f"Ray task failed ({type(exc).__name__}: {first})"
                    self.returncode = 1
        return self.returncode

    def terminate(self) -> None:
        try:
            self.ray.cancel(self.ref, force=True)  # kills the Ray worker process running it
        except Exception as exc:  # noqa: BLE001 - already finished
            logger.debug("cancel %s: %s", self, exc)

    kill = terminate

    def wait(self, timeout: float | None = None) -> int | None:
        self.ray.wait([self.ref], timeout=timeout)
        return self.poll()


class RayJobs:
    """Submits jobs as Ray tasks: the service side of ``affectlens serve --engine ray``.

    Ray is started or joined by :func:`affectlens.batch.ray_engine.connect` (the batch engine's),
    and each model is put in the object store once (:func:`~affectlens.batch.ray_engine.pack_model`)
    and unpacked once per Ray worker process (:func:`~affectlens.batch.ray_engine.unpack_model`).
    The task is :func:`run_ray_job`: it opens the job database and runs :func:`run_job`, so
    progress, results and the outcome are written exactly as a worker process writes them.
    Ray retries nothing itself (``max_retries=0``): the pool's attempt rules decide.

    On a cluster, the data folder must be on storage every node mounts at the same path and the
    database must be one every node reaches (PostgreSQL), as for ``affectlens batch``.
    """

    def __init__(self, store: JobStore, address: str | None, threads: int = 0):
        self.store, self.address, self.threads = store, address, threads
        self._owns = False
        self._task = None
        self._models: dict[str, tuple] = {}  # model ref -> (sha256, ObjectRef)

    def start(self) -> None:
        import ray

        from affectlens.batch.ray_engine import connect

        self._owns = connect(self.address)
        self._task = ray.remote(num_cpus=max(1, self.threads), max_retries=0)(run_ray_job)
        logger.info("video jobs run as Ray tasks on %d cluster CPU(s) (address %s)",
                    int(ray.cluster_resources().get("CPU", 0)), self.address or "local")

    def _model(self, ref: str | None) -> tuple:
        """``(sha256, [ObjectRef])`` of a model, put in the object store on first use only."""
        import ray

        from affectlens.batch.ray_engine import pack_model
        from affectlens.models.registry import select_variant

        ref = ref or select_variant()[0]
        if ref not in self._models:
            packed = pack_model(ref)
            self._models[ref] = (packed["sha256"], ray.put(packed))
        sha, obj = self._models[ref]
        return sha, [obj]  # in a list: Ray hands the task the reference, not the bytes

    def submit(self, job: Job, ttl_s: float, model=None, log_path: str | Path | None = None) -> _RayRun:
        sha, box = self._model(None if model is None else model.ref)
        db = self.store.url.render_as_string(hide_password=False)  # task arguments, never a command line
        ref = self._task.remote(db, job.id, ttl_s, job.lease_token, self.threads, sha, box,
                                None if log_path is None else str(log_path))
        return _RayRun(ref, job.id)

    def close(self) -> None:
        if self._owns:
            import ray

            ray.shutdown()
            self._owns = False


_RAY_STATE: dict = {}  # per Ray worker process: open job stores and loaded recognizers


def run_ray_job(db: str, job_id: str, ttl_s: float, token: str, threads: int, model_sha256: str,
                model_box: list, log_path: str | None = None) -> int:
    """The Ray task of a video job: :func:`run_job` on the shipped model, in a Ray worker process.

    The job store and the recognizer stay open in the Ray worker process for its next jobs
    (one model load per process and model). While the job runs, AffectLens's log records go to
    ``log_path`` (the job's log in the data folder, deleted with the job), not to Ray's own logs.
    Returns :func:`run_job`'s exit code.
    """
    from affectlens.batch.ray_engine import unpack_model
    from affectlens.recognizer import EmotionRecognizer

    os.umask(0o077)  # results are personal data: files 0600, folders 0700
    lg = logging.getLogger("affectlens")
    handler = None
    if log_path is not None:
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s ray worker %(process)d %(levelname)s %(message)s"))
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    try:
        store = _RAY_STATE.get(("store", db))
        if store is None:
            store = _RAY_STATE[("store", db)] = JobStore(db)
        store.set_pid(job_id, os.getpid())
        key = ("recognizer", model_sha256, threads)
        if key not in _RAY_STATE:
            _RAY_STATE[key] = EmotionRecognizer(model=unpack_model(model_sha256, model_box), threads=threads)
        return run_job(store, job_id, ttl_s, token=token, threads=threads, recognizer=_RAY_STATE[key])
    finally:
        if handler is not None:
            lg.removeHandler(handler)
            handler.close()
            lg.propagate = True


def worker_database_arg(store: JobStore) -> tuple[str, dict[str, str] | None]:
    """The ``DB`` argument of a worker command line and the environment to start it with.

    Returns:
        ``(url, None)`` (inherit the environment) for a URL without a password, else ``("-", env)``
        with the URL in ``env[AFFECTLENS_DATABASE_URL]``.
    """
    url = store.url.render_as_string(hide_password=False)
    if not store.url.password:
        return url, None
    return "-", {**os.environ, DATABASE_URL_ENV: url}


def delete_job_files(job: Job, log_dir: str | Path | None = None) -> list[str]:
    """Remove a job's results folder (only a folder named after the job), its upload and its worker log.

    Returns:
        the paths that are still there (empty when everything is gone).
    """
    targets = [job.out_dir] if Path(job.out_dir).name == job.id else []
    if log_dir is not None:
        targets.append(str(Path(log_dir) / f"{job.id}.log"))
    left = [t for t in targets if not remove_path(t)]
    if not drop_media(job):
        left.append(str(job.media_path))
    return left


def _terminate(proc, grace_s: float = 3.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace_s)


# ---------------------------------------------------------------------- the worker process
class LeaseLost(Exception):
    """The job is no longer this worker's (its lease ran out, it was re-claimed or deleted)."""


#: Exit code of a worker that stopped because its job or its server is gone (nothing recorded).
EXIT_NOT_OURS = 75


def attempt_eta_s(elapsed_s: float, first_fraction: float, fraction: float) -> float | None:
    """Seconds left for a job attempt that has run ``elapsed_s`` seconds and moved the job from
    ``first_fraction`` (0 for a fresh attempt, more when it resumed saved frames) to ``fraction``
    of the video: this attempt's own pace, ``None`` until it has covered 2% of the video."""
    done_now = fraction - first_fraction
    return elapsed_s / done_now * (1.0 - fraction) if done_now > 0.02 else None


def run_job(store: JobStore, job_id: str, ttl_s: float, token: str | None = None, threads: int = 0,
            model: str | None = None, recognizer=None) -> int:
    """Run one claimed job to its end and record the outcome. Returns the process exit code.

    With ``token`` (the claim's lease token) every write is conditional on still holding the job:
    a worker whose lease was lost stops without recording anything (exit code 75).

    Args:
        model: the emotion model to load (a shipped name or spec path; ``None`` = the default).
        recognizer: an already loaded recognizer to use instead (a Ray worker keeps one per model).
    """
    from affectlens.errors import AffectLensError
    from affectlens.recognizer import RecognizerOptions
    from affectlens.video.analyzer import VideoOptions
    from affectlens.video.session import RunOptions, run_video

    job = store.get(job_id)
    if job is None or job.state != "running" or (token is not None and job.lease_token != token):
        logger.error("job %s is not running for this worker (state %s); nothing to do", job_id, job and job.state)
        return 3
    logger.info("job %s: attempt %d started (resumes from saved frames: %s)", job_id, job.attempts,
                job.attempts > 1)
    opts = {k: v for k, v in job.options.items() if k not in MODEL_KEYS}
    video_kw = {k: opts.pop(k) for k in VIDEO_OPTION_KEYS if k in opts}
    out = Path(job.out_dir)
    resume = (out / "frames.jsonl").exists() and job.attempts > 1
    t0 = time.monotonic()
    state = {"last": 0.0, "first": None}

    def progress(n, ts, total_ms):
        now = time.monotonic()
        frac = min(1.0, ts / total_ms) if total_ms else 0.0
        if state["first"] is None:  # a resumed attempt starts part-way: its ETA counts its own work
            state["first"] = frac
        if now - state["last"] < 0.25:
            return
        state["last"] = now
        eta = attempt_eta_s(now - t0, state["first"], frac)
        if not store.update_progress(job_id, frac, None if eta is None else round(eta, 1), n, token=token):
            raise LeaseLost(f"job {job_id} is no longer this worker's")

    media = Path(job.media_path or "")
    if not media.is_absolute() or not out.is_absolute():
        store.finish(job_id, "failed", ttl_s, error="job paths are not absolute (made by an older server?); "
                                                    "submit the video again")
        return 1
    if not media.is_file():
        store.finish(job_id, "failed", ttl_s, error="the upload is gone (deleted before the job ran)")
        return 1

    def end(state: str, error: str | None, frames: int | None = None) -> None:
        # The upload goes before the outcome is recorded: a job seen as ended never still holds it,
        # and the database says "deleted" only for an upload that is really gone.
        if token is not None and not store.holds(job_id, token):
            raise LeaseLost(f"job {job_id} is no longer this worker's")
        gone = not job.retain and drop_media(job)
        if not store.finish(job_id, state, ttl_s, error=error, frames=frames, media_deleted=gone, token=token):
            raise LeaseLost(f"job {job_id} is no longer this worker's")
        store.audit(job.key_id, f"job.{state}", job.consent, job_id, frames=frames, error=error)

    try:
        try:  # absolute paths, no chdir; outputs name the upload "video.mp4", never a server path
            options = VideoOptions(recognizer=RecognizerOptions(model=model, threads=threads), **video_kw)
            analyzer = None
            if recognizer is not None:
                from affectlens.video.analyzer import VideoAnalyzer

                analyzer = VideoAnalyzer(options, recognizer=recognizer)
            result = run_video(str(media), out, options=options, analyzer=analyzer,
                               run=RunOptions(resume=resume, **opts), progress=progress, source_name=media.name)
        except LeaseLost:
            raise
        except (AffectLensError, ValueError) as exc:
            end("failed", str(exc).replace(str(job.media_path), "upload"))
            return 1
        except Exception as exc:  # the log keeps the traceback; the client gets a stable message
            logger.exception("job %s failed", job_id)
            end("failed", f"internal error ({type(exc).__name__}); see the server logs")
            return 2
        problems = [p.replace(str(job.media_path), "upload") for p in result.problems]
        end("done", "; ".join(problems) or None, result.frames_analysed)
        return 0
    except LeaseLost as exc:
        logger.warning("%s; stopping without recording an outcome", exc)
        return EXIT_NOT_OURS


def watch_parent(parent_pid: int, interval_s: float = 0.5) -> threading.Thread:
    """Stop this worker process (exit code 75) as soon as its server process is gone: a job whose
    server died is re-run by another server once its lease expires, never by two workers at once."""
    def watch():
        while True:
            if os.getppid() != parent_pid:
                logger.warning("server process %d is gone; stopping (the job is re-run after its lease expires)",
                               parent_pid)
                logging.shutdown()
                os._exit(EXIT_NOT_OURS)
            time.sleep(interval_s)

    t = threading.Thread(target=watch, name="affectlens-parent-watch", daemon=True)
    t.start()
    return t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m affectlens.service.worker", description="run one video job")
    p.add_argument("db", help=f"the service database: a SQLAlchemy URL, a SQLite file, or '-' for the URL in "
                              f"${DATABASE_URL_ENV}")
    p.add_argument("job_id")
    p.add_argument("--ttl-s", type=float, default=86400.0)
    p.add_argument("--token", default=None, help="the claim's lease token (writes only while it holds the job)")
    p.add_argument("--parent-pid", type=int, default=None, help="stop when this process (the server) is gone")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads per session (0 = its default)")
    p.add_argument("--model", default=None, help="emotion model: a shipped name or spec path (default: the default)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(process)d %(levelname)s %(message)s")
    os.umask(0o077)  # results are personal data: files 0600, folders 0700
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    db = os.environ.get(DATABASE_URL_ENV, "") if args.db == "-" else args.db
    if not db:
        p.error(f"DB is '-' but ${DATABASE_URL_ENV} is empty")
    if args.parent_pid is not None:
        watch_parent(args.parent_pid)
    store = JobStore(db)
    try:
        return run_job(store, args.job_id, args.ttl_s, token=args.token, threads=args.threads, model=args.model)
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
