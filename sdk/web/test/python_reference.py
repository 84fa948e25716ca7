"""Reference results from the Python library, computed in the test run (never stored in git).

  python python_reference.py images OUT.json IMG...          Faces.to_dict() per image
  python python_reference.py video OUT_DIR VIDEO[+VIDEO] N [STEP]   N frames (every STEP-th; split
      evenly between videos joined by "+", a hard scene cut between them) through
      VideoAnalyzer.process: writes OUT_DIR/frames.json (per-frame Faces dicts with raw scores)
      and OUT_DIR/frame_XXXX.rgb (the decoded frames as RGB bytes, so JS sees the same pixels)

  python python_reference.py frames DIR                     DIR/frames.json + RGB files recorded by
      the browser through VideoAnalyzer.process -> DIR/python.json
  python python_reference.py turned OUT_DIR IMG DEG         IMG turned by DEG degrees about its first
      face -> OUT_DIR/turned.png and OUT_DIR/turned.json: per face the landmarks, the fitted roll,
      the classifier's crop (the spec's roll dead band) and the fully aligned crop, Faces.to_dict()
  python python_reference.py y4m OUT.y4m VIDEO N             N frames as Y4M for Chromium's fake camera
  python python_reference.py resize OUT.json                 random images through cv2.resize INTER_LINEAR
  python python_reference.py learned OUT.json VIDEO N [STEP] N frames through VideoAnalyzer with
      smooth="learned": per frame and face the inputs of the learned smoother (raw probabilities,
      box, landmarks, detection score, track id, time) and its output, at full precision

Options (environment): AFFECTLENS_MODEL (model name). Video runs use VideoAnalyzer's defaults
(smoother, scene cuts, the detector schedule ``detect_every`` auto, the reading budget
``classify_per_s``: the SDK's defaults too; each face says whether it was ``read``) unless
frames.json names a frame-count ``window``.
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
    va = VideoAnalyzer(VideoOptions(recognizer=RecognizerOptions(model=os.environ.get("AFFECTLENS_MODEL") or None,
                                                                 threads=1)))
    frames, t0 = [], 0.0
    for one in path.split("+"):  # several videos joined: a hard cut between them
        cap = cv2.VideoCapture(one)
        fps, index, ts = cap.get(cv2.CAP_PROP_FPS) or 25.0, 0, t0
        while len(frames) < n:
            ok, bgr = cap.read()
            if not ok:
                break
            if index % step == 0:
                ts = round(t0 + index * 1000.0 / fps, 3)
                faces = va.process(bgr, ts, frame_index=len(frames))
                d = faces.to_dict()
                raw = faces.data.get("probs_raw")
                for k, rec in enumerate(d["faces"]):
                    rec["scores_raw"] = {lab: round(float(v), 6) for lab, v in zip(faces.labels, raw[k])}
                    rec["read"] = bool(faces.data["read"][k])
                name = f"frame_{len(frames):04d}.rgb"
                cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).tofile(out / name)
                frames.append({"file": name, "width": bgr.shape[1], "height": bgr.shape[0], "timestamp_ms": ts,
                               "faces": d})
            index += 1
            if len(frames) >= n * (path.split("+").index(one) + 1) / len(path.split("+")):
                break
        t0 = ts + 1000.0 / fps
    (out / "frames.json").write_text(json.dumps({"labels": list(va.labels), "model": va.recognizer.classifier.spec.name,
                                                 "smooth": va.options.smooth, "frames": frames}))




def learned(out: str, path: str, n: int, step: int = 1) -> None:
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions

    va = VideoAnalyzer(VideoOptions(recognizer=RecognizerOptions(model=os.environ.get("AFFECTLENS_MODEL") or None,
                                                                 threads=1), detect_every=1, classify_per_s=0,
                                    smooth="learned"))
    cap = cv2.VideoCapture(path)
    fps, index, frames = cap.get(cv2.CAP_PROP_FPS) or 25.0, 0, []
    while len(frames) < n:
        ok, bgr = cap.read()
        if not ok:
            break
        if index % step == 0:
            ts = round(index * 1000.0 / fps, 3)
            f = va.process(bgr, ts, frame_index=len(frames))
            frames.append({"timestamp_ms": ts, "track_id": f.track_id.tolist(), "probs_raw": f.data["probs_raw"].tolist(),
                           "xyxy": f.xyxy.tolist(), "landmarks": f.landmarks.tolist(),
                           "det_score": f.det_score.tolist(), "probs": f.probs.tolist()})
        index += 1
    Path(out).write_text(json.dumps({"labels": list(va.labels), "model": va.recognizer.classifier.spec.name,
                                     "temporal_model": va.smoother.spec["name"], "frames": frames}))


def frames(folder: str) -> None:
    """Frames recorded by the browser (``frames.json`` + RGB files) through VideoAnalyzer.process."""
    import numpy as np
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions

    d = Path(folder)
    meta = json.loads((d / "frames.json").read_text())
    model = os.environ.get("AFFECTLENS_MODEL") or None
    from affectlens.tracking import TrackerOptions

    smooth = {"smooth": "moving-average", "window": int(meta["window"])} if meta.get("window") else {}
    va = VideoAnalyzer(VideoOptions(recognizer=RecognizerOptions(model=model, threads=1),
                                    tracker=TrackerOptions(max_lost_ms=float(meta.get("max_lost_ms", 1000.0))),
                                    **smooth))
    out = []
    for i, fr in enumerate(meta["frames"]):
        rgb = np.fromfile(d / fr["file"], np.uint8).reshape(fr["height"], fr["width"], 3)
        faces = va.process(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), fr["timestamp_ms"], frame_index=i)
        rec = faces.to_dict()
        for k, f in enumerate(rec["faces"]):
            f["scores_raw"] = {lab: round(float(v), 6) for lab, v in zip(faces.labels, faces.data["probs_raw"][k])}
            f["read"] = bool(faces.data["read"][k])
        out.append(rec)
    (d / "python.json").write_text(json.dumps({"labels": list(va.labels), "frames": out}))


def turned(out_dir: str, path: str, deg: float) -> None:
    import numpy as np
    from affectlens.alignment import align_faces, similarity_transform

    rec = EmotionRecognizer(model=os.environ.get("AFFECTLENS_MODEL") or None, threads=1)
    img = cv2.imread(path)
    centre = tuple(float(v) for v in rec.detector.detect(img).landmarks[0].mean(0))
    photo = cv2.warpAffine(img, cv2.getRotationMatrix2D(centre, deg, 1.0), img.shape[1::-1],
                           borderMode=cv2.BORDER_REPLICATE)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "turned.png"), photo)
    faces = rec.predict(str(out / "turned.png"))
    ali, size = rec.classifier.spec.alignment, rec.classifier.crop_size_hw
    dst = np.asarray(ali.points_norm) * np.array(size[::-1])
    per_face = [{"landmarks": lm.tolist(),
                 "roll_deg": float(np.degrees(np.arctan2(*similarity_transform(lm, dst)[[1, 0], 0]))),
                 "crop": rec.classifier.align(photo, lm[None])[0].ravel().tolist(),
                 "crop_full": align_faces(photo, lm[None], ali.points_norm, size)[0].ravel().tolist()}
                for lm in faces.landmarks]
    (out / "turned.json").write_text(json.dumps({"model": rec.classifier.spec.name,
                                                "roll_dead_band_deg": ali.roll_dead_band_deg,
                                                "faces": per_face, "result": faces.to_dict()}))


def y4m(out: str, path: str, n: int) -> None:
    """The first ``n`` frames of a video as a Y4M file (I420), for Chromium's fake camera."""
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    with open(out, "wb") as fh:
        for i in range(n):
            ok, bgr = cap.read()
            if not ok:
                break
            h, w = bgr.shape[:2]
            if i == 0:
                fh.write(f"YUV4MPEG2 W{w} H{h} F{round(fps * 1000)}:1000 Ip A1:1 C420jpeg\n".encode())
            fh.write(b"FRAME\n" + cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())


def resize(out: str) -> None:
    """Seeded random uint8 images enlarged (and one axis shrunk) by cv2.resize INTER_LINEAR, as the
    detector's windows are: ``[{src: [h, w, bytes], dst_wh, out: bytes}]`` (bytes as lists)."""
    import numpy as np

    rng = np.random.default_rng(7)
    cases = []
    for sw, sh, dw, dh in [(37, 29, 64, 64), (90, 90, 128, 128), (100, 120, 128, 128), (5, 3, 17, 11),
                           (128, 97, 128, 128), (61, 200, 128, 128), (150, 80, 192, 192)]:
        img = rng.integers(0, 256, (sh, sw, 3), np.uint8)
        cases.append({"src": [sh, sw, img.reshape(-1).tolist()], "dst_wh": [dw, dh],
                      "out": cv2.resize(img, (dw, dh), interpolation=cv2.INTER_LINEAR).reshape(-1).tolist()})
    Path(out).write_text(json.dumps(cases))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "images":
        images(args[0], args[1:])
    elif mode == "video":
        video(args[0], args[1], int(args[2]), int(args[3]) if len(args) > 3 else 1)
    elif mode == "frames":
        frames(args[0])
    elif mode == "turned":
        turned(args[0], args[1], float(args[2]))
    elif mode == "y4m":
        y4m(args[0], args[1], int(args[2]))
    elif mode == "learned":
        learned(args[0], args[1], int(args[2]), int(args[3]) if len(args) > 3 else 1)
    elif mode == "resize":
        resize(args[0])
    else:
        sys.exit(f"unknown mode {mode!r}; expected images, video, frames, turned, y4m, learned or resize")
