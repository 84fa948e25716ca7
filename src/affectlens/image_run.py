"""One image analysed with its outputs: what ``affectlens image`` does per file (and ``batch`` per image item).

Example:
    >>> rec = EmotionRecognizer()
    >>> record = analyse_image_file(rec, "photo.jpg", annotate_to="out/photo.jpg")
    >>> doc = images_document([record], rec, seconds=0.1)   # the ``--json`` document
"""

from __future__ import annotations

from pathlib import Path

from affectlens import __version__
from affectlens.cpu import cpu_info
from affectlens.faces import Faces

RESPONSIBLE_USE = ("AffectLens reads facial appearance, not inner state; analyse people only with their "
                   "informed consent.")


def analyse_image_file(rec, path: str | Path, annotate_to: str | Path | None = None,
                       blur_faces: bool = False) -> tuple[dict, Faces]:
    """Analyse one image file → its JSON record and the :class:`Faces` found.

    Args:
        rec: an :class:`~affectlens.recognizer.EmotionRecognizer`.
        path: image file.
        annotate_to: write an annotated JPEG copy there (``None`` = none).
        blur_faces: blur the faces in the annotated copy (privacy).

    Returns:
        ``({"path", "width", "height", "faces"[, "annotated"]}, faces)``.

    Raises:
        InvalidImageError: unreadable, corrupt, truncated or too large image (names the file).
    """
    from affectlens.imageio import load_image

    bgr = load_image(path, rec.options.max_pixels)
    faces = rec.predict_bgr(bgr, _info(path, bgr))
    record = {"path": str(path), "width": int(bgr.shape[1]), "height": int(bgr.shape[0]),
              "faces": faces.to_dict()["faces"]}
    if annotate_to is not None:
        import cv2

        from affectlens.annotate import AnnotatorOptions, annotate

        drawn = annotate(bgr, faces, AnnotatorOptions(blur_faces=blur_faces))
        Path(annotate_to).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(annotate_to), drawn, [cv2.IMWRITE_JPEG_QUALITY, 92])
        record["annotated"] = str(annotate_to)
    return record, faces


def _info(path, bgr):
    from affectlens.faces import FrameInfo

    return FrameInfo(str(path), None, None, bgr.shape[:2])


def images_document(records: list[dict], rec, seconds: float) -> dict:
    """The JSON document ``affectlens image --json`` writes for ``records`` (errors included)."""
    failed = [r for r in records if "error" in r]
    return {"affectlens_version": __version__, "model": rec.classifier.spec.name,
            "model_sha256": rec.classifier.spec.sha256, "model_choice": rec.model_choice,
            "cpu": cpu_info().describe(), "detector": rec.detector.name, "labels": list(rec.labels),
            "notice": RESPONSIBLE_USE,
            "images": records, "summary": {"images": len(records), "failed": len(failed),
                                           "faces": sum(len(r.get("faces", [])) for r in records),
                                           "seconds": round(seconds, 3)}}
