"""Per-frame results on disk: a JSON-lines file flushed in chunks, readable after a crash.

Each line is one analysed frame: ``{"frame_index", "timestamp_ms", "image_size_hw", "labels",
"faces": [{"track_id", "bbox", "landmarks", "det_score", "probs", "probs_raw"}]}``, plus the
marks :func:`read_run` reads: ``"source"`` on a fresh run's first line and ``"scene_cut": true``
on a frame where a scene cut ended every track. A line is
only ever appended whole and flushed (with ``fsync``) every ``flush_every`` frames, so a killed
run leaves a valid file whose last complete line says where to resume; a torn last line is
ignored by :func:`read_frames`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from affectlens.faces import Faces, FrameInfo


#: Per-face data columns a frame record keeps when present (quality, and whether the emotion
#: model read the face on this frame), so a resumed run aggregates like an uninterrupted one.
KEPT_COLUMNS = {"quality": float, "quality_reason": str, "reliable": bool, "read": bool}


def frame_record(faces: Faces) -> dict:
    """One JSON-ready line for a frame's faces."""
    raw = faces.data.get("probs_raw", faces.probs)
    rec = {
        "frame_index": faces.info.frame_index, "timestamp_ms": faces.info.timestamp_ms,
        "image_size_hw": list(faces.info.image_size_hw) if faces.info.image_size_hw else None,
        "labels": list(faces.labels),
        "faces": [{"track_id": int(faces.track_id[i]),
                   "bbox": [round(float(v), 2) for v in faces.xyxy[i]],
                   "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in faces.landmarks[i]],
                   "det_score": round(float(faces.det_score[i]), 5),
                   "probs": [round(float(p), 6) for p in faces.probs[i]],
                   "probs_raw": [round(float(p), 6) for p in raw[i]]} for i in range(len(faces))],
    }
    for name, kind in KEPT_COLUMNS.items():
        col = faces.data.get(name)
        if col is not None:
            for face, v in zip(rec["faces"], col):
                face[name] = round(float(v), 4) if kind is float else kind(v)
    return rec


def faces_from_record(rec: dict, source: str | None = None) -> Faces:
    """Inverse of :func:`frame_record`."""
    labels = tuple(rec["labels"])
    size = rec.get("image_size_hw")
    info = FrameInfo(source, rec["frame_index"], rec["timestamp_ms"], tuple(size) if size else None)
    fs = rec["faces"]
    if not fs:
        return Faces.empty(labels, info).with_data(probs_raw=np.zeros((0, len(labels)), np.float32))
    data = {"probs_raw": np.array([f["probs_raw"] for f in fs], np.float32)}
    for name, kind in KEPT_COLUMNS.items():
        if all(name in f for f in fs):
            data[name] = np.array([f[name] for f in fs], object if kind is str else kind)
    return Faces(np.array([f["bbox"] for f in fs]), np.array([f["det_score"] for f in fs]),
                 np.array([f["landmarks"] for f in fs]), np.array([f["probs"] for f in fs]), labels,
                 np.array([f["track_id"] for f in fs]), data, info)


class FrameWriter:
    """Append frames to a JSONL file, flushing every ``flush_every`` frames and on close.

    Args:
        path: the ``.jsonl`` file.
        append: keep existing complete lines (``--resume``); otherwise start a new file.
    """

    def __init__(self, path: str | Path, append: bool = False, flush_every: int = 25):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if append and self.path.exists():
            _drop_torn_tail(self.path)
        self._fh = open(self.path, "a" if append else "w", encoding="utf-8")
        self.flush_every = max(1, flush_every)
        self._pending = 0

    def write(self, faces: Faces, **marks) -> None:
        """Append one frame; ``marks`` (e.g. ``scene_cut=True``, ``source=NAME``) join its record,
        for :func:`read_run` to find after an interruption."""
        self._fh.write(json.dumps({**frame_record(faces), **marks}, separators=(",", ":")) + "\n")
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._pending = 0

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _drop_torn_tail(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def read_frames(path: str | Path, source: str | None = None) -> list[Faces]:
    """All complete frames of a JSONL file (a torn last line is skipped)."""
    return read_run(path, source)[0]


def read_run(path: str | Path, source: str | None = None) -> tuple[list[Faces], dict]:
    """The complete frames of a JSONL file and what :meth:`FrameWriter.write` marked on them,
    read in one pass: ``(frames, {"source": the first recorded source name or None,
    "scene_cuts_ms": [...]})``. A torn last line ends the reading."""
    out, marks = [], {"source": None, "scene_cuts_ms": []}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                rec = json.loads(line)
                out.append(faces_from_record(rec, source))
            except (json.JSONDecodeError, KeyError):
                break
            if marks["source"] is None and rec.get("source") is not None:
                marks["source"] = str(rec["source"])
            if rec.get("scene_cut"):
                marks["scene_cuts_ms"].append(float(rec["timestamp_ms"]))
    return out, marks


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
