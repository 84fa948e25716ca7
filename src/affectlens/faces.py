"""The central result type: every face found in one image or frame, stored column by column.

Detector, classifier, tracker, smoothers, annotators, sinks and the API schema all take and
return :class:`Faces`. Stages return a new object instead of changing their input.

Example:
    >>> faces = recognizer.predict("group.jpg")
    >>> len(faces), faces.emotions
    (3, ['happy', 'neutral', 'happy'])
    >>> happy = faces[faces.confidence > 0.8]      # boolean masks, slices, index arrays
    >>> faces[0].emotion, faces[0].scores["happy"]   # one face as a small frozen record
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from affectlens.labels import EMOTIONS

#: What ``emotion`` reads for a face below the quality threshold (:mod:`affectlens.quality`).
UNRELIABLE = "unreliable"


@dataclass(frozen=True)
class FrameInfo:
    """Where a set of faces comes from.

    Attributes:
        source: file path, URL or stream name (``None`` for in-memory arrays).
        frame_index: 0-based frame number in a video (``None`` for still images).
        timestamp_ms: presentation time in milliseconds (``None`` for still images).
        image_size_hw: height and width of the analysed image in pixels.
    """

    source: str | None = None
    frame_index: int | None = None
    timestamp_ms: float | None = None
    image_size_hw: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["image_size_hw"] is not None:
            d["image_size_hw"] = list(d["image_size_hw"])
        return d


@dataclass(frozen=True)
class Face:
    """One face, read off a :class:`Faces` row.

    Attributes:
        bbox: ``(x1, y1, x2, y2)`` in pixels of the analysed image.
        landmarks: five ``(x, y)`` points: image-left eye, image-right eye, nose tip,
            image-left and image-right mouth corner.
        det_score: detector confidence in [0, 1].
        scores: emotion label → probability (sums to 1); empty when not classified.
        track_id: persistent id across video frames, ``None`` when untracked.
        quality: how far the reading can be trusted, in [0, 1] (:mod:`affectlens.quality`);
            ``None`` when not assessed.
        quality_reason: the weakest quality signal (``size``, ``sharpness``, ``pose``, ``detection``).
        reliable: ``False`` when quality is below the recogniser's ``min_quality``.
    """

    bbox: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]
    det_score: float
    scores: dict[str, float]
    track_id: int | None = None
    quality: float | None = None
    quality_reason: str | None = None
    reliable: bool = True

    @property
    def top_label(self) -> str | None:
        """The most probable label, whatever the face's quality (``None`` when not classified)."""
        return max(self.scores, key=self.scores.get) if self.scores else None

    @property
    def emotion(self) -> str | None:
        """The most probable emotion; ``"unreliable"`` for a face below the quality threshold
        (see :attr:`top_label` for its best guess), ``None`` when not classified."""
        if self.scores and not self.reliable:
            return UNRELIABLE
        return self.top_label

    @property
    def confidence(self) -> float | None:
        """Probability of :attr:`emotion`."""
        return max(self.scores.values()) if self.scores else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (rounded to 0.01 px and 1e-6 probability)."""
        return {
            "bbox": [round(v, 2) for v in self.bbox],
            "landmarks": [[round(x, 2), round(y, 2)] for x, y in self.landmarks],
            "det_score": round(self.det_score, 6),
            "emotion": self.emotion,
            "confidence": None if self.confidence is None else round(self.confidence, 6),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
            "track_id": self.track_id,
            "quality": None if self.quality is None else round(self.quality, 4),
            "quality_reason": self.quality_reason,
            "reliable": self.reliable,
        }


def _as(arr, dtype, shape_tail: tuple[int, ...], name: str, n: int | None) -> np.ndarray:
    a = np.asarray(arr, dtype=dtype)
    if a.size == 0 and n in (None, 0):
        a = a.reshape((0,) + shape_tail)
    if a.ndim != 1 + len(shape_tail) or a.shape[1:] != shape_tail or (n is not None and a.shape[0] != n):
        want = ("n" if n is None else str(n),) + tuple(map(str, shape_tail))
        raise ValueError(f"{name}: expected shape ({', '.join(want)}), got {a.shape}")
    return a


@dataclass(frozen=True, eq=False)
class Faces:
    """All faces of one image or frame, column by column.

    Attributes:
        xyxy: ``(n, 4)`` float32 boxes in pixels.
        det_score: ``(n,)`` float32 detector confidences.
        landmarks: ``(n, 5, 2)`` float32 points in pixels.
        probs: ``(n, len(labels))`` float32 emotion probabilities, rows summing to 1
            (``(n, 0)`` before classification).
        labels: names of the ``probs`` columns.
        track_id: ``(n,)`` int64 track ids, ``-1`` where untracked.
        data: extra per-face columns, each with ``n`` rows (e.g. ``"probs_raw"`` before smoothing).
        info: :class:`FrameInfo` of the image or frame.

    Raises:
        ValueError: columns of inconsistent lengths or shapes.
    """

    xyxy: np.ndarray
    det_score: np.ndarray
    landmarks: np.ndarray
    probs: np.ndarray | None = None
    labels: tuple[str, ...] = EMOTIONS
    track_id: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    info: FrameInfo = field(default_factory=FrameInfo)

    def __post_init__(self):
        xyxy = _as(self.xyxy, np.float32, (4,), "xyxy", None)
        n = xyxy.shape[0]
        set_ = object.__setattr__
        set_(self, "xyxy", xyxy)
        set_(self, "det_score", _as(self.det_score, np.float32, (), "det_score", n))
        set_(self, "landmarks", _as(self.landmarks, np.float32, (5, 2), "landmarks", n))
        labels = tuple(self.labels)
        set_(self, "labels", labels)
        probs = np.zeros((n, 0), np.float32) if self.probs is None else self.probs
        probs = np.asarray(probs, np.float32)
        if probs.shape[1:] not in ((0,), (len(labels),)) or probs.shape[0] != n:
            raise ValueError(f"probs: expected shape ({n}, {len(labels)}) or ({n}, 0), got {probs.shape}")
        set_(self, "probs", probs)
        tid = np.full(n, -1, np.int64) if self.track_id is None else self.track_id
        set_(self, "track_id", _as(tid, np.int64, (), "track_id", n))
        data = {}
        for key, col in (self.data or {}).items():
            col = np.asarray(col)
            if col.ndim == 0 or col.shape[0] != n:
                raise ValueError(f"data[{key!r}]: expected {n} rows, got shape {col.shape}")
            data[key] = col
        set_(self, "data", data)

    # ----- construction ---------------------------------------------------------------
    @classmethod
    def empty(cls, labels: Sequence[str] = EMOTIONS, info: FrameInfo | None = None) -> "Faces":
        """No faces."""
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)), np.zeros((0, len(labels))), tuple(labels),
                   info=info or FrameInfo())

    def replace(self, **changes) -> "Faces":
        """A copy with some fields replaced (``probs=...``, ``info=...``)."""
        return dataclasses.replace(self, **changes)

    def with_data(self, **columns: np.ndarray) -> "Faces":
        """A copy with extra per-face columns added or replaced."""
        return self.replace(data={**self.data, **columns})

    # ----- sequence protocol ----------------------------------------------------------
    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __iter__(self) -> Iterator[Face]:
        for i in range(len(self)):
            yield self._face(i)

    def __getitem__(self, index):
        """``faces[i]`` → :class:`Face`; a slice, boolean mask or index array → :class:`Faces`."""
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):
                raise IndexError(f"face index {index} out of range for {len(self)} faces")
            return self._face(int(index))
        if isinstance(index, slice):
            idx = np.arange(len(self))[index]
        else:
            idx = np.asarray(index)
            if idx.dtype == bool:
                if idx.shape != (len(self),):
                    raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} faces")
                idx = np.flatnonzero(idx)
            idx = idx.astype(np.int64).reshape(-1)
        return Faces(self.xyxy[idx], self.det_score[idx], self.landmarks[idx], self.probs[idx], self.labels,
                     self.track_id[idx], {k: v[idx] for k, v in self.data.items()}, self.info)

    def _face(self, i: int) -> Face:
        tid = int(self.track_id[i])
        scores = ({name: float(p) for name, p in zip(self.labels, self.probs[i])} if self.probs.shape[1] else {})
        q, why = self.data.get("quality"), self.data.get("quality_reason")
        return Face(bbox=tuple(float(v) for v in self.xyxy[i]),
                    landmarks=tuple((float(x), float(y)) for x, y in self.landmarks[i]),
                    det_score=float(self.det_score[i]), scores=scores, track_id=None if tid < 0 else tid,
                    quality=None if q is None else float(q[i]), quality_reason=None if why is None else str(why[i]),
                    reliable=bool(self.reliable[i]))

    # ----- derived columns ------------------------------------------------------------
    @property
    def classified(self) -> bool:
        return self.probs.shape[1] == len(self.labels) and len(self.labels) > 0

    @property
    def emotion_index(self) -> np.ndarray:
        """``(n,)`` index of the top label (``-1`` when not classified)."""
        if not self.classified:
            return np.full(len(self), -1, np.int64)
        return self.probs.argmax(1)

    @property
    def reliable(self) -> np.ndarray:
        """``(n,)`` bool: faces whose quality passed the threshold (all, when not assessed)."""
        col = self.data.get("reliable")
        return np.ones(len(self), bool) if col is None else np.asarray(col, bool)

    @property
    def emotions(self) -> list[str | None]:
        """Top label per face; ``"unreliable"`` for faces below the quality threshold."""
        ok = self.reliable
        return [(self.labels[i] if ok[k] else UNRELIABLE) if i >= 0 else None
                for k, i in enumerate(self.emotion_index)]

    @property
    def confidence(self) -> np.ndarray:
        """``(n,)`` probability of the top label (NaN when not classified)."""
        if not self.classified:
            return np.full(len(self), np.nan, np.float32)
        return self.probs.max(1) if len(self) else np.zeros(0, np.float32)

    @property
    def area(self) -> np.ndarray:
        """``(n,)`` box areas in square pixels."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    # ----- serialisation --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"info": {...}, "labels": [...], "faces": [record, ...]}``, JSON-ready."""
        return {"info": self.info.to_dict(), "labels": list(self.labels), "faces": [f.to_dict() for f in self]}

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to :func:`json.dumps`, e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **kwargs)

    # ----- notebooks and data frames ---------------------------------------------------
    @property
    def top_emotion(self) -> tuple[str, float] | None:
        """``(label, probability)`` of the most confident face's top emotion; ``None`` without classified faces.

        Example:
            >>> rec.predict("photo.jpg").top_emotion
            ('happy', 0.93)
        """
        if not len(self) or not self.classified:
            return None
        i = int(np.argmax(self.confidence))
        return self.labels[int(self.emotion_index[i])], float(self.confidence[i])

    def to_pandas(self):
        """One row per face as a :class:`pandas.DataFrame` (needs ``pip install 'affectlens[dataframe]'``).

        Columns: ``source``, ``frame_index``, ``timestamp_ms``, ``face``, ``track_id`` (``<NA>``
        when untracked), ``x1``, ``y1``, ``x2``, ``y2``, ``det_score``, ``emotion``, ``confidence``,
        one probability column per label (in ``labels`` order) and every 1-D ``data`` column
        (e.g. ``quality``).

        Raises:
            ImportError: pandas is not installed (the message says how to install it).

        Example:
            >>> df = rec.predict("group.jpg").to_pandas()
            >>> df[["emotion", "confidence", "happy"]]
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Faces.to_pandas() needs pandas: pip install 'affectlens[dataframe]'") from None
        n = len(self)
        cols: dict[str, Any] = {
            "source": [self.info.source] * n, "frame_index": pd.array([self.info.frame_index] * n, "Int64"),
            "timestamp_ms": np.full(n, np.nan if self.info.timestamp_ms is None else self.info.timestamp_ms),
            "face": np.arange(n), "track_id": pd.array([None if t < 0 else int(t) for t in self.track_id], "Int64"),
            "x1": self.xyxy[:, 0], "y1": self.xyxy[:, 1], "x2": self.xyxy[:, 2], "y2": self.xyxy[:, 3],
            "det_score": self.det_score, "emotion": self.emotions, "confidence": self.confidence}
        if self.classified:
            cols.update({name: self.probs[:, j] for j, name in enumerate(self.labels) if name not in cols})
        cols.update({k: v for k, v in self.data.items() if v.ndim == 1 and k not in cols})
        return pd.DataFrame(cols)

    def attach_image(self, image_bgr: np.ndarray) -> "Faces":
        """This object, remembering the ``(h, w, 3)`` BGR image it was found in (not copied).

        Only :meth:`_repr_html_` (notebooks) uses it, to show the annotated image; the image is
        not serialised and not kept by :meth:`replace` or indexing.
        """
        object.__setattr__(self, "_image", image_bgr)
        return self

    def _repr_html_(self) -> str:
        """Jupyter display: the annotated image (when the recognizer attached it) and a table of faces."""
        import base64
        import html

        parts = []
        image = getattr(self, "_image", None)
        if image is not None:
            import cv2

            from affectlens.annotate import annotate

            drawn = annotate(image, self)
            h, w = drawn.shape[:2]
            if max(h, w) > 960:
                k = 960 / max(h, w)
                drawn = cv2.resize(drawn, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if ok:
                parts.append(f'<img style="max-width:100%" alt="annotated faces" '
                             f'src="data:image/jpeg;base64,{base64.b64encode(buf.tobytes()).decode()}">')
        rows = "".join(
            f"<tr><td>{i}</td><td>{'' if f.track_id is None else f.track_id}</td>"
            f"<td>{html.escape(str(f.emotion or '–'))}</td>"
            f"<td>{'' if f.confidence is None else f'{f.confidence:.0%}'}</td>"
            f"<td>{', '.join(f'{v:.0f}' for v in f.bbox)}</td></tr>" for i, f in enumerate(self))
        src = f" in {html.escape(self.info.source)}" if self.info.source else ""
        parts.append(f"<p>{len(self)} face(s){src}. Emotion estimates read appearance, not inner state.</p>")
        if rows:
            parts.append("<table><thead><tr><th>face</th><th>track</th><th>emotion</th><th>confidence</th>"
                         f"<th>box (x1, y1, x2, y2)</th></tr></thead><tbody>{rows}</tbody></table>")
        return "<div>" + "".join(parts) + "</div>"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Faces":
        """Inverse of :meth:`to_dict` (of the extra ``data`` columns only the quality ones are serialised)."""
        labels = tuple(d.get("labels", EMOTIONS))
        recs = d.get("faces", [])
        info = d.get("info") or {}
        size = info.get("image_size_hw")
        info = FrameInfo(info.get("source"), info.get("frame_index"), info.get("timestamp_ms"),
                         tuple(size) if size else None)
        if not recs:
            return cls.empty(labels, info)
        probs = [[r["scores"][k] for k in labels] if r.get("scores") else [] for r in recs]
        probs = np.asarray(probs if all(probs) else np.zeros((len(recs), 0)), np.float32)
        data = {}
        if all(r.get("quality") is not None for r in recs):
            data = {"quality": np.asarray([r["quality"] for r in recs], np.float32),
                    "quality_reason": np.asarray([r.get("quality_reason") for r in recs], object),
                    "reliable": np.asarray([r.get("reliable", True) for r in recs], bool)}
        return cls(np.asarray([r["bbox"] for r in recs]), np.asarray([r["det_score"] for r in recs]),
                   np.asarray([r["landmarks"] for r in recs]), probs, labels,
                   np.asarray([-1 if r.get("track_id") is None else r["track_id"] for r in recs]), data, info)

    def __repr__(self) -> str:
        src = f", source={self.info.source!r}" if self.info.source else ""
        return f"Faces(n={len(self)}, emotions={self.emotions}{src})"
