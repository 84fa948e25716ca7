"""``affectlens dataset prepare``: a customer's labelled photos, videos or crops → aligned faces.

Detection and alignment are the ones inference uses (:class:`~affectlens.detection.RetinaFaceDetector`
and :meth:`~affectlens.classifier.EmotionClassifier.align` with the base model's spec), run
once; the faces are cached as PNG files with a manifest, so training and evaluation read
exactly what the model will see at run time. Inputs that are already face crops (``--crops``,
or images no larger than ``max_crop_side_px``) are only resized, by the same
:func:`~affectlens.preprocess.fit_crops` the classifier uses.

A prepared data set is a folder::

    DATASET/dataset.json     base model, crop size, template, labels, counts, options
    DATASET/manifest.csv     one row per face: id, file, label, subject, source, frame, box, landmarks
    DATASET/problems.csv     inputs with no face, several faces, unreadable or missing
    DATASET/faces/<label>/<id>.png

One bad file never stops the run: it is reported and skipped. The folder is written under a
temporary name and renamed at the end, so an existing data set is never left half-replaced.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from affectlens.datasets.sources import SourceItem
from affectlens.errors import DatasetError, InvalidImageError

logger = logging.getLogger(__name__)

FORMAT = "affectlens-dataset"
FORMAT_VERSION = 1
MANIFEST_FIELDS = ("id", "file", "label", "subject", "source", "frame_ms", "kind", "det_score",
                   "x1", "y1", "x2", "y2", "landmarks")


@dataclass(frozen=True)
class PrepareOptions:
    """Options of :func:`prepare_dataset`.

    Attributes:
        base: the model whose crop size and alignment template the faces are cut to
            (``"default"`` = ``ferplus-vgg48s``).
        crops: every input is already a face crop (no detection).
        max_crop_side_px: images whose longer side is at most this are taken as crops
            (e.g. 48x48 FER / CK+ faces); 0 disables the rule.
        multi_face: ``"largest"`` keeps the largest face of an image with several, ``"skip"``
            skips such images (both are reported).
        min_score: face detector threshold.
        video_fps: frames sampled per second of a labelled video interval.
        min_class_faces: a class with fewer faces is warned about.
        max_subject_share: a subject holding more than this share of a class is warned about.
    """

    base: str = "default"
    crops: bool = False
    max_crop_side_px: int = 96
    multi_face: str = "largest"
    min_score: float = 0.6
    video_fps: float = 2.0
    min_class_faces: int = 20
    max_subject_share: float = 0.5

    def __post_init__(self):
        if self.multi_face not in ("largest", "skip"):
            raise ValueError(f"multi_face must be 'largest' or 'skip', got {self.multi_face!r}")
        if self.video_fps <= 0:
            raise ValueError(f"video_fps must be positive, got {self.video_fps}")


@dataclass
class Face:
    """One prepared face (a manifest row plus its pixels)."""

    crop: np.ndarray
    label: str
    subject: str
    source: str
    kind: str  # "aligned" (detected + aligned) or "crop" (taken as given, resized)
    frame_ms: float | None = None
    det_score: float | None = None
    xyxy: tuple[float, ...] | None = None
    landmarks: np.ndarray | None = None


@dataclass
class PrepareResult:
    """What :func:`prepare_dataset` did.

    Attributes:
        out: the data set folder.
        faces: number of faces written.
        counts: faces per label.
        subjects: distinct subjects per label.
        problems: ``(source, kind, detail)`` for inputs skipped or only partly used (``kind`` is
            ``no_face``, ``multi_face``, ``unreadable`` or ``missing``).
        warnings: class/subject warnings (small classes, a dominating subject).
        seconds: wall time.
    """

    out: Path
    faces: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """A plain-text class/subject table with the warnings."""
        lines = [f"{self.faces} faces in {len(self.counts)} classes -> {self.out}", f"{'class':<14}{'faces':>7}{'subjects':>10}"]
        lines += [f"{k:<14}{v:>7}{self.subjects.get(k, 0):>10}" for k, v in sorted(self.counts.items())]
        kinds = Counter(k for _, k, _ in self.problems)
        if kinds:
            lines.append("skipped or partly used: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                         + f" (see {self.out / 'problems.csv'})")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


class FacePreparer:
    """Turns :class:`SourceItem` records into aligned faces with the base model's crop settings.

    Args:
        options: :class:`PrepareOptions`.
        classifier: an :class:`~affectlens.classifier.EmotionClassifier` whose crop settings to
            use instead of ``options.base`` (evaluation aligns with the evaluated model's own).

    Raises:
        ModelLoadError: the base model or the detector cannot be loaded.
    """

    def __init__(self, options: PrepareOptions | None = None, classifier=None):
        from affectlens.classifier import EmotionClassifier
        from affectlens.detection import DetectorOptions, RetinaFaceDetector

        self.options = options or PrepareOptions()
        self.classifier = classifier or EmotionClassifier(resolve_base(self.options.base))
        self._detector = None
        self._detector_factory = lambda: RetinaFaceDetector(DetectorOptions(min_score=self.options.min_score))

    @property
    def detector(self):
        if self._detector is None:  # crops-only data sets never load it
            self._detector = self._detector_factory()
        return self._detector

    @property
    def crop_size_hw(self) -> tuple[int, int]:
        return self.classifier.crop_size_hw

    def faces_of(self, item: SourceItem) -> tuple[list[Face], list[tuple[str, str, str]]]:
        """The faces of one item and the problems met (never raises for a bad input)."""
        if item.path is not None and item.start_s is not None:
            return self._video_faces(item)
        try:
            img = self._load(item)
        except FileNotFoundError:
            return [], [(item.source, "missing", f"{item.path}: no such file")]
        except (InvalidImageError, OSError, cv2.error) as exc:
            return [], [(item.source, "unreadable", str(exc))]
        face, problem = self.face_in(img, item)
        return ([face] if face else []), ([problem] if problem else [])

    def _load(self, item: SourceItem) -> np.ndarray:
        from affectlens.imageio import load_image

        if item.image is not None:
            img = item.image
            return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img
        if not item.path.exists():
            raise FileNotFoundError(item.path)
        return load_image(item.path)

    def face_in(self, bgr: np.ndarray, item: SourceItem, frame_ms: float | None = None,
                source: str | None = None) -> tuple[Face | None, tuple[str, str, str] | None]:
        """Detect and align the face of one decoded image (or take it as a crop)."""
        from affectlens.preprocess import fit_crops

        source = source or item.source
        opts = self.options
        as_crop = item.is_crop if item.is_crop is not None else (
            opts.crops or (opts.max_crop_side_px > 0 and max(bgr.shape[:2]) <= opts.max_crop_side_px))
        if as_crop:
            return Face(fit_crops(bgr[None], self.crop_size_hw)[0], item.label, item.subject, source, "crop",
                        frame_ms), None
        found = self.detector.detect(bgr)
        problem = None
        if len(found) == 0:
            return None, (source, "no_face", f"no face found ({bgr.shape[1]}x{bgr.shape[0]} px)")
        if item.box_xyxy is not None:
            from affectlens.metrics import box_iou

            i = int(box_iou(np.asarray(item.box_xyxy)[None], found.xyxy)[0].argmax())
        elif len(found) > 1:
            if opts.multi_face == "skip":
                return None, (source, "multi_face", f"{len(found)} faces; skipped (multi_face=skip)")
            area = (found.xyxy[:, 2] - found.xyxy[:, 0]) * (found.xyxy[:, 3] - found.xyxy[:, 1])
            i = int(area.argmax())
            problem = (source, "multi_face", f"{len(found)} faces; kept the largest")
        else:
            i = 0
        crop = self.classifier.align(bgr, found.landmarks[i:i + 1])[0]
        return Face(crop, item.label, item.subject, source, "aligned", frame_ms, float(found.scores[i]),
                    tuple(float(v) for v in found.xyxy[i]), found.landmarks[i]), problem

    def _video_faces(self, item: SourceItem) -> tuple[list[Face], list[tuple[str, str, str]]]:
        from affectlens.errors import InvalidVideoError
        from affectlens.video.source import VideoSource

        if not item.path.exists():
            return [], [(item.source, "missing", f"{item.path}: no such file")]
        faces, problems = [], []
        try:
            with VideoSource(item.path, fps=self.options.video_fps, start_s=item.start_s, end_s=item.end_s) as src:
                for frame in src:
                    ts = frame.timestamp_ms
                    face, problem = self.face_in(frame.image, item, ts, f"{item.path}@{ts / 1000:.2f}s")
                    if face:
                        faces.append(face)
                    if problem:
                        problems.append(problem)
        except (InvalidVideoError, OSError, cv2.error) as exc:
            problems.append((item.source, "unreadable", str(exc)))
        if not faces and not problems:
            problems.append((item.source, "no_face", f"no frame between {item.start_s}s and {item.end_s}s"))
        return faces, problems


def resolve_base(base: str | None) -> str:
    """``"default"`` (or ``None``) → the base model custom models start from (``ferplus-vgg48s``,
    one FER+ network, 8 labels incl. contempt); other names and paths pass through."""
    return "ferplus-vgg48s" if base in (None, "", "default") else base


def iter_faces(items: list[SourceItem], preparer: FacePreparer,
               problems: list[tuple[str, str, str]], progress: Callable[[int, int], None] | None = None
               ) -> Iterator[Face]:
    """Faces of every item, appending what went wrong to ``problems``."""
    for k, item in enumerate(items):
        faces, probs = preparer.faces_of(item)
        problems.extend(probs)
        yield from faces
        if progress:
            progress(k + 1, len(items))


def _warnings(faces_per_label: Counter, subjects_per_label: dict[str, Counter], opts: PrepareOptions) -> list[str]:
    out = []
    for label, n in sorted(faces_per_label.items()):
        if n < opts.min_class_faces:
            out.append(f"class {label!r} has {n} faces (< {opts.min_class_faces}); expect unreliable scores for it")
        subj = subjects_per_label[label]
        top, top_n = subj.most_common(1)[0]
        if len(subj) > 1 and top_n / n > opts.max_subject_share:
            out.append(f"class {label!r}: subject {top!r} holds {top_n} of its {n} faces; the model may learn "
                       "that person rather than the expression")
        elif len(subj) == 1 and n > 1 and not top.startswith("fer2013-"):
            out.append(f"class {label!r}: all {n} faces come from one subject ({top!r}); a subject-disjoint split "
                       "cannot both train and test it")
    if len(faces_per_label) < 2:
        out.append(f"only {len(faces_per_label)} class(es); training needs at least two")
    return out


def prepare_dataset(items: list[SourceItem], out: str | Path, options: PrepareOptions | None = None,
                    overwrite: bool = False, source: str = "",
                    progress: Callable[[int, int], None] | None = None) -> PrepareResult:
    """Detect, align and cache the faces of ``items`` as a data set folder (module docstring).

    Args:
        items: from :func:`affectlens.datasets.sources.find_items`.
        out: the data set folder to create.
        options: :class:`PrepareOptions`.
        overwrite: replace an existing data set at ``out`` (only once the new one is complete).
        source: what to record as the origin.
        progress: called with ``(items done, items)``.

    Returns:
        :class:`PrepareResult`.

    Raises:
        DatasetError: no items, ``out`` exists (without ``overwrite``), or no face at all.

    Example:
        >>> items = find_items("photos/")           # photos/<label>/*.jpg
        >>> print(prepare_dataset(items, "data/mine").summary())
    """
    opts = options or PrepareOptions()
    out = Path(out)
    if not items:
        raise DatasetError(f"{source or out}: no labelled inputs found")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DatasetError(f"{out}: exists and is not empty; choose another --out or pass --overwrite")
    t0 = time.perf_counter()
    preparer = FacePreparer(opts)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "faces").mkdir(parents=True)
    problems: list[tuple[str, str, str]] = []
    per_label: Counter = Counter()
    subjects: dict[str, Counter] = {}
    try:
        with open(tmp / "manifest.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(MANIFEST_FIELDS)
            for n, face in enumerate(iter_faces(items, preparer, problems, progress)):
                _write_face(tmp, writer, n, face)
                per_label[face.label] += 1
                subjects.setdefault(face.label, Counter())[face.subject] += 1
        if not per_label:
            raise DatasetError(f"{source or out}: no face in any of the {len(items)} inputs "
                               f"({Counter(k for _, k, _ in problems)}); nothing written")
        with open(tmp / "problems.csv", "w", newline="") as fh:
            csv.writer(fh).writerows([("source", "problem", "detail"), *problems])
        result = PrepareResult(out, sum(per_label.values()), dict(per_label),
                               {k: len(v) for k, v in subjects.items()}, problems,
                               _warnings(per_label, subjects, opts))
        spec = preparer.classifier.spec
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "source": str(source),
                "base": spec.name, "crop_size_hw": list(spec.input.size_hw),
                "alignment": {"points_norm": [list(p) for p in spec.alignment.points_norm],
                              "source": spec.alignment.source,
                              "roll_dead_band_deg": spec.alignment.roll_dead_band_deg},
                "labels": sorted(per_label), "faces": result.faces, "counts": result.counts,
                "subjects_per_label": result.subjects,
                "subjects": len({s for c in subjects.values() for s in c}),
                "problems": dict(Counter(k for _, k, _ in problems)), "warnings": result.warnings,
                "options": asdict(opts)}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    result.seconds = round(time.perf_counter() - t0, 2)
    return result


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "_"


def _write_face(root: Path, writer, n: int, face: Face) -> None:
    rel = Path("faces") / _safe(face.label) / f"{n:06d}.png"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(root / rel), face.crop):
        raise DatasetError(f"{root / rel}: cannot write the face crop")
    box = face.xyxy or ("", "", "", "")
    lm = "" if face.landmarks is None else ";".join(f"{v:.2f}" for v in np.asarray(face.landmarks).ravel())
    writer.writerow([f"{n:06d}", str(rel), face.label, face.subject, face.source,
                     "" if face.frame_ms is None else f"{face.frame_ms:.1f}", face.kind,
                     "" if face.det_score is None else f"{face.det_score:.4f}",
                     *[v if v == "" else f"{v:.1f}" for v in box], lm])


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared data set read back.

    Attributes:
        root: its folder.
        meta: ``dataset.json``.
        images: ``(n, H, W, 3)`` uint8 BGR aligned faces.
        labels: ``(n,)`` label names.
        subjects: ``(n,)`` subject names.
        ids: ``(n,)`` face ids (manifest ``id``).
        sources: ``(n,)`` where each face came from.
    """

    root: Path
    meta: dict
    images: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    ids: np.ndarray
    sources: np.ndarray

    @property
    def label_names(self) -> tuple[str, ...]:
        """Labels present, in :func:`~affectlens.datasets.image_folder.order_labels` order."""
        from affectlens.datasets.image_folder import order_labels

        return order_labels(set(self.labels.tolist()))

    def __len__(self) -> int:
        return int(len(self.labels))


def load_prepared(root: str | Path) -> PreparedDataset:
    """Read a folder written by :func:`prepare_dataset`.

    Raises:
        DatasetError: not a prepared data set, or a face file listed in the manifest is missing.
    """
    root = Path(root)
    meta_path = root / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{root}: not a prepared data set (no dataset.json); "
                           f"run: affectlens dataset prepare SRC --out {root}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{meta_path}: unreadable ({exc})") from None
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{meta_path}: not an AffectLens data set (format {meta.get('format')!r})")
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = []
    for row in rows:
        img = cv2.imread(str(root / row["file"]), cv2.IMREAD_COLOR)
        if img is None:
            raise DatasetError(f"{root / row['file']}: face crop listed in {root / 'manifest.csv'} is missing or "
                               "unreadable; prepare the data set again")
        images.append(img)
    h, w = meta["crop_size_hw"]
    return PreparedDataset(root, meta, np.stack(images) if images else np.zeros((0, h, w, 3), np.uint8),
                           np.array([r["label"] for r in rows]), np.array([r["subject"] for r in rows]),
                           np.array([r["id"] for r in rows]), np.array([r["source"] for r in rows]))


def prepare_in_memory(items: list[SourceItem], options: PrepareOptions | None = None,
                      preparer: FacePreparer | None = None) -> tuple[list[Face], list[tuple[str, str, str]]]:
    """The faces of ``items`` without writing anything (``evaluate --folder``)."""
    preparer = preparer or FacePreparer(options)
    problems: list[tuple[str, str, str]] = []
    faces = list(iter_faces(items, preparer, problems))
    return faces, problems


__all__ = ["FacePreparer", "PrepareOptions", "PrepareResult", "PreparedDataset", "load_prepared",
           "prepare_dataset", "prepare_in_memory", "resolve_base"]
