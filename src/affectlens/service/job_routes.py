"""Video job routes (``add_job_routes``): ``POST /v1/videos`` (upload, 202 + job), ``GET /v1/jobs/{id}`` (state),
``/results``, ``/report``, ``/annotated`` and ``DELETE /v1/jobs/{id}``. Jobs run in worker
processes (:mod:`affectlens.service.worker`); a key sees only its own jobs."""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from affectlens.errors import InvalidVideoError
from affectlens.service.jobs import Job
from affectlens.service.models import check_smoother
from affectlens.service.schemas import ErrorResponse, JobResults, JobStatus
from affectlens.service.security import CONSENT_HEADER, Principal, ServiceError, check_consent, sniff_video
from affectlens.service.state import ServiceState, authenticate
from affectlens.service.uploads import UPLOAD_ERRORS, consent_source, read_upload, storage_error, upload_body
from affectlens.service.worker import JOB_DEFAULTS, JOB_OPTIONS, VIDEO_OPTION_KEYS, delete_job_files

logger = logging.getLogger("affectlens.service")

_JOB_ERRORS = {s: {"model": ErrorResponse, "description": d} for s, d in (
    (401, "missing or invalid API key"), (404, "no such job for this key"), (409, "job not done"),
    (422, "invalid query parameter"), (429, "rate limit reached"))}


def add_job_routes(app: FastAPI, svc: ServiceState) -> None:
    """Register the video job routes on ``app``, over ``svc``."""
    _add_submit_route(app, svc)
    _add_read_routes(app, svc)
    _add_delete_route(app, svc)


def _add_submit_route(app: FastAPI, svc: ServiceState) -> None:
    """``POST /v1/videos``: consent and options checked before the body is stored; the upload
    streamed to a private folder, sniffed and probed; the job row written; 202 + the job."""
    config = svc.config
    video_fields = _video_fields()

    @app.post("/v1/videos", status_code=202, response_model=JobStatus, responses=UPLOAD_ERRORS, tags=["jobs"],
              openapi_extra=upload_body("the video (mp4, mov, mkv, webm, avi, ...)", video_fields),
              summary="Upload a video; it is analysed by a worker process (202 + job)")
    async def submit_video(request: Request, who: Principal = Depends(authenticate),
                           x_consent: str | None = Header(None, alias=CONSENT_HEADER)):
        multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
        declared = consent_source(request, x_consent, {})
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
            consent = check_consent(config, consent_source(request, x_consent, fields))
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


def _add_read_routes(app: FastAPI, svc: ServiceState) -> None:
    """``GET /v1/jobs/{id}`` and its ``/results``, ``/report`` and ``/annotated``."""

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus, responses=_JOB_ERRORS, tags=["jobs"],
             summary="State, progress and ETA of a video job")
    async def get_job(job_id: str, who: Principal = Depends(authenticate)):
        return job_status(await _own_job(svc, job_id, who))

    @app.get("/v1/jobs/{job_id}/results", response_model=JobResults, tags=["jobs"],
             responses={**_JOB_ERRORS, 200: {"description": "JSON (format=json) or CSV (format=csv)",
                                             "content": {"text/csv": {"schema": {"type": "string"}}}}},
             summary="Per-frame results, intervals and summary (JSON), or frames/intervals/episodes as CSV")
    async def get_results(job_id: str, who: Principal = Depends(authenticate),
                          format: str = Query("json", pattern="^(json|csv)$"),
                          part: str = Query("frames", pattern="^(frames|intervals|episodes)$",
                                            description="which table for format=csv")):
        job = await _done_job(svc, job_id, who)
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
        job = await _done_job(svc, job_id, who)
        return FileResponse(Path(job.out_dir) / "report.html", media_type="text/html")

    @app.get("/v1/jobs/{job_id}/annotated", response_class=Response, tags=["jobs"],
             responses={**_JOB_ERRORS, 200: {"description": "MP4 video", "content": {
                 "video/mp4": {"schema": {"type": "string", "format": "binary"}}}}},
             summary="The annotated video (MP4) of a job submitted with annotate=true")
    async def get_annotated(job_id: str, who: Principal = Depends(authenticate)):
        job = await _done_job(svc, job_id, who)
        path = Path(job.out_dir) / "annotated.mp4"
        if not job.options.get("annotate") or not path.is_file():
            raise ServiceError(404, "not_found", f"job {job_id} has no annotated video (submit it with annotate=true)")
        await svc.db(svc.store.audit, who.key_id, "job.annotated", job.consent, job_id,
                     blurred=bool(job.options.get("blur_faces", True)))
        return FileResponse(path, media_type="video/mp4", filename=f"{job_id}-annotated.mp4")


def _add_delete_route(app: FastAPI, svc: ServiceState) -> None:
    """``DELETE /v1/jobs/{id}``: stops the job, deletes its media and results, then its row."""

    @app.delete("/v1/jobs/{job_id}", status_code=204, responses=_JOB_ERRORS, tags=["jobs"],
                summary="Delete a job, its results and any stored media (stops it when running)")
    async def delete_job(job_id: str, who: Principal = Depends(authenticate)):
        job = await _own_job(svc, job_id, who)
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


async def _own_job(svc: ServiceState, job_id: str, who: Principal) -> Job:
    """The job, if it belongs to ``who``.

    Raises:
        ServiceError: 404 ``not_found`` for a missing job or another key's.
    """
    job = await svc.db(svc.store.get, job_id)
    if job is None or job.key_id != who.key_id:
        raise ServiceError(404, "not_found", f"no job {job_id[:40]!r} for this API key (deleted or expired?)")
    return job


async def _done_job(svc: ServiceState, job_id: str, who: Principal) -> Job:
    """The job, if it belongs to ``who`` and is done.

    Raises:
        ServiceError: 404 as :func:`_own_job`; 409 ``job_not_done`` while it is queued, running or failed.
    """
    job = await _own_job(svc, job_id, who)
    if job.state != "done":
        why = f" ({job.error})" if job.error else ""
        raise ServiceError(409, "job_not_done", f"job {job_id} is {job.state}{why}; results exist once it is done")
    return job


def _video_fields() -> dict[str, dict]:
    """The OpenAPI form fields of ``POST /v1/videos``, with the limits ``_job_options`` enforces
    (422 ``invalid_option``), so that clients and fuzzers see them."""
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
    return video_fields


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
    if given.get("window", "") == "" and opts.get("smooth", "hmm") != "moving-average":
        opts.pop("window", None)  # the server's default window belongs to its default smoother, not this one
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


def _results_json(job: Job) -> dict:
    from affectlens.video.store import read_frames

    out = Path(job.out_dir)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    with open(out / "intervals.csv", newline="", encoding="utf-8") as fh:
        intervals = [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(fh)]
    frames = [f.to_dict() for f in read_frames(out / "frames.jsonl")]
    return {"job": job_status(job), "summary": summary, "intervals": intervals, "frames": frames}
