"""A whole video run with its outputs: what ``affectlens video SOURCE --out DIR`` does.

Outputs in ``out_dir``:

- ``frames.jsonl`` — every analysed frame (raw and smoothed probabilities), flushed in chunks;
  the crash-safe record that ``resume=True`` continues from.
- ``frames.csv`` — the same, one row per face per frame (see :func:`frame_rows`).
- ``intervals.csv`` — per track and interval: mean probabilities, dominant emotion, shares,
  presence, valence/arousal, attention, engagement.
- ``episodes.csv`` — per track, the spans where an emotion rose above a threshold: start, peak
  time and probability, end, duration, onset and offset (see :mod:`affectlens.video.episodes`).
- ``summary.json`` — session and per-track summary, options, source report, timings.
- ``report.html`` — self-contained report with plots.
- ``annotated.mp4`` — optional annotated video (boxes, track ids, smoothed label, bars), H.264
  when PyAV is installed so that browsers play it (see :mod:`affectlens.video.writer`).
- ``thumbnails.partial.jsonl`` — only while a run with report thumbnails is going or was
  interrupted: the people's pictures so far (blurred with ``blur_faces``), so that a resumed
  run's report still shows those who left before; deleted when the run finishes.
"""

from __future__ import annotations

import base64
import csv
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from affectlens import __version__
from affectlens.annotate import AnnotatorOptions, annotate, blur_region
from affectlens.errors import ResumeMismatchError
from affectlens.faces import Faces
from affectlens.labels import EMOTIONS
from affectlens.video.aggregate import (aggregate_intervals, frame_row_fields, frame_rows, interval_fields,
                                        summarize)
from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
from affectlens.video.episodes import EPISODE_FIELDS, EpisodeOptions, find_episodes
from affectlens.video.prefetch import source_frames
from affectlens.video.report import ReportOptions, write_html_report
from affectlens.video.source import VideoSource
from affectlens.video.store import FrameWriter, read_run
from affectlens.video.writer import CODECS, VideoWriter

logger = logging.getLogger(__name__)



#: Report thumbnails carried across an interruption (see :class:`ThumbnailKeeper`).
THUMBNAILS_PARTIAL = "thumbnails.partial.jsonl"


@dataclass(frozen=True)
class RunOptions:
    """How a video run samples, aggregates and what it writes.

    Attributes:
        every / fps / start_s / end_s: sampling (see :class:`VideoSource`).
        interval_s: aggregation interval in seconds.
        annotate: write ``annotated.mp4``.
        blur_faces: blur the faces in ``annotated.mp4`` and the live window (privacy).
        live: show a window while processing (only when a display is available).
        resume: continue an interrupted run in the same ``out_dir``.
        flush_every: frames between flushes of ``frames.jsonl``.
        thumbnails: put one small face picture per person in ``report.html`` (blurred when
            ``blur_faces``); ``False`` keeps faces out of the report.
        min_track_s: tracks visible for less than this many seconds are folded into one
            compact list in the report (see :class:`~affectlens.video.report.ReportOptions`).
        codec: codec of ``annotated.mp4``: ``"auto"`` (H.264 with PyAV, else ``mp4v``),
            ``"h264"``, ``"vp9"`` or ``"mp4v"`` (see :mod:`affectlens.video.writer`).
        episodes: thresholds of ``episodes.csv`` (see :class:`EpisodeOptions`).
    """

    every: int = 1
    fps: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    interval_s: float = 5.0
    annotate: bool = False
    blur_faces: bool = False
    live: bool = False
    resume: bool = False
    flush_every: int = 25
    thumbnails: bool = True
    min_track_s: float = 2.0
    codec: str = "auto"
    episodes: EpisodeOptions = field(default_factory=EpisodeOptions)

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"every must be >= 1 frames, got {self.every}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be > 0 frames per second, got {self.fps}")
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s} s) must be after start_s ({self.start_s} s)")
        if self.interval_s <= 0:
            raise ValueError(f"interval_s must be > 0 seconds, got {self.interval_s}")
        if self.min_track_s < 0:
            raise ValueError(f"min_track_s must be >= 0 seconds, got {self.min_track_s}")
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}; got {self.codec!r}")


@dataclass
class RunResult:
    """What a run produced.

    Attributes:
        out_dir: output folder.
        frames_analysed: frames in ``frames.jsonl`` (including resumed ones).
        tracks: number of confirmed tracks.
        interrupted: stopped by Ctrl-C (outputs cover what was processed).
        problems: decoding problems (e.g. a truncated file and where it stopped).
        files: output name → path.
    """

    out_dir: Path
    frames_analysed: int
    tracks: int
    interrupted: bool = False
    problems: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def to_pandas(self, table: str = "frames"):
        """``frames.csv`` (one row per face per frame) or ``intervals.csv`` as a :class:`pandas.DataFrame`.

        Args:
            table: ``"frames"`` or ``"intervals"``.

        Raises:
            ValueError: another table name.
            ImportError: pandas is not installed (``pip install 'affectlens[dataframe]'``).
        """
        if table not in ("frames", "intervals"):
            raise ValueError(f"table: expected 'frames' or 'intervals', got {table!r}")
        pd = _pandas()
        return pd.read_csv(self.files[f"{table}_csv"])


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("DataFrames need pandas: pip install 'affectlens[dataframe]'") from None
    return pd


def frames_to_pandas(frames: list[Faces]):
    """Analysed frames (from :meth:`VideoAnalyzer.analyze` or ``process``) as a :class:`pandas.DataFrame`.

    The columns of ``frames.csv`` (:func:`~affectlens.video.aggregate.frame_rows`): one row per
    face per frame, with raw and smoothed probabilities and the per-face metrics.

    Raises:
        ImportError: pandas is not installed (``pip install 'affectlens[dataframe]'``).
    """
    pd = _pandas()
    frames = list(frames)
    labels = next((f.labels for f in frames if len(f)), frames[0].labels if frames else EMOTIONS)
    return pd.DataFrame(frame_rows(frames), columns=frame_row_fields(labels))


def _display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_video(source, out_dir: str | Path, options: VideoOptions | None = None, run: RunOptions | None = None,
              analyzer: VideoAnalyzer | None = None, progress=None, source_name: str | None = None) -> RunResult:
    """Analyse a video source and write every output.

    Args:
        source: file, folder of frames, camera index or URL.
        out_dir: output folder (created).
        options / run / analyzer: analysis options, run options, or a ready analyzer.
        progress: ``True`` for a progress bar on standard error (seconds of video, speed as a
            multiple of real time), or a callable ``(frames_done, ms_since_start, span_ms_or_None)``:
            the time of the frame and the length of the part of the video the run covers, both
            counted from ``run.start_s`` and up to ``run.end_s`` or the video's end.
        source_name: how the outputs name the source (default ``str(source)``); the service passes
            ``"video.mp4"`` so that no server path reaches results, without changing directory.

    Returns:
        :class:`RunResult`; ``result.to_pandas()`` gives the frames as a DataFrame.

    Raises:
        InvalidVideoError: the source cannot be opened or has no decodable frame.
        ResumeMismatchError: ``resume`` into a folder that holds a run of a video with another
            file name (a ``ValueError``).
    """
    run = run or RunOptions()
    if progress is True:
        from affectlens.video.progress import VideoProgress

        with VideoProgress() as bar:
            return run_video(source, out_dir, options, run, analyzer, progress=bar, source_name=source_name)
    out = Path(out_dir)
    jsonl = out / "frames.jsonl"
    name = str(source) if source_name is None else source_name
    done, marks = read_run(jsonl, name) if run.resume and jsonl.exists() else ([], {})
    if run.resume and not done:
        logger.warning("%s: nothing to resume (no analysed frames there); starting from the beginning", out)
    earlier_cuts = _check_resumable(marks, jsonl, name, source) if done else []
    start_s = run.start_s
    resume = ResumeIds(done)
    va = analyzer or VideoAnalyzer(options)
    if done:
        # re-analyse the tracker's max_lost_ms before the last written frame, without writing it, so
        # the tracker, the smoother and the detector schedule are warm and the tracks keep their ids
        start_s = max(run.start_s or 0.0, (resume.last_ts - va.options.tracker.max_lost_ms) / 1000.0)
        logger.info("resuming after frame %s (%.2f s), %d frames already analysed",
                    done[-1].info.frame_index, resume.last_ts / 1000, len(done))
    src = VideoSource(source, every=run.every, fps=run.fps, start_s=start_s, end_s=run.end_s)
    out.mkdir(parents=True, exist_ok=True)  # only once the source opened: a bad input leaves no empty folder
    opts = va.options
    live = run.live and _display_available()
    if run.live and not live:
        logger.warning("no display available: running headless (--live ignored)")
    ann_name = "annotated.mp4" if not done else f"annotated-from-{done[-1].info.frame_index + 1}.mp4"
    fps_out = run.fps or (src.report.fps_nominal / run.every if src.report.fps_nominal else 25)
    pictures = _Pictures(out / ann_name, run, live, float(fps_out))
    frames: list[Faces] = list(done)
    thumbs = ThumbnailKeeper(blur=run.blur_faces, path=out / THUMBNAILS_PARTIAL if run.thumbnails else None,
                             flush_every=run.flush_every)
    if done:
        thumbs.load()
    else:
        (out / THUMBNAILS_PARTIAL).unlink(missing_ok=True)  # a fresh run into a used folder: not its people
    interrupted = False
    cuts_ms: list[float] = []  # scene cuts of the frames analysed and handed out by this run
    t0 = time.perf_counter()
    total_ms, origin_ms = _progress_span(src, run)
    try:
        with FrameWriter(jsonl, append=bool(done), flush_every=run.flush_every) as fw, src:
            analysed = va.process_frames(source_frames(src), name)
            try:
                for frame, faces, scene_cut in analysed:
                    if scene_cut:  # not va.scene_cuts_ms: its finding half may be frames ahead at a stop
                        cuts_ms.append(frame.timestamp_ms)
                    if resume.warming_up(faces):
                        continue
                    faces = resume.ids(faces)
                    marks = {"scene_cut": True} if scene_cut else {}
                    if not frames:
                        marks["source"] = name
                    fw.write(faces, **marks)
                    frames.append(faces)
                    if run.thumbnails:
                        thumbs.offer(frame.image, faces)
                    if not pictures.add(frame.image, faces):
                        break  # q or Esc in the live window
                    if progress:
                        progress(len(frames), frame.timestamp_ms - origin_ms, total_ms)
            finally:
                analysed.close()  # stops the threads ahead before the source closes
    except KeyboardInterrupt:
        interrupted = True
    finally:
        thumbs.flush()
        pictures.close()
    seconds = time.perf_counter() - t0
    report = src.report.to_dict()
    if name != str(source):
        report["source"] = name
        report["problems"] = [p.replace(str(source), name) for p in report.get("problems") or []]
    result = finish_outputs(out, frames, run, opts, report, seconds, interrupted,
                            len(frames) - len(done), va.labels, thumbs.data_uris() if run.thumbnails else None,
                            _merge_cuts(earlier_cuts, cuts_ms), model_record(va))
    if run.annotate and (out / ann_name).exists():
        result.files["annotated"] = str(out / ann_name)
    if not interrupted:
        (out / THUMBNAILS_PARTIAL).unlink(missing_ok=True)  # the report holds them now; nothing else keeps faces
    return result


class _Pictures:
    """A run's annotated video (``run.annotate``) and live window (``live``); either may be off."""

    def __init__(self, path: Path, run: RunOptions, live: bool, fps: float):
        self.path, self.run, self.live, self.fps = path, run, live, fps
        self._writer: VideoWriter | None = None

    def add(self, image_bgr: np.ndarray, faces: Faces) -> bool:
        """Draw one analysed frame; ``False`` when the viewer asked to stop (q or Esc)."""
        if not (self.run.annotate or self.live):
            return True
        drawn = annotate(image_bgr, faces, AnnotatorOptions(blur_faces=self.run.blur_faces))
        if self.run.annotate:
            if self._writer is None:
                h, w = drawn.shape[:2]
                self._writer = VideoWriter(self.path, self.fps, (w, h), self.run.codec)
            self._writer.write(drawn)
        if self.live:
            cv2.imshow("AffectLens", drawn)
            return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)
        return True

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self.live:
            cv2.destroyAllWindows()


def _check_resumable(marks: dict, jsonl: Path, name: str, source) -> list[float]:
    """The scene cuts an interrupted run marked in ``jsonl`` (``marks`` from :func:`read_run`),
    after checking that it analysed a video of the same file name.

    Raises:
        ResumeMismatchError: the folder holds another video's run (names both and the fix).
    """
    earlier = marks["source"]
    if earlier is not None and Path(earlier).name != Path(name).name:
        raise ResumeMismatchError(f"{jsonl}: cannot resume: this folder holds a run of {earlier!r}, not of "
                                  f"{str(source)!r}; give another --out folder, or leave out --resume to start over")
    return marks["scene_cuts_ms"]


def _merge_cuts(earlier: list[float], new: list[float]) -> list[float]:
    """An interrupted run's cuts and the resumed run's (which re-finds those of its warm-up
    frames), each once, in time order."""
    return sorted({round(float(t), 3) for t in [*earlier, *new]})


def _progress_span(src: VideoSource, run: RunOptions) -> tuple[float | None, float]:
    """``(length in ms of the part of the video this run covers, or None when the container does
    not announce its length; where that part starts, in ms)``: progress and ETA count from
    ``start_s`` to ``end_s`` (or the end of the video), not over the whole file."""
    origin = 1000.0 * (run.start_s or 0.0)
    if not (src.report.fps_nominal and src.report.frames_announced):
        return (1000.0 * run.end_s - origin if run.end_s is not None else None), origin
    length = src.report.frames_announced / src.report.fps_nominal * 1000.0
    if run.end_s is not None:
        length = min(length, 1000.0 * run.end_s)
    return max(length - origin, 1.0), origin


class ResumeIds:
    """Track ids of a resumed run: a track that was on screen at the last written frame keeps its
    id (matched by box overlap with the warm-up re-analysis); later tracks get ids after the
    largest written one.

    Args:
        done: the frames already written (empty for a fresh run: ids pass unchanged).
    """

    def __init__(self, done: list[Faces]):
        self.last_ts = max((f.info.timestamp_ms for f in done), default=None)
        self._last = done[-1] if done else None
        self._offset = max((int(f.track_id.max()) for f in done if len(f)), default=0)
        self._warm: Faces | None = None
        self._map: dict[int, int] | None = None if done else {}

    def warming_up(self, faces: Faces) -> bool:
        """Whether ``faces`` is a re-analysed frame (at or before the last written one): kept
        for the id match, not written."""
        if self.last_ts is None or self._map is not None or faces.info.timestamp_ms > self.last_ts + 0.5:
            return False
        self._warm = faces
        return True

    def ids(self, faces: Faces) -> Faces:
        """``faces`` with track ids continuing the written ones."""
        if self._map is None:
            self._map = _match_tracks(self._warm, self._last)
        if not self._offset and not self._map:
            return faces
        tid = faces.track_id
        return faces.replace(track_id=np.array([self._map.get(int(t), int(t) + self._offset) if t > 0 else int(t)
                                                for t in tid], np.int64))


def _match_tracks(warm: Faces | None, last: Faces | None, min_iou: float = 0.3) -> dict[int, int]:
    """New track id → written track id for the confirmed faces of the last warm-up frame and the
    last written frame, by the optimal assignment of their boxes (IoU >= ``min_iou``)."""
    from affectlens.assignment import linear_assignment
    from affectlens.metrics import box_iou

    if warm is None or last is None or not len(warm) or not len(last):
        return {}
    a, b = warm[warm.track_id > 0], last[last.track_id > 0]
    if not len(a) or not len(b):
        return {}
    iou = box_iou(a.xyxy, b.xyxy)
    return {int(a.track_id[r]): int(b.track_id[c]) for r, c in linear_assignment(1.0 - iou) if iou[r, c] >= min_iou}


def model_record(analyzer: VideoAnalyzer) -> dict:
    """What ``summary.json`` says about the models that produced a run: the emotion model's name,
    sha256, why that file was chosen, the CPU, the detector and (``--smooth learned``) the
    temporal model."""
    from affectlens.cpu import cpu_info

    rec = analyzer.recognizer
    out = {"name": rec.classifier.spec.name, "sha256": rec.classifier.spec.sha256,
           "choice": getattr(rec, "model_choice", None), "cpu": cpu_info().describe(), "detector": rec.detector.name}
    spec = getattr(analyzer.smoother, "spec", None)
    if isinstance(spec, dict) and spec.get("name"):
        out["temporal_model"] = spec["name"]
        out["temporal_model_sha256"] = spec.get("sha256")
    return out


def finish_outputs(out: Path, frames: list[Faces], run: RunOptions, opts: VideoOptions, source_report: dict,
                   seconds: float, interrupted: bool, new_frames: int, labels: tuple[str, ...],
                   thumbnails: dict[int, str] | None = None, scene_cuts_ms: list[float] | None = None,
                   model: dict | None = None) -> RunResult:
    """Write frames.csv, intervals.csv, episodes.csv, summary.json and report.html from the analysed
    frames; ``model`` (:func:`model_record`) goes into ``summary.json`` and the report."""
    intervals = aggregate_intervals(frames, run.interval_s)
    summary = summarize(frames, intervals)
    episodes = find_episodes(frames, run.episodes)
    problems = list(source_report.get("problems") or [])
    summary.update({
        "interval_s": run.interval_s,
        "scene_cuts_ms": [round(float(t), 3) for t in scene_cuts_ms or []],
        "affectlens_version": __version__,
        "source": source_report,
        "model": model or {},
        "options": {"smooth": opts.smooth,
                    **{k: v for k, v in opts.smoother_kwargs(labels).items() if k not in ("labels", "classifier")},
                    "detect_every": opts.detect_every, "rescan_s": opts.rescan_s,
                    "regions_every": opts.regions_every,
                    "classify_per_s": opts.classify_per_s,
                    "scene_cut_distance": getattr(opts, "scene_cut_distance", None),
                    "interval_s": run.interval_s, "every": run.every,
                    "fps": run.fps, "start_s": run.start_s, "end_s": run.end_s},
        "processing": {"seconds": round(seconds, 3), "frames_this_run": new_frames,
                       "fps": round(new_frames / seconds, 2) if seconds > 0 else None,
                       "interrupted": interrupted, "complete": not interrupted and not source_report.get("stopped_early")},
        "problems": problems,
        "episodes": episodes,
    })
    _write_csv(out / "frames.csv", frame_rows(frames), frame_row_fields(labels))
    _write_csv(out / "intervals.csv", intervals, interval_fields(labels))
    _write_csv(out / "episodes.csv", episodes, EPISODE_FIELDS)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    title = f"AffectLens report — {Path(str(source_report.get('source', 'video'))).name}"
    write_html_report(out / "report.html", frames, intervals, summary, title=title,
                      options=ReportOptions(min_track_s=run.min_track_s), thumbnails=thumbnails)
    files = {k: str(out / v) for k, v in (("frames_jsonl", "frames.jsonl"), ("frames_csv", "frames.csv"),
                                          ("intervals_csv", "intervals.csv"),
                                          ("episodes_csv", "episodes.csv"), ("summary", "summary.json"),
                                          ("report", "report.html"))}
    n_tracks = int(summary.get("track_count", len(summary.get("tracks", []))))
    return RunResult(out, len(frames), n_tracks, interrupted, problems, files, summary)


class ThumbnailKeeper:
    """Keeps one small picture per confirmed track: its largest, most confidently detected face.

    With ``path``, the pictures that changed are appended to that file (``0600``, one JSON line
    per picture: track id, score, JPEG data URI) every ``flush_every`` offers and on
    :meth:`flush`, so that a resumed run's report still shows the people who left before the
    interruption; :func:`run_video` deletes the file when the run finishes.

    Args:
        blur: blur each picture as the annotated video does (privacy).
        size_px: height and width of the pictures.
        path: the file that carries the pictures across an interruption (``None``: memory only).
        flush_every: offers between appends to ``path``.
    """

    def __init__(self, blur: bool = False, size_px: int = 96, path: str | Path | None = None,
                 flush_every: int = 25):
        self.blur, self.size_px = blur, size_px
        self.path = Path(path) if path is not None else None
        self.flush_every = max(1, flush_every)
        self._best: dict[int, tuple[float, np.ndarray]] = {}
        self._changed: set[int] = set()
        self._offers = 0

    def load(self) -> int:
        """Read back the pictures an interrupted run appended to ``path`` (the last line of each
        track wins; a torn or unreadable line is skipped, and so is an unblurred picture when
        this keeper blurs). Returns how many tracks have one."""
        if self.path is None or not self.path.is_file():
            return 0
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
                tid, score, uri = int(rec["track_id"]), float(rec["score"]), str(rec["uri"])
                if self.blur and not rec.get("blurred"):
                    continue  # saved by a run without blur_faces: never into a blurred run's report
                data = np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8)
                img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
            except (ValueError, KeyError, TypeError, IndexError, cv2.error):
                continue
            if img is not None:
                self._best[tid] = (score, img)
        return len(self._best)

    def offer(self, image_bgr: np.ndarray, faces: Faces) -> None:
        """Keep a crop of each tracked face of this frame that beats the track's current picture."""
        h, w = image_bgr.shape[:2]
        for i, tid in enumerate(faces.track_id.tolist()):
            if tid < 1:
                continue
            x1, y1, x2, y2 = (float(v) for v in faces.xyxy[i])
            score = float(faces.det_score[i]) * max(0.0, (x2 - x1) * (y2 - y1)) ** 0.5
            if tid in self._best and self._best[tid][0] >= score:
                continue
            side = 1.3 * max(x2 - x1, y2 - y1)   # a square around the face with some margin
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            c, d = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
            if c - a < 4 or d - b < 4:
                continue
            crop = image_bgr[b:d, a:c].copy()
            if self.blur:
                blur_region(crop, (x1 - a, y1 - b, x2 - a, y2 - b))
            self._best[tid] = (score, cv2.resize(crop, (self.size_px, self.size_px), interpolation=cv2.INTER_AREA))
            self._changed.add(tid)
        self._offers += 1
        if self.path is not None and self._offers % self.flush_every == 0:
            self.flush()

    def flush(self) -> None:
        """Append the pictures that changed since the last flush to ``path`` (no-op without one)."""
        if self.path is None or not self._changed:
            return
        uris = self.data_uris(sorted(self._changed))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # face pictures: owner only
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            for tid, uri in uris.items():
                fh.write(json.dumps({"track_id": tid, "score": round(self._best[tid][0], 4), "uri": uri,
                                     "blurred": self.blur}) + "\n")
        self._changed.clear()

    def data_uris(self, track_ids=None) -> dict[int, str]:
        """Track id → ``data:image/jpeg;base64,...`` (of ``track_ids``, default every track)."""
        out = {}
        for tid in self._best if track_ids is None else track_ids:
            ok, buf = cv2.imencode(".jpg", self._best[tid][1], [cv2.IMWRITE_JPEG_QUALITY, 80])
            if ok:
                out[tid] = "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")
        return out


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    """Write rows atomically; the header is written even when there are no rows."""
    tmp = path.with_name(path.name + ".tmp")
    extra = [k for k in (rows[0].keys() if rows else []) if k not in fields]
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields) + extra)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)
