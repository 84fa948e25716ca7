"""Find candidate faces for the in-the-wild evaluation set and save crops to label by eye.

Runs the project's face detector over frames sampled from every shared media video, over every
shared photo and over face photos shipped inside registry packages, and writes, OUTSIDE the
repository (the crops hold pixels of the shared media and must not be committed):

- ``OUT/<id>.png``: a padded square crop around each face (the face box drawn thin),
  upscaled to at least 192 px so a person can judge the expression;
- ``OUT/candidates.csv``: id, source, frame_index, timestamp_ms, x1, y1, x2, y2 (original
  pixels), det_score, face_px (shorter box side), track (same-box-moving key within a video;
  no identity).

No emotion model runs here, so labelling stays blind to model outputs.

Usage: python tools/wild_candidates.py --out /work/wild-crops [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from affectlens.detection import DetectorOptions, RetinaFaceDetector
from affectlens.faces import Faces, FrameInfo
from affectlens.tracking import FaceTracker, TrackerOptions
from affectlens.wild import is_video, read_frames, resolve_source

#: Sampling period per video (ms); the talking head changes expression often.
PERIOD_MS = {"WolfgangLanger_Pexels.mp4": 200, "crowd_walking.mp4": 200}
DEFAULT_PERIOD_MS = 250
PACKAGE_SOURCES = (
    "pkg:insightface/data/images/t1.jpg",
    "pkg:insightface/data/images/Tom_Hanks_54745.png",
    "pkg:insightface/data/images/mask_black.jpg",
    "pkg:insightface/data/images/mask_blue.jpg",
    "pkg:insightface/data/images/mask_green.jpg",
    "pkg:insightface/data/images/mask_white.jpg",
    "pkg:skimage/data/astronaut.png",
)


def shared_sources(data: Path) -> list[str]:
    media = data / "media"
    files = sorted((media / "videos").glob("*")) + sorted((media / "images").glob("*")) + \
        sorted((media / "detection").glob("*.jpg"))
    return [str(f.relative_to(data)) for f in files if f.is_file()]


def video_frame_indices(path: Path, period_ms: float) -> list[int]:
    """Indices of the frames at about one per ``period_ms`` (by container time)."""
    cap = cv2.VideoCapture(str(path))
    keep, next_due, i = [], 0.0, 0
    while cap.grab():
        ts = float(cap.get(cv2.CAP_PROP_POS_MSEC))
        if ts + 1e-6 >= next_due:
            keep.append(i)
            next_due += period_ms
        i += 1
    cap.release()
    return keep


def crop(img: np.ndarray, box: np.ndarray, min_side: int = 192, max_side: int = 320) -> np.ndarray:
    """A square crop of twice the box's longer side, centred on it, box drawn, resized."""
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)
    sx, sy = int(round(cx - half)), int(round(cy - half))
    side = int(round(2 * half))
    pad = side
    big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(40, 40, 40))
    c = big[sy + pad:sy + pad + side, sx + pad:sx + pad + side].copy()
    scale = min_side / side if side < min_side else (max_side / side if side > max_side else 1.0)
    c = cv2.resize(c, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    b = ((np.array([x1 - sx, y1 - sy, x2 - sx, y2 - sy])) * scale).round().astype(int)
    cv2.rectangle(c, (b[0] - 2, b[1] - 2), (b[2] + 2, b[3] + 2), (0, 255, 0), 1)
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    detector = RetinaFaceDetector(DetectorOptions(threads=1))
    rows, n = [], 0
    for source in shared_sources(args.data) + list(PACKAGE_SOURCES):
        path = resolve_source(source, args.data)
        if path is None:
            print(f"skip (absent): {source}")
            continue
        video = is_video(path)
        idx = video_frame_indices(path, PERIOD_MS.get(path.name, DEFAULT_PERIOD_MS)) if video else [0]
        frames = read_frames(path, idx)
        tracker = FaceTracker(TrackerOptions(min_hits=1, max_lost_ms=800))
        found = 0
        for fi in sorted(frames):
            ts, img = frames[fi]
            det = detector.detect(img)
            faces = Faces(det.xyxy, det.scores, det.landmarks, info=FrameInfo(source, fi, ts, img.shape[:2]))
            tids = tracker.update(faces, ts).track_id if video else np.full(len(faces), -1)
            for k in range(len(faces)):
                n += 1
                found += 1
                fid = f"f{n:04d}"
                box = faces.xyxy[k]
                cv2.imwrite(str(args.out / f"{fid}.png"), crop(img, box))
                track = f"{Path(source).stem}:t{tids[k]}" if video and tids[k] >= 0 else f"{Path(source).stem}:{fid}"
                rows.append({"id": fid, "source": source, "frame_index": fi,
                             "timestamp_ms": "" if ts is None else round(ts, 1),
                             "x1": round(float(box[0]), 1), "y1": round(float(box[1]), 1),
                             "x2": round(float(box[2]), 1), "y2": round(float(box[3]), 1),
                             "det_score": round(float(faces.det_score[k]), 3),
                             "face_px": round(float(min(box[2] - box[0], box[3] - box[1])), 1), "track": track})
        print(f"{source}: {len(frames)} frames, {found} faces")
    with open(args.out / "candidates.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} candidates -> {args.out}")


if __name__ == "__main__":
    main()
