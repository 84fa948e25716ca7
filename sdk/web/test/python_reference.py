"""Reference results from the Python library, computed in the test run (never stored in git).

  python python_reference.py images OUT.json IMG...          Faces.to_dict() per image
  python python_reference.py video OUT_DIR VIDEO N [STEP]    N frames (every STEP-th) through
      VideoAnalyzer.process: writes OUT_DIR/frames.json (per-frame Faces dicts with raw scores)
      and OUT_DIR/frame_XXXX.rgb (the decoded frames as RGB bytes, so JS sees the same pixels)

Options (environment): AFFECTLENS_MODEL (model name), AFFECTLENS_SMOOTH (video smoother).
"""

import json
import os
import sys
from pathlib import Path

import cv2

from affectlens import EmotionRecognizer
from affectlens.recognizer import RecognizerOptions


def images(out: str, paths: list[str]) -> None:
    rec = EmotionRecognizer(model=os.environ.get("AFFECTLENS_MODEL") or None, threads=1)
    result = {"labels": list(rec.labels), "model": rec.classifier.spec.name,
              "images": {Path(p).name: rec.predict(p).to_dict() for p in paths}}
    Path(out).write_text(json.dumps(result))


def video(out_dir: str, path: str, n: int, step: int = 1) -> None:
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    smooth = os.environ.get("AFFECTLENS_SMOOTH", "moving-average")
    va = VideoAnalyzer(VideoOptions(recognizer=RecognizerOptions(model=os.environ.get("AFFECTLENS_MODEL") or None,
                                                                 threads=1), smooth=smooth))
    cap = cv2.VideoCapture(path)
    frames, index = [], 0
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        if index % step == 0:
            ts = round(index * 1000.0 / (cap.get(cv2.CAP_PROP_FPS) or 25.0), 3)
            faces = va.process(bgr, ts, frame_index=len(frames))
            d = faces.to_dict()
            raw = faces.data.get("probs_raw")
            for k, rec in enumerate(d["faces"]):
                rec["scores_raw"] = {lab: round(float(v), 6) for lab, v in zip(faces.labels, raw[k])}
            name = f"frame_{len(frames):04d}.rgb"
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tofile(out / name)
            frames.append({"file": name, "width": bgr.shape[1], "height": bgr.shape[0], "timestamp_ms": ts, "faces": d})
        index += 1
    (out / "frames.json").write_text(json.dumps({"labels": list(va.labels), "smooth": smooth, "frames": frames}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "images":
        images(args[0], args[1:])
    else:
        video(args[0], args[1], int(args[2]), int(args[3]) if len(args) > 3 else 1)
