"""Batch throughput, local vs Ray in one run, and the per-item costs behind docs/batch.md's scaling estimate.

Usage:
    python benchmarks/bench_batch.py [--fps 5] [--workers 2] [--out benchmarks/results/batch.json]

Figures:
- items/s, frames/s and faces/s of ``affectlens batch`` on the shared media (all photos and
  clips, videos analysed at ``--fps``): local engine with 1 worker, local with ``--workers``,
  and Ray with ``--workers``, each into a fresh output folder (wall time includes starting
  the workers and loading the models);
- per-video stage costs in CPU seconds (``time.process_time``, robust to a loaded machine) in
  one process, one ONNX Runtime thread: decoding (every frame is
  decoded, only the sampled ones are converted), detection per analysed frame, classification
  per face, and the rest of the item (tracking, smoothing, CSV/HTML/Parquet outputs) from the
  1-worker batch run's CPU seconds for the item; expressed per second of video.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "data" / "media"
sys.path.insert(0, str(ROOT / "src"))


def inputs() -> list[Path]:
    files = sorted((MEDIA / "images").glob("*")) + sorted((MEDIA / "detection").glob("*.jpg"))
    return files + sorted((MEDIA / "videos").glob("*"))


def batch_run(engine: str, workers: int, fps: float) -> dict:
    from affectlens.batch import BatchOptions, run_batch

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = run_batch(inputs(), Path(tmp) / "out", BatchOptions(engine=engine, workers=workers, threads=1, fps=fps))
        wall = time.perf_counter() - t0
        entries = [json.loads(line) for line in (Path(tmp) / "out" / "manifest.jsonl").read_text().splitlines()]
    frames, faces = res.summary["frames"], res.summary["faces"]
    return {"engine": engine, "workers": workers, "items": len(res.items), "frames": frames, "faces": faces,
            "wall_s": round(wall, 2), "items_per_s": round(len(res.items) / wall, 3),
            "frames_per_s": round(frames / wall, 2), "faces_per_s": round(faces / wall, 2),
            "statuses": sorted(set(res.status.values())),
            "worker_cpu_s": round(sum(e.get("cpu_seconds") or 0.0 for e in entries), 2),
            "item_seconds": {Path(e["path"]).name: e.get("seconds") for e in entries},
            "item_cpu_seconds": {Path(e["path"]).name: e.get("cpu_seconds") for e in entries}}


def stage_costs(fps: float, item_seconds: dict) -> list[dict]:
    """Decode / detect / classify CPU seconds per video, one thread, and the rest from the batch run."""
    from affectlens.recognizer import EmotionRecognizer
    from affectlens.video.source import VideoSource

    import cv2

    cv2.setNumThreads(1)  # as in a batch worker
    rec = EmotionRecognizer(threads=1)
    rows = []
    for path in sorted((MEDIA / "videos").glob("*")):
        t0 = time.process_time()
        with VideoSource(path, fps=fps) as src:
            frames = [f.image for f in src]
            rep = src.report
        decode = time.process_time() - t0
        t0 = time.process_time()
        found = [rec.detector.detect(f) for f in frames]
        detect = time.process_time() - t0
        n_faces = sum(len(d) for d in found)
        t0 = time.process_time()
        for img, d in zip(frames, found):
            if len(d):
                rec.classifier.classify(img, d.landmarks)
        classify = time.process_time() - t0
        video_s = rep.frames_decoded / rep.fps_nominal if rep.fps_nominal else None
        total = item_seconds.get(path.name)
        rest = None if total is None else max(0.0, total - decode - detect - classify)
        row = {"video": path.name, "size_wh": [rep.width, rep.height], "video_s": round(video_s, 2),
               "frames_decoded": rep.frames_decoded, "frames_analysed": len(frames), "faces": n_faces,
               "decode_s": round(decode, 3), "detect_s": round(detect, 3), "classify_s": round(classify, 3),
               "batch_item_cpu_s": total, "rest_s": None if rest is None else round(rest, 3)}
        if video_s:
            row["cpu_s_per_video_s"] = {k: round(v / video_s, 4) for k, v in
                                        (("decode", decode), ("detect", detect), ("classify", classify),
                                         ("rest", rest or 0.0), ("total", total or 0.0))}
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "batch.json"))
    args = ap.parse_args()
    if not MEDIA.exists():
        sys.exit(f"shared media not found at {MEDIA}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    runs = [batch_run("local", 1, args.fps), batch_run("local", args.workers, args.fps),
            batch_run("ray", args.workers, args.fps)]
    stages = stage_costs(args.fps, runs[0]["item_cpu_seconds"])
    result = {"date": time.strftime("%Y-%m-%d"), "cpu": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "fps": args.fps, "runs": runs, "stages": stages,
              "note": "machine shared with other jobs while measured; compare ratios"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'engine':<8}{'workers':>8}{'items':>7}{'frames':>8}{'wall s':>9}{'items/s':>9}{'frames/s':>10}"
          f"{'worker CPU s':>14}")
    for r in runs:
        print(f"{r['engine']:<8}{r['workers']:>8}{r['items']:>7}{r['frames']:>8}{r['wall_s']:>9}"
              f"{r['items_per_s']:>9}{r['frames_per_s']:>10}{r['worker_cpu_s']:>14}")
    print(f"\nper video, 1 thread, analysed at {args.fps} fps (CPU s per second of video):")
    for s in stages:
        print(f"  {s['video']:<28}{s['size_wh'][0]}x{s['size_wh'][1]}  {s.get('cpu_s_per_video_s')}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
