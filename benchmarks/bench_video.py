"""Video speed and smoothing stability on the shared clips; prints a table and writes JSON.

Usage:
    python benchmarks/bench_video.py [--threads 2] [--out benchmarks/results/video.json]

Figures:
- decode-only fps of the talking-head clip (the physical limit for that file) and the full
  ``affectlens video`` run (detect + track + classify + smooth + CSV/HTML outputs) on it, as
  ratios to decode-only and to real time;
- whole runs with the default settings on the talking head and the 1080p crowd, three each
  (median, slowest and every run's seconds);
- each detection schedule's speed and agreement with every-frame detection and reading;
- flicker (top-label switches per minute) raw vs each smoother, per clip;
- step latency of each smoother: frames until the smoothed top label follows a sustained change.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from affectlens.cpu import cpu_info

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "media" / "videos"
SMOOTHERS = {"none": {}, "moving-average": {"window": 15}, "ema": {"alpha": 0.2}, "hmm": {"stay_prob": 0.95}}


def decode_fps(path: Path) -> tuple[float, int, float]:
    cap = cv2.VideoCapture(str(path))
    n, t0 = 0, time.perf_counter()
    while cap.read()[0]:
        n += 1
    secs = time.perf_counter() - t0
    return n / secs, n, secs


def step_latency(smoother_name: str, kwargs: dict, frames_before: int = 40) -> int:
    """Frames after a clean step from 'happy' to 'neutral' until the smoothed top label is 'neutral'."""
    from affectlens.faces import Faces
    from affectlens.smoothing import create_smoother

    sm = create_smoother(smoother_name, **kwargs)
    a, b = np.full(7, 0.05), np.full(7, 0.05)
    a[3], b[4] = 0.7, 0.7
    for t in range(frames_before + 100):
        p = a if t < frames_before else b
        out = sm.update(Faces(np.zeros((1, 4)), np.ones(1), np.zeros((1, 5, 2)), p[None], track_id=np.array([1])))
        if t >= frames_before and out.probs[0].argmax() == 4:
            return t - frames_before
    return -1


def flicker_by_smoother(frames) -> dict:
    """Re-smooth the stored raw probabilities of every track with each smoother."""
    from affectlens.smoothing import create_smoother, flicker_rate

    out = {}
    for name, kw in SMOOTHERS.items():
        sm = create_smoother(name, **kw)
        per_track: dict[int, tuple[list, list]] = {}
        for f in frames:
            g = f.replace(probs=f.data["probs_raw"])
            g = sm.update(g)
            for tid, p in zip(g.track_id, g.probs):
                if tid > 0:
                    labels, ts = per_track.setdefault(int(tid), ([], []))
                    labels.append(int(p.argmax()))
                    ts.append(f.info.timestamp_ms)
        rates = [flicker_rate(lab, ts) for lab, ts in per_track.values() if len(lab) > 10]
        out[name] = round(float(np.mean(rates)), 1) if rates else None
    return out


#: Settings compared with the reference (a full detection and a classification of every face on
#: every frame): fixed detector periods, and the default auto mode with and without the
#: classification budget.
SCHEDULES = {"every frame (k=1, every face read)": {"detect_every": 1, "classify_per_s": 0},
             "k=3, every face read": {"detect_every": 3, "classify_per_s": 0},
             "auto, every face read": {"detect_every": 0, "classify_per_s": 0},
             "auto, 40 readings/s": {"classify_per_s": 40},
             "auto, windows every 2nd frame, 30 readings/s": {"regions_every": 2},
             "auto, 30 readings/s (default)": {}}


def detect_every_cost(recognizer, clip: Path) -> dict:
    """Speed of each :data:`SCHEDULES` entry and its agreement with the first (every frame):
    faces found, smoothed and raw top-label agreement and box IoU on the faces both runs found
    (IoU >= 0.5)."""
    from affectlens.metrics import box_iou
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions

    runs = {}
    for name, kw in SCHEDULES.items():
        va = VideoAnalyzer(VideoOptions(**kw), recognizer=recognizer)
        t0 = time.perf_counter()
        frames = list(va.analyze(clip))
        runs[name] = (frames, time.perf_counter() - t0)
    base = next(iter(runs.values()))[0]
    out = {}
    for name, (frames, secs) in runs.items():
        agree, raw, ious = [], [], []
        for a, b in zip(base, frames):
            if len(a) and len(b):
                iou = box_iou(a.xyxy, b.xyxy)
                for i, j in enumerate(iou.argmax(1)):
                    if iou[i, j] >= 0.5:
                        ious.append(float(iou[i, j]))
                        agree.append(a.emotion_index[i] == b.emotion_index[j])
                        raw.append(a.data["probs_raw"][i].argmax() == b.data["probs_raw"][j].argmax())
        out[name] = {"fps": round(len(frames) / secs, 1), "faces": int(sum(len(f) for f in frames)),
                     "matched_faces": len(ious),
                     "label_agreement": round(float(np.mean(agree)), 4) if agree else None,
                     "raw_label_agreement": round(float(np.mean(raw)), 4) if raw else None,
                     "box_iou": round(float(np.mean(ious)), 4) if ious else None}
    return out


def real_time_ratio(clip: Path, threads: int, repeats: int = 3) -> dict:
    """Whole ``affectlens video`` runs (outputs included) with the default settings, ``repeats``
    times with a fresh analyzer each: the median run's frames per second and ratio to the clip's
    real time, and every run's seconds (a shared VM's speed varies from run to run)."""
    from affectlens.recognizer import RecognizerOptions
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
    from affectlens.video.session import RunOptions, run_video

    cap = cv2.VideoCapture(str(clip))
    nominal, n = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    runs = []
    for _ in range(repeats):
        analyzer = VideoAnalyzer(VideoOptions(recognizer=RecognizerOptions(threads=threads)))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_video(clip, tmp, analyzer=analyzer, run=RunOptions(interval_s=5))
            runs.append(time.perf_counter() - t0)
    secs = float(np.median(runs))
    return {"frames": n, "seconds": round(secs, 2), "fps": round(n / secs, 1),
            "x_real_time": round(n / secs / nominal, 2), "runs_seconds": [round(r, 2) for r in runs],
            "slowest_x_real_time": round(n / max(runs) / nominal, 2)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/video.json")
    args = ap.parse_args(argv)

    from affectlens.recognizer import RecognizerOptions
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions

    talk = VIDEOS / "WolfgangLanger_Pexels.mp4"
    dec_fps, n_frames, _ = decode_fps(talk)
    cap = cv2.VideoCapture(str(talk))
    nominal = cap.get(cv2.CAP_PROP_FPS)
    analyzer = VideoAnalyzer(VideoOptions(recognizer=RecognizerOptions(threads=args.threads)))
    result = {"clip": talk.name, "frames": n_frames, "nominal_fps": round(nominal, 3),
              "decode_only_fps": round(dec_fps, 1)}
    whole = {clip: real_time_ratio(VIDEOS / clip, args.threads) for clip in (talk.name, "crowd_walking.mp4")}
    secs = whole[talk.name]["seconds"]  # the talking head's median whole run
    result.update({"full_run_seconds": secs, "full_run_fps": round(n_frames / secs, 1),
                   "ratio_to_real_time": round(n_frames / secs / nominal, 2),
                   "ratio_to_decode_only": round(n_frames / secs / dec_fps, 3)})
    result["default_settings_real_time"] = whole
    result["cpu"] = cpu_info().to_dict()
    result["model"] = analyzer.recognizer.classifier.spec.name

    flicker = {}
    for clip in ("WolfgangLanger_Pexels.mp4", "single_face.mp4", "face_noface.mov"):
        analyzer.reset()
        frames = list(analyzer.analyze(VIDEOS / clip))
        flicker[clip] = flicker_by_smoother(frames)
    result["flicker_switches_per_min"] = flicker
    result["schedules"] = {clip: detect_every_cost(analyzer.recognizer, VIDEOS / clip)
                              for clip in ("WolfgangLanger_Pexels.mp4", "crowd_walking.mp4")}
    result["step_latency_frames"] = {name: step_latency(name, kw) for name, kw in SMOOTHERS.items()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
