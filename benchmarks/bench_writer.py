"""Encoding cost of annotated videos per codec: ms per 640x360 frame of the talking-head clip.

    python benchmarks/bench_writer.py [--frames 48]

Prints and saves ``benchmarks/results/writer.json``. Frames are decoded first, so only encoding is timed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2

from affectlens.video.writer import VideoWriter, have_pyav

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "media" / "videos" / "WolfgangLanger_Pexels.mp4"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=48)
    args = ap.parse_args(argv)
    cap = cv2.VideoCapture(str(CLIP))
    frames = [img for ok, img in (cap.read() for _ in range(args.frames)) if ok]
    h, w = frames[0].shape[:2]
    out = {"clip": CLIP.name, "frames": len(frames), "size_wh": [w, h]}
    for codec in (["h264"] if have_pyav() else []) + ["vp9", "mp4v"]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"x-{codec}.mp4"
            t0 = time.perf_counter()
            with VideoWriter(path, 24.0, (w, h), codec) as wr:
                for f in frames:
                    wr.write(f)
            secs = time.perf_counter() - t0
            out[codec] = {"ms_per_frame": round(1000 * secs / len(frames), 1), "kbytes": path.stat().st_size // 1000}
    print(json.dumps(out, indent=2))
    dest = ROOT / "benchmarks" / "results" / "writer.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
