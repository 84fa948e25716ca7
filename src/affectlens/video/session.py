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
- ``annotated.mp4`` — optional annotated video (boxes, track ids, smoothed label, bars).
"""

from __future__ import annotations

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
from affectlens.annotate import AnnotatorOptions, annotate
from affectlens.faces import Faces
from affectlens.video.aggregate import (aggregate_intervals, frame_row_fields, frame_rows, interval_fields,
                                        summarize)
from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
from affectlens.video.episodes import EPISODE_FIELDS, EpisodeOptions, find_episodes
from affectlens.video.report import write_html_report
from affectlens.video.source import VideoSource
from affectlens.video.store import FrameWriter, read_frames

logger = logging.getLogger(__name__)



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
    episodes: EpisodeOptions = field(default_factory=EpisodeOptions)

    def __post_init__(self):
        if self.interval_s <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {self.interval_s}")


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


def _display_available() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_video(source, out_dir: str | Path, options: VideoOptions | None = None, run: RunOptions | None = None,
              analyzer: VideoAnalyzer | None = None, progress=None) -> RunResult:
    """Analyse a video source and write every output.

    Args:
        source: file, folder of frames, camera index or URL.
        out_dir: output folder (created).
        progress: optional callable ``(frames_done, timestamp_ms, total_ms_or_None)``.

    Raises:
        InvalidVideoError: the source cannot be opened or has no decodable frame.
    """
    run = run or RunOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "frames.jsonl"
    done: list[Faces] = read_frames(jsonl, str(source)) if run.resume and jsonl.exists() else []
    start_s = run.start_s
    id_offset = 0
    if done:
        last_ts = max(f.info.timestamp_ms for f in done)
        start_s = (last_ts + 0.5) / 1000.0
        id_offset = max((int(f.track_id.max()) for f in done if len(f)), default=0)
        logger.info("resuming after frame %s (%.2f s), %d frames already analysed",
                    done[-1].info.frame_index, last_ts / 1000, len(done))
    src = VideoSource(source, every=run.every, fps=run.fps, start_s=start_s, end_s=run.end_s)
    va = analyzer or VideoAnalyzer(options)
    opts = va.options
    live = run.live and _display_available()
    if run.live and not live:
        logger.warning("no display available: running headless (--live ignored)")
    writer_video = None
    ann_name = "annotated.mp4" if not done else f"annotated-from-{done[-1].info.frame_index + 1}.mp4"
    frames: list[Faces] = list(done)
    interrupted = False
    t0 = time.perf_counter()
    total_ms = (src.report.frames_announced / src.report.fps_nominal * 1000.0
                if src.report.fps_nominal and src.report.frames_announced else None)
    try:
        with FrameWriter(jsonl, append=bool(done), flush_every=run.flush_every) as fw, src:
            for frame in src:
                faces = va.process(frame.image, frame.timestamp_ms, frame.index, str(source))
                if id_offset:
                    tid = faces.track_id
                    faces = faces.replace(track_id=np.where(tid > 0, tid + id_offset, tid))
                fw.write(faces)
                frames.append(faces)
                if run.annotate or live:
                    drawn = annotate(frame.image, faces, AnnotatorOptions(blur_faces=run.blur_faces))
                    if run.annotate:
                        if writer_video is None:
                            h, w = drawn.shape[:2]
                            fps_out = run.fps or (src.report.fps_nominal / run.every if src.report.fps_nominal else 25)
                            writer_video = cv2.VideoWriter(str(out / ann_name), cv2.VideoWriter_fourcc(*"mp4v"),
                                                           float(fps_out), (w, h))
                        writer_video.write(drawn)
                    if live:
                        cv2.imshow("AffectLens", drawn)
                        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                            break
                if progress:
                    progress(len(frames), frame.timestamp_ms, total_ms)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if writer_video is not None:
            writer_video.release()
        if live:
            cv2.destroyAllWindows()
    seconds = time.perf_counter() - t0
    result = finish_outputs(out, frames, run, opts, src.report.to_dict(), seconds, interrupted,
                            len(frames) - len(done), va.labels)
    if run.annotate and (out / ann_name).exists():
        result.files["annotated"] = str(out / ann_name)
    return result


def finish_outputs(out: Path, frames: list[Faces], run: RunOptions, opts: VideoOptions, source_report: dict,
                   seconds: float, interrupted: bool, new_frames: int, labels: tuple[str, ...]) -> RunResult:
    """Write frames.csv, intervals.csv, episodes.csv, summary.json and report.html from the analysed frames."""
    intervals = aggregate_intervals(frames, run.interval_s)
    summary = summarize(frames, intervals)
    episodes = find_episodes(frames, run.episodes)
    problems = list(source_report.get("problems") or [])
    summary.update({
        "affectlens_version": __version__,
        "source": source_report,
        "options": {"smooth": opts.smooth,
                    **{k: v for k, v in opts.smoother_kwargs(labels).items() if k != "labels"}, "interval_s": run.interval_s,
                    "every": run.every,
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
    write_html_report(out / "report.html", frames, intervals, summary, title=title)
    files = {k: str(out / v) for k, v in (("frames_jsonl", "frames.jsonl"), ("frames_csv", "frames.csv"),
                                          ("intervals_csv", "intervals.csv"),
                                          ("episodes_csv", "episodes.csv"), ("summary", "summary.json"),
                                          ("report", "report.html"))}
    n_tracks = int(summary.get("track_count", len(summary.get("tracks", []))))
    return RunResult(out, len(frames), n_tracks, interrupted, problems, files, summary)


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
