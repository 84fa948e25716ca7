"""Pydantic models of the API, mirroring the library's result types.

:class:`FaceRecord` is :meth:`affectlens.faces.Face.to_dict`, :class:`FrameInfoRecord` is
:meth:`affectlens.faces.FrameInfo.to_dict` and :class:`FacesRecord` is
:meth:`affectlens.faces.Faces.to_dict`, field for field (a test keeps them in step), so the
OpenAPI schema documents exactly what the library returns.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class FaceRecord(BaseModel):
    """One face (``Face.to_dict()``)."""

    bbox: list[float] = Field(min_length=4, max_length=4, description="x1, y1, x2, y2 in pixels of the image")
    landmarks: list[list[float]] = Field(
        min_length=5, max_length=5,
        description="five (x, y) points: image-left eye, image-right eye, nose tip, left and right mouth corner")
    det_score: float = Field(ge=0, le=1, description="detector confidence")
    emotion: str | None = Field(description="most probable label; null when not classified")
    confidence: float | None = Field(description="probability of `emotion`")
    scores: dict[str, float] = Field(description="label -> probability, summing to 1")
    track_id: int | None = Field(None, description="track across frames (video/stream); null for images. "
                                                   "Tracks carry no identity.")
    quality: float | None = Field(None, description="face quality 0..1 (size, sharpness, pose, detection score); "
                                                    "null when not measured")
    quality_reason: str | None = Field(None, description="the weakest quality factor")
    reliable: bool | None = Field(None, description="false when quality is below the recogniser's min_quality: "
                                                    "the emotion is then not a reading of this face")


class FrameInfoRecord(BaseModel):
    """Where faces come from (``FrameInfo.to_dict()``)."""

    source: str | None = None
    frame_index: int | None = None
    timestamp_ms: float | None = None
    image_size_hw: list[int] | None = Field(None, min_length=2, max_length=2)


class FacesRecord(BaseModel):
    """All faces of one image or frame (``Faces.to_dict()``)."""

    info: FrameInfoRecord
    labels: list[str]
    faces: list[FaceRecord]


class ImageAnalysis(BaseModel):
    """Result of ``POST /v1/images:analyze``."""

    faces: list[FaceRecord]
    labels: list[str] = Field(description="names of the `scores` keys, in the model's order")
    image_size_hw: list[int] = Field(min_length=2, max_length=2, description="height, width of the decoded image")
    model: str = Field(description="emotion model name (one this server serves)")
    model_sha256: str = Field(description="sha256 of the emotion model file that produced these scores")


class StreamFace(FaceRecord):
    """A face of a stream frame: ``scores`` are smoothed over time, ``scores_raw`` are this frame's."""

    scores_raw: dict[str, float]


class StreamFrame(BaseModel):
    """Server message per analysed stream frame (WebSocket ``/v1/stream``)."""

    type: Literal["faces"] = "faces"
    frame_index: int
    timestamp_ms: float
    image_size_hw: list[int]
    labels: list[str]
    faces: list[StreamFace]


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. consent_required, invalid_image")
    message: str = Field(description="what went wrong and how to fix it")


class ErrorResponse(BaseModel):
    """Every error, whatever the status code."""

    error: ErrorDetail


class JobLinks(BaseModel):
    self: str
    results: str
    report: str
    annotated: str | None = Field(None, description="the annotated video, when the job was submitted with annotate=true")


class JobModel(BaseModel):
    name: str | None = Field(description="one of the models this server serves")
    sha256: str | None = Field(description="sha256 of the model file")


class ModelInfo(BaseModel):
    """A model this server serves (``GET /healthz``)."""

    name: str = Field(description="what requests name it (`model` field)")
    spec_name: str
    sha256: str
    labels: list[str]
    default: bool


class JobStatus(BaseModel):
    """A video job (``GET /v1/jobs/{id}``)."""

    id: str
    state: Literal["queued", "running", "done", "failed"]
    progress_percent: float = Field(ge=0, le=100)
    eta_s: float | None = Field(description="estimated seconds left while running")
    frames_analysed: int
    error: str | None = Field(description="why a job failed, or why it was re-queued / what was incomplete")
    attempts: int = Field(description="worker runs so far (a job resumes after a lost worker)")
    consent: str
    retain: bool = Field(description="the upload is kept after the job (otherwise deleted when it ends)")
    created_at: str
    updated_at: str
    expires_at: str | None = Field(description="when results and media are deleted (set once the job ends)")
    options: dict[str, Any]
    model: JobModel = Field(description="the emotion model the job runs (name and sha256 of its file)")
    links: JobLinks


class JobResults(BaseModel):
    """``GET /v1/jobs/{id}/results?format=json``: what ``affectlens video`` writes."""

    job: JobStatus
    summary: dict[str, Any] = Field(description="summary.json: session and per-track summary")
    intervals: list[dict[str, Any]] = Field(description="intervals.csv rows: per track and interval aggregates")
    frames: list[FacesRecord] = Field(description="every analysed frame (smoothed scores)")


class Health(BaseModel):
    status: Literal["ok", "starting"]
    version: str
    model: str | None = Field(description="emotion model name")
    model_sha256: str | None = Field(None, description="sha256 of the emotion model file")
    model_choice: str | None = Field(None, description="why this file runs here, e.g. 'int8: x86 int8 path avx2'")
    models: list[ModelInfo] = Field(default_factory=list, description="every model requests may name")
    models_loaded: list[str] = Field(default_factory=list, description="models loaded in the API process now")
    engine: str = Field("local", description="where video jobs run: local (worker processes) or ray")
    cpu: str | None = Field(None, description="this server's CPU, ISA flags and int8 path")
    threads: int = Field(0, description="ONNX Runtime threads per session in the API and worker processes "
                                        "(0 = the CPUs the process may use)")
    open_mode: bool
    consent_required: bool
    consent_bases: list[str]
    queue_depth: int
    workers_running: int
