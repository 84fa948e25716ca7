"""The ``affectlens`` command: a thin layer over the library.

Exit codes: 0 all inputs processed, 1 some inputs failed (the others were still processed),
2 bad usage or a model that cannot be loaded, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from affectlens import __version__
from affectlens.errors import AffectLensError, DatasetError, InvalidImageError, ModelLoadError

RESPONSIBLE_USE = ("AffectLens reads facial appearance, not inner state; analyse people only with their "
                   "informed consent.")


def _die(msg: str, code: int = 2) -> int:
    print(f"affectlens: error: {msg}", file=sys.stderr)
    return code


def _write_json(obj, dest: str) -> None:
    text = json.dumps(obj, indent=2) + "\n"
    if dest == "-":
        sys.stdout.write(text)
        return
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _annotated_name(src: Path, used: set[str]) -> str:
    name = f"{src.stem}.jpg"
    k = 1
    while name in used:
        k += 1
        name = f"{src.stem}-{k}.jpg"
    used.add(name)
    return name


# ----------------------------------------------------------------------------- image
def cmd_image(args) -> int:
    import cv2
    from tqdm import tqdm

    from affectlens.annotate import AnnotatorOptions, annotate
    from affectlens.imageio import find_images, load_image
    from affectlens.recognizer import EmotionRecognizer

    files, problems = find_images(args.paths)
    try:
        rec = EmotionRecognizer(model=args.model, min_score=args.det_threshold, min_face_px=args.min_face,
                                max_faces=args.max_faces, threads=args.threads)
    except (ModelLoadError, ValueError) as exc:
        return _die(str(exc))
    records = [{"path": p, "error": msg} for p, msg in problems]
    for _, msg in problems:
        print(f"affectlens: {msg}", file=sys.stderr)
    ann_dir = Path(args.annotate) if args.annotate else None
    if ann_dir:
        ann_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    t0 = time.perf_counter()
    bar = tqdm(files, unit="img", disable=args.quiet or len(files) < 2, file=sys.stderr, dynamic_ncols=True)
    for path in bar:
        try:
            bgr = load_image(path)
            faces = rec.predict(bgr, source=str(path))
        except InvalidImageError as exc:
            records.append({"path": str(path), "error": str(exc)})
            tqdm.write(f"affectlens: {exc}", file=sys.stderr)
            continue
        rec_json = {"path": str(path), "width": int(bgr.shape[1]), "height": int(bgr.shape[0]),
                    "faces": faces.to_dict()["faces"]}
        if ann_dir:
            out = ann_dir / _annotated_name(path, used)
            drawn = annotate(bgr, faces, AnnotatorOptions(blur_faces=args.blur_faces))
            cv2.imwrite(str(out), drawn, [cv2.IMWRITE_JPEG_QUALITY, 92])
            rec_json["annotated"] = str(out)
        records.append(rec_json)
        if not args.quiet and args.json != "-":
            summary = ", ".join(f"{f.emotion} {f.confidence:.0%}" for f in faces) or "no face"
            tqdm.write(f"{path}: {len(faces)} face(s): {summary}")
    failed = [r for r in records if "error" in r]
    if args.json:
        _write_json({"affectlens_version": __version__, "model": rec.classifier.spec.name,
                     "detector": rec.detector.name, "labels": list(rec.labels), "notice": RESPONSIBLE_USE,
                     "images": records, "summary": {"images": len(records), "failed": len(failed),
                                                    "faces": sum(len(r.get("faces", [])) for r in records),
                                                    "seconds": round(time.perf_counter() - t0, 3)}},
                    args.json)
    if not files and not problems:
        return _die("no input images")
    if failed:
        print(f"affectlens: {len(failed)} of {len(records)} input(s) failed", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from affectlens.evaluate import evaluate_fer2013, evaluate_folder, evaluate_ferplus, format_report, public, write_plots

    try:
        if args.folder:
            report = evaluate_folder(args.model, args.folder, args.split, threads=args.threads)
        elif args.split == "all":
            return _die("--split all is for --folder; FER-2013 is scored per split")
        elif args.ferplus:
            report = evaluate_ferplus(args.model, args.data, args.split, threads=args.threads)
        else:
            report = evaluate_fer2013(args.model, args.data, args.split, threads=args.threads)
    except (ModelLoadError, DatasetError) as exc:
        return _die(str(exc))
    if args.plots:
        report["plots"] = write_plots(report, args.plots)
    report = public(report)
    if args.json:
        _write_json(report, args.json)
    if args.json != "-":
        print(format_report(report))
    return 0


# ----------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        return _die("training needs PyTorch: pip install 'affectlens[train]' -c constraints.txt")
    from affectlens.training.config import load_config
    from affectlens.training.train import resolve_device, train

    try:
        cfg = load_config(args.config, args.set)
        resolve_device(cfg.device)
    except (OSError, ValueError) as exc:
        return _die(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        metrics = train(cfg, resume=args.resume)
    except DatasetError as exc:
        return _die(str(exc))
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_train_temporal(args) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        return _die("training needs PyTorch: pip install 'affectlens[train]' -c constraints.txt")
    from affectlens.training.temporal import load_temporal_config, train_temporal

    try:
        cfg = load_temporal_config(args.config, args.set)
    except (OSError, ValueError) as exc:
        return _die(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        metrics = train_temporal(cfg, resume=args.resume)
    except (DatasetError, ModelLoadError) as exc:
        return _die(str(exc))
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))
    return 0


# ----------------------------------------------------------------------------- video
def cmd_video(args) -> int:
    from tqdm import tqdm

    from affectlens.detection import DetectorOptions
    from affectlens.errors import InvalidVideoError
    from affectlens.recognizer import RecognizerOptions
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
    from affectlens.video.session import RunOptions, run_video

    logging.basicConfig(level=logging.WARNING, format="affectlens: %(message)s")
    try:
        det = DetectorOptions(min_score=args.det_threshold, min_face_px=args.min_face, max_faces=args.max_faces)
        opts = VideoOptions(recognizer=RecognizerOptions(model=args.model, detector=det, threads=args.threads),
                            smooth=args.smooth, window_s=args.window_s, window=args.window,
                            ema_tau_s=args.ema_tau, hmm_hold_s=args.hmm_hold, temporal_model=args.temporal_model,
                            detect_every=args.detect_every)
        run = RunOptions(every=args.every, fps=args.fps, start_s=args.start, end_s=args.end,
                         interval_s=args.interval, annotate=args.annotate, blur_faces=args.blur_faces,
                         live=args.live, resume=args.resume)
        analyzer = VideoAnalyzer(opts)
    except (ValueError, ModelLoadError) as exc:
        return _die(str(exc))
    bar = tqdm(total=None, unit="s", disable=args.quiet, file=sys.stderr, dynamic_ncols=True,
               bar_format="{desc} {n:.1f}/{total_fmt} s video [{elapsed}<{remaining}, {rate_fmt}]")
    state = {"last": 0.0}

    def progress(n, ts, total_ms):
        if total_ms and bar.total is None:
            bar.total = round(total_ms / 1000, 1)
        bar.desc = f"{n} frames"
        bar.update(max(0.0, ts / 1000 - state["last"]))
        state["last"] = ts / 1000

    try:
        result = run_video(args.source, args.out, analyzer=analyzer, run=run, progress=progress)
    except InvalidVideoError as exc:
        bar.close()
        return _die(str(exc), 1)
    bar.close()
    for problem in result.problems:
        print(f"affectlens: {problem}", file=sys.stderr)
    if not args.quiet:
        print(f"{result.frames_analysed} frames, {result.tracks} track(s) -> {result.out_dir}/"
              f" ({', '.join(Path(p).name for p in result.files.values())})")
    if result.interrupted:
        print("affectlens: interrupted; outputs cover the frames processed so far (continue with --resume)",
              file=sys.stderr)
        return 130
    return 1 if result.problems else 0


# ----------------------------------------------------------------------------- models
def cmd_models(args) -> int:
    from affectlens.models import DEFAULT_MODEL, available_models, resolve_spec

    for name in available_models():
        spec = resolve_spec(name)
        mark = "*" if name == DEFAULT_MODEL else " "
        figures = [f"{title} {spec.metrics[key]['accuracy']:.2%}"
                   for key, title in (("fer2013_private_test", "FER-2013 PrivateTest"), ("ferplus_private_test", "FER+ test"))
                   if key in spec.metrics]
        acc_s = f"{len(spec.labels)} classes  " + ", ".join(figures)
        print(f"{mark} {name:<20} {spec.input.size_hw[0]}x{spec.input.size_hw[1]} {spec.input.color:<5} {acc_s}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="affectlens", description="Facial emotion recognition. " + RESPONSIBLE_USE)
    p.add_argument("--version", action="version", version=f"affectlens {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    im = sub.add_parser("image", help="analyse image files or folders (recursive)")
    im.add_argument("paths", nargs="+", help="image files or folders")
    im.add_argument("--json", metavar="OUT", help="write one record per image to OUT ('-' = stdout)")
    im.add_argument("--annotate", metavar="DIR", help="write annotated copies to DIR")
    im.add_argument("--blur-faces", action="store_true", help="blur the faces in the annotated copies (privacy)")
    im.add_argument("--min-face", type=float, default=0.0, metavar="PX", help="ignore faces smaller than PX pixels")
    im.add_argument("--det-threshold", type=float, default=0.6, metavar="P", help="face score threshold (0-1)")
    im.add_argument("--max-faces", type=int, default=0, metavar="N", help="keep the N best faces (0 = all)")
    im.add_argument("--model", default=None, metavar="NAME_OR_PATH", help="emotion model (see 'affectlens models')")
    im.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = default)")
    im.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-image lines")
    im.set_defaults(func=cmd_image)

    ev = sub.add_parser("evaluate", help="score an emotion model on FER-2013, FER+ or your own face folders")
    ev.add_argument("--data", default="../shared/data/fer2013", help="fer2013.csv[.gz] or its folder")
    ev.add_argument("--split", default="PrivateTest", choices=["Training", "PublicTest", "PrivateTest", "all"])
    ev.add_argument("--folder", metavar="DIR",
                    help="score on face crops in class folders (DIR/<label>/*.jpg or DIR/train|val|test/<label>/)")
    ev.add_argument("--model", default=None, metavar="NAME_OR_PATH")
    ev.add_argument("--ferplus", action="store_true",
                    help="score on FER+ majority labels (fer2013new.csv beside the CSV) with annotator agreement")
    ev.add_argument("--json", metavar="OUT", help="write the report as JSON ('-' = stdout)")
    ev.add_argument("--plots", metavar="DIR", help="write confusion-matrix and reliability-diagram PNGs to DIR")
    ev.add_argument("--threads", type=int, default=0)
    ev.set_defaults(func=cmd_evaluate)

    tr = sub.add_parser("train", help="train an emotion model (needs the 'train' extra)")
    tr.add_argument("--config", default=None,
                    help="TOML config (see configs/); without it the defaults, changed with --set")
    tr.add_argument("--resume", action="store_true", help="continue from last.pt in the run folder")
    tr.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")
    tr.set_defaults(func=cmd_train)

    tt = sub.add_parser("train-temporal", help="train the learned temporal smoother (needs the 'train' extra)")
    tt.add_argument("--config", default=None, metavar="TOML", help="e.g. configs/temporal-gru.toml")
    tt.add_argument("--resume", action="store_true", help="continue from last.pt in the run folder")
    tt.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")
    tt.set_defaults(func=cmd_train_temporal)

    vi = sub.add_parser("video", help="analyse a video file, folder of frames, webcam or stream")
    vi.add_argument("source", help="video file, folder of frames, webcam index (0) or rtsp/http URL")
    vi.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g = vi.add_mutually_exclusive_group()
    g.add_argument("--every", type=int, default=1, metavar="N", help="analyse every N-th frame")
    g.add_argument("--fps", type=float, default=None, metavar="F", help="analyse about F frames per second")
    vi.add_argument("--start", type=float, default=None, metavar="SECONDS")
    vi.add_argument("--end", type=float, default=None, metavar="SECONDS")
    vi.add_argument("--smooth", default="hmm", choices=["none", "moving-average", "ema", "hmm", "learned"],
                    help="temporal smoother (default hmm; see docs/temporal.md)")
    vi.add_argument("--window-s", type=float, default=0.5, metavar="SECONDS",
                    help="moving-average window in seconds of video time (default 0.5)")
    vi.add_argument("--window", type=int, default=None, metavar="FRAMES",
                    help="moving-average window in analysed frames instead (10-30)")
    vi.add_argument("--ema-tau", type=float, default=0.3, metavar="SECONDS", help="EMA time constant")
    vi.add_argument("--hmm-hold", type=float, default=0.8, metavar="SECONDS",
                    help="HMM: mean time an expression is expected to be held")
    vi.add_argument("--temporal-model", default=None, metavar="NAME_OR_PATH",
                    help="model of --smooth learned (default: the shipped one)")
    vi.add_argument("--detect-every", type=int, default=1, metavar="K",
                    help="run the face detector on every K-th analysed frame, track in between (faster)")
    vi.add_argument("--interval", type=float, default=5.0, metavar="SECONDS", help="aggregation interval")
    vi.add_argument("--annotate", action="store_true", help="write annotated.mp4")
    vi.add_argument("--blur-faces", action="store_true", help="blur the faces in annotated.mp4 / --live (privacy)")
    vi.add_argument("--live", action="store_true", help="show a window when a display exists")
    vi.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    vi.add_argument("--max-faces", type=int, default=0, metavar="N")
    vi.add_argument("--min-face", type=float, default=0.0, metavar="PX")
    vi.add_argument("--det-threshold", type=float, default=0.6, metavar="P")
    vi.add_argument("--model", default=None, metavar="NAME_OR_PATH")
    vi.add_argument("--threads", type=int, default=0)
    vi.add_argument("-q", "--quiet", action="store_true")
    vi.set_defaults(func=cmd_video)

    mo = sub.add_parser("models", help="list the shipped emotion models")
    mo.set_defaults(func=cmd_models)

    from affectlens.service.cli import add_serve_parser  # stdlib-only module; FastAPI is imported when run

    add_serve_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("affectlens: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
        return 0
    except AffectLensError as exc:
        return _die(str(exc))


if __name__ == "__main__":
    sys.exit(main())
