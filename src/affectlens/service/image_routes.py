"""``POST /v1/images:analyze``: one image in memory (never stored), faces with boxes, landmarks
and emotion probabilities out."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool

from affectlens.errors import InvalidImageError
from affectlens.service.schemas import ImageAnalysis
from affectlens.service.security import CONSENT_HEADER, Principal, ServiceError, check_consent, looks_like_image
from affectlens.service.state import ServiceState, authenticate
from affectlens.service.uploads import UPLOAD_ERRORS, consent_source, read_upload, upload_body


def add_image_routes(app: FastAPI, svc: ServiceState) -> None:
    """Register the image analysis route on ``app``, over ``svc``."""
    config = svc.config

    @app.post("/v1/images:analyze", response_model=ImageAnalysis, responses=UPLOAD_ERRORS, tags=["analysis"],
              openapi_extra=upload_body("the image (JPEG, PNG, WebP, BMP, GIF, TIFF)", {"model": {
                  "type": "string", "description": "one of the models this server serves (GET /healthz lists them; "
                  "or the query parameter model); default: the API key's model, else the server's"}}),
              summary="Analyse one image: faces with boxes, landmarks and emotion probabilities")
    async def analyze_image(request: Request, who: Principal = Depends(authenticate),
                            x_consent: str | None = Header(None, alias=CONSENT_HEADER)):
        multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
        if not multipart:  # refuse before reading the body
            consent = check_consent(config, consent_source(request, x_consent, {}))
        data, fields = await read_upload(request)  # in memory only (max_image_mb), so any part order
        if multipart:
            consent = check_consent(config, consent_source(request, x_consent, fields))
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

