"""The ``affectlens`` command: a thin layer over the library.

Exit codes: 0 all inputs processed, 1 some inputs failed (the others were still processed),
2 bad usage or a model that cannot be loaded, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from affectlens import __version__
from affectlens.errors import AffectLensError, DatasetError, InvalidImageError, ModelLoadError, ResumeMismatchError

from affectlens.image_run import RESPONSIBLE_USE


class _CurrentStderr:
    """A stream that writes to whatever ``sys.stderr`` is now: log handlers set up with it keep
    reaching the terminal while :func:`quiet_native_logs` has swapped ``sys.stderr`` (a handler
    holding the old object would write to file descriptor 2, which then goes to the sink)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextlib.contextmanager
def quiet_native_logs():
    """Keep OpenCV's and FFmpeg's own messages (written by C code straight to file descriptor 2,
    e.g. "[mov,mp4,... @ 0x...] moov atom not found") out of the CLI's output.

    Python's ``sys.stderr`` (our messages, the progress bar) keeps writing to the real standard
    error; what the native libraries write meanwhile is collected and logged at DEBUG level
    (``affectlens.native``), so ``AFFECTLENS_NATIVE_LOGS=1`` or ``--verbose`` logging shows it.
    """
    if os.environ.get("AFFECTLENS_NATIVE_LOGS"):
        yield
        return
    try:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except Exception:  # an OpenCV build without the logging module
        pass
    sys.stderr.flush()
    saved_fd = os.dup(2)
    saved_stream = sys.stderr
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        sys.stderr = os.fdopen(os.dup(saved_fd), "w", buffering=1, encoding=saved_stream.encoding or "utf-8",
                               errors="replace")
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = saved_stream
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sink.seek(0)
            for line in sink.read().decode("utf-8", "replace").splitlines():
                if line.strip():
                    logging.getLogger("affectlens.native").debug("%s", line)


def _die(msg: str, code: int = 2) -> int:
    print(f"affectlens: error: {msg}", file=sys.stderr)
    return code


#: Options fields whose command-line flag is not ``--`` + the field name with dashes.
_FLAG_OF_FIELD = {"ema_tau_s": "--ema-tau", "hmm_hold_s": "--hmm-hold", "scene_cut_distance": "--scene-cut",
                  "min_score": "--det-threshold", "min_face_px": "--min-face", "interval_s": "--interval",
                  "start_s": "--start", "end_s": "--end", "min_track_s": "--min-track"}
_FIELDS_WITH_FLAGS = ("classify_per_s", "detect_every", "window_s", "temporal_model", "max_faces", "max_attempts",
                      "blur_faces", "window", "smooth", "every", "fps", "workers", "threads", "engine", "precision")


def _die_option(exc: Exception) -> int:
    """``_die`` for an options error, naming the command-line flags instead of Python field names
    (``classify_per_s must be ...`` reads ``--classify-per-s must be ...``)."""
    import re

    flags = {**{f: "--" + f.replace("_", "-") for f in _FIELDS_WITH_FLAGS}, **_FLAG_OF_FIELD}
    pattern = re.compile(r"(?<![-\w])(" + "|".join(sorted(flags, key=len, reverse=True)) + r")\b(?=\s+(?:\(|must\b|is\b|needs\b|only\b))")
    return _die(pattern.sub(lambda m: flags[m.group(1)], str(exc)))


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
    from tqdm import tqdm

    from affectlens.image_run import analyse_image_file, images_document
    from affectlens.imageio import find_images
    from affectlens.recognizer import EmotionRecognizer

    files, problems = find_images(args.paths)
    try:
        rec = EmotionRecognizer(model=args.model, precision=args.precision, min_score=args.det_threshold, min_face_px=args.min_face,
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
            rec_json, faces = analyse_image_file(rec, path, ann_dir / _annotated_name(path, used) if ann_dir else None,
                                                 blur_faces=args.blur_faces)
        except InvalidImageError as exc:
            records.append({"path": str(path), "error": str(exc)})
            tqdm.write(f"affectlens: {exc}", file=sys.stderr)
            continue
        records.append(rec_json)
        if args.json != "-":  # -q hides the progress bar only
            summary = ", ".join(f"{f.emotion} {f.confidence:.0%}" for f in faces) or "no face"
            tqdm.write(f"{path}: {len(faces)} face(s): {summary}")
    failed = [r for r in records if "error" in r]
    if args.json:
        _write_json(images_document(records, rec, time.perf_counter() - t0), args.json)
    if not files and not problems:
        return _die("no input images")
    if failed:
        print(f"affectlens: {len(failed)} of {len(records)} input(s) failed", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from affectlens.evaluate import evaluate_fer2013, evaluate_folder, evaluate_ferplus, format_report, public, write_plots

    if args.wild:
        return _evaluate_wild(args)
    from affectlens.custom_cli import cmd_evaluate_custom, is_prepared

    if is_prepared(args.data) or args.html or (args.folder and not args.plots):
        return cmd_evaluate_custom(args)
    args.split = args.split or ("all" if args.folder else "PrivateTest")
    try:
        if args.folder:
            report = evaluate_folder(args.model, args.folder, args.split, threads=args.threads, crops=args.crops)
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


def _evaluate_wild(args) -> int:
    from affectlens.wild import DEFAULT_LABELS_CSV, evaluate_wild, format_wild_report

    labels = Path(args.wild_labels) if args.wild_labels else DEFAULT_LABELS_CSV
    if not labels.is_file():
        return _die(f"{labels}: wild labels file not found; give --wild-labels benchmarks/wild/labels.csv "
                    "from a clone of the repository")
    try:
        report = evaluate_wild(args.model, labels, args.wild_data, threads=args.threads)
    except (ModelLoadError, ValueError) as exc:
        return _die(str(exc))
    if args.json:
        _write_json(report, args.json)
    if args.json != "-":
        print(format_wild_report(report))
    return 0


# ----------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        return _die("training needs PyTorch: pip install 'affectlens[train]' -c constraints.txt")
    if args.data:
        from affectlens.custom_cli import cmd_train_custom

        return cmd_train_custom(args)
    from affectlens.training.config import load_config
    from affectlens.training.train import resolve_device, train

    try:
        cfg = load_config(args.config, args.set)
        resolve_device(cfg.device)
    except (OSError, ValueError) as exc:
        return _die(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=_CurrentStderr())
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
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=_CurrentStderr())
    try:
        metrics = train_temporal(cfg, resume=args.resume)
    except (DatasetError, ModelLoadError) as exc:
        return _die(str(exc))
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))
    return 0


# ----------------------------------------------------------------------------- video
def cmd_video(args) -> int:
    from affectlens.detection import DetectorOptions
    from affectlens.errors import InvalidVideoError
    from affectlens.recognizer import RecognizerOptions
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
    from affectlens.video.progress import VideoProgress
    from affectlens.video.session import RunOptions, run_video

    logging.basicConfig(level=logging.WARNING, format="affectlens: %(message)s", stream=_CurrentStderr())
    try:
        det = DetectorOptions(min_score=args.det_threshold, min_face_px=args.min_face, max_faces=args.max_faces)
        opts = VideoOptions(recognizer=RecognizerOptions(model=args.model, precision=args.precision,
                                                         detector=det, threads=args.threads),
                            **_smoother_options(args),
                            detect_every=args.detect_every, classify_per_s=args.classify_per_s,
                            scene_cut_distance=None if args.scene_cut <= 0 else args.scene_cut)
        run = RunOptions(every=args.every, fps=args.fps, start_s=args.start, end_s=args.end,
                         interval_s=args.interval, annotate=args.annotate, blur_faces=args.blur_faces,
                         live=args.live, resume=args.resume, codec=args.codec, min_track_s=args.min_track,
                         thumbnails=not args.no_thumbnails)
        analyzer = VideoAnalyzer(opts)
    except ModelLoadError as exc:
        return _die(str(exc))
    except ValueError as exc:
        return _die_option(exc)
    try:
        with quiet_native_logs(), VideoProgress(disable=args.quiet) as progress:
            result = run_video(args.source, args.out, analyzer=analyzer, run=run, progress=progress)
    except InvalidVideoError as exc:
        return _die(str(exc), 1)
    except ResumeMismatchError as exc:
        return _die(str(exc), 2)
    for problem in result.problems:
        print(f"affectlens: {problem}", file=sys.stderr)
    what = "interrupted after " if result.interrupted else ""
    print(f"{what}{result.frames_analysed} frames, {result.tracks} track(s) -> {result.out_dir}/"
          f" ({', '.join(Path(p).name for p in result.files.values())})")
    if result.interrupted:
        print("affectlens: interrupted; outputs cover the frames processed so far (continue with --resume)",
              file=sys.stderr)
        return 130
    return 1 if result.problems else 0


def _smoother_options(args) -> dict:
    """``smooth`` and its settings for :class:`VideoOptions`; a setting of another smoother than
    the chosen one is refused (it would be silently ignored).

    Raises:
        ValueError: e.g. ``--ema-tau`` with ``--smooth hmm``.
    """
    owner = {"window_s": ("--window-s", "moving-average"), "window": ("--window", "moving-average"),
             "ema_tau": ("--ema-tau", "ema"), "hmm_hold": ("--hmm-hold", "hmm"),
             "temporal_model": ("--temporal-model", "learned")}
    for key, (flag, smoother) in owner.items():
        if getattr(args, key) is not None and args.smooth != smoother:
            raise ValueError(f"{flag} is a setting of --smooth {smoother}, not of --smooth {args.smooth}; "
                             f"leave it out or add --smooth {smoother}")
    given = {"window_s": args.window_s, "window": args.window, "ema_tau_s": args.ema_tau,
             "hmm_hold_s": args.hmm_hold, "temporal_model": args.temporal_model}
    return {"smooth": args.smooth, **{k: v for k, v in given.items() if v is not None}}


# ----------------------------------------------------------------------------- batch
def cmd_batch(args) -> int:
    import signal

    from affectlens.batch import BatchOptions, run_batch

    def stop(signum, frame):  # SIGTERM ends the batch like Ctrl-C: the manifest keeps what finished
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="affectlens: %(message)s",
                        stream=_CurrentStderr())
    try:
        opts = BatchOptions(engine=args.engine, address=args.address, workers=args.workers, threads=args.threads,
                            max_attempts=args.max_attempts, model=args.model, precision=args.precision,
                            min_score=args.det_threshold, min_face_px=args.min_face, max_faces=args.max_faces,
                            every=args.every, fps=args.fps, interval_s=args.interval,
                            **_smoother_options(args),
                            detect_every=args.detect_every, classify_per_s=args.classify_per_s,
                            annotate=args.annotate, blur_faces=args.blur_faces, thumbnails=not args.no_thumbnails,
                            min_track_s=args.min_track, codec=args.codec,
                            scene_cut_distance=None if args.scene_cut <= 0 else args.scene_cut)
        res = run_batch(args.inputs, args.out, opts, show_progress=not args.quiet)
    except ImportError as exc:
        return _die(f"{exc}; the batch command needs: pip install 'affectlens[batch]'")
    except ModelLoadError as exc:
        return _die(str(exc))
    except ValueError as exc:
        return _die_option(exc)
    for _, msg in res.problems:
        print(f"affectlens: {msg}", file=sys.stderr)
    bad = {k: v for k, v in res.status.items() if v != "done"}
    s = res.summary
    print(f"{len(res.items)} item(s): {s['done']} done, {s['partial']} partly decoded, {s['invalid']} unreadable, "
          f"{s['failed']} failed ({len(res.skipped)} skipped as done before); {s['frames']} frames, {s['faces']} "
          f"faces -> {res.out_dir}/ (summary.html, manifest.csv, dataset/)", file=sys.stderr)
    if not res.items and not res.problems:
        return _die("no inputs")
    return 0 if not bad and not res.problems else 1


# ----------------------------------------------------------------------------- models
def cmd_models(args) -> int:
    from affectlens.cpu import cpu_info
    from affectlens.models import DEFAULT_MODEL, available_models, resolve_spec, select_variant

    chosen, reason = select_variant()
    rows = []
    for name in available_models():
        spec = resolve_spec(name)
        figures = [f"{title} {spec.metrics[key]['accuracy']:.2%}"
                   for key, title in (("fer2013_private_test", "FER-2013 PrivateTest"), ("ferplus_private_test", "FER+ test"))
                   if key in spec.metrics]
        rows.append(("*" if name == chosen else " ", name, f"{spec.input.size_hw[0]}x{spec.input.size_hw[1]}",
                     spec.input.color, f"{len(spec.labels)} classes", ", ".join(figures) or "-"))
    head = (" ", "model", "input", "color", "labels", "accuracy")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print(r[0] + " " + "  ".join(c.ljust(w) for c, w in zip(r[1:], widths[1:])).rstrip())
    print(f"\n* used when no model is named, on this CPU: {chosen} (family {DEFAULT_MODEL}; {reason})")
    print(f"  CPU: {cpu_info().describe()}")
    return 0


# ----------------------------------------------------------------------------- doctor
def cmd_doctor(args) -> int:
    from affectlens.doctor import format_doctor, run_doctor

    report = run_doctor(args.model, args.precision, args.threads, args.data, args.faces)
    if args.json:
        _write_json(report.to_dict(), args.json)
    if args.json != "-":
        print(format_doctor(report))
    return 0 if report.ok else 1


# ----------------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from affectlens.export import ExportError, export_bundle

    try:
        manifest = export_bundle(args.format, args.out, model=args.model, verify_faces=args.verify_faces,
                                 min_agreement=args.min_agreement)
    except ExportError as exc:
        return _die(str(exc), 1)
    except ModelLoadError as exc:
        return _die(str(exc))
    v = manifest["verification"]
    print(f"{args.out}: {manifest['detector']}, {manifest['emotion_model']} ({manifest['model']}), spec, labels.txt, "
          f"manifest.json; verified on {v['faces']} faces here: top-emotion agreement {v['agreement']:.2%}, "
          f"max probability difference {v['max_prob_diff']}")
    return 0


class _WrapEpilog(argparse.HelpFormatter):
    """Keeps the epilog's line breaks and wraps each long line at commas."""

    def _fill_text(self, text, width, indent):
        import textwrap

        return "\n".join(textwrap.fill(line, width, initial_indent=indent, break_on_hyphens=False,
                                        subsequent_indent=indent + ("    " if line.startswith("  ") else ""))
                         for line in text.splitlines())


def _train_set_keys() -> str:
    """The ``--set`` keys of ``train`` with their defaults, read from the config dataclasses' source
    (importing them would import PyTorch on every CLI call)."""
    import ast

    root = Path(__file__).resolve().parent / "training"
    found: dict[str, list[str]] = {}
    for file, cls, prefix in (("config.py", "TrainConfig", ""), ("augment.py", "AugmentConfig", "augment.")):
        try:
            tree = ast.parse((root / file).read_text(encoding="utf-8"))
        except OSError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == cls:
                for st in node.body:
                    if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and st.value is not None \
                            and not ast.unparse(st.annotation).endswith("Config"):
                        found.setdefault(prefix, []).append(f"{prefix}{st.target.id}={ast.unparse(st.value)}")
    lines = [", ".join(v) for v in found.values()]
    return "--set keys (default values):\n  " + "\n  ".join(lines) if lines else ""


def _add_face_and_model_arguments(p: argparse.ArgumentParser) -> None:
    """The detector and emotion-model options that ``image``, ``video`` and ``batch`` share."""
    p.add_argument("--min-face", type=float, default=0.0, metavar="PX", help="ignore faces smaller than PX pixels (default 0: all)")
    p.add_argument("--det-threshold", type=float, default=0.6, metavar="P", help="face score threshold, 0-1 (default 0.6)")
    p.add_argument("--max-faces", type=int, default=0, metavar="N", help="keep the N best faces (0 = all)")
    p.add_argument("--model", default=None, metavar="NAME_OR_PATH", help="emotion model (see 'affectlens models')")
    p.add_argument("--precision", choices=("auto", "int8", "fp32"), default="auto",
                   help="int8 or fp32 variant of the model (auto: chosen for this CPU, see 'affectlens models')")


def build_parser() -> argparse.ArgumentParser:
    """The ``affectlens`` argument parser: one sub-command per ``_add_*_parser``."""
    from affectlens.custom_cli import add_dataset_parser
    from affectlens.service.cli import add_serve_parser  # stdlib-only module; FastAPI is imported when run

    p = argparse.ArgumentParser(prog="affectlens", description="Facial emotion recognition. " + RESPONSIBLE_USE)
    p.add_argument("--version", action="version", version=f"affectlens {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_image_parser(sub)
    _add_evaluate_parser(sub)
    _add_train_parser(sub)
    add_dataset_parser(sub)
    _add_train_temporal_parser(sub)
    _add_video_parser(sub)
    _add_batch_parser(sub)
    _add_export_parser(sub)
    _add_models_parser(sub)
    _add_doctor_parser(sub)
    add_serve_parser(sub)
    return p


def _add_image_parser(sub) -> None:
    """``affectlens image``."""
    im = sub.add_parser("image", help="analyse image files or folders (recursive)")
    im.add_argument("paths", nargs="+", help="image files or folders")
    im.add_argument("--json", metavar="OUT", help="write one record per image to OUT ('-' = stdout)")
    im.add_argument("--annotate", metavar="DIR", help="write annotated copies to DIR")
    im.add_argument("--blur-faces", action="store_true", help="blur the faces in the annotated copies (privacy)")
    _add_face_and_model_arguments(im)
    im.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = the CPUs this process may use)")
    im.add_argument("-q", "--quiet", action="store_true", help="no progress bar (results and errors still print)")
    im.set_defaults(func=cmd_image)


def _add_evaluate_parser(sub) -> None:
    """``affectlens evaluate``."""
    ev = sub.add_parser("evaluate", help="score an emotion model on FER-2013, FER+, your own faces (folders or a "
                                         "prepared data set) or the in-the-wild set")
    ev.add_argument("--data", default="../shared/data/fer2013",
                    help="fer2013.csv[.gz] or its folder, or a prepared data set (affectlens dataset prepare)")
    ev.add_argument("--split", default=None, choices=["Training", "PublicTest", "PrivateTest", "all", "train", "val", "test"],
                    help="FER-2013/FER+: default PrivateTest; --folder: default all; a prepared data set: default the "
                         "test subjects its model folder held out (else all)")
    ev.add_argument("--folder", metavar="DIR",
                    help="score on labelled photos or crops in class folders (DIR/<label>/*.jpg or "
                         "DIR/train|val|test/<label>/); photos are detected and aligned, crops taken as crops")
    ev.add_argument("--crops", action="store_true", help="with --folder: the images are face crops (no detection)")
    ev.add_argument("--html", metavar="OUT", help="write an HTML report (scores, base model beside, confusion, "
                                                  "reliability, most confident mistakes)")
    ev.add_argument("--model", default=None, metavar="NAME_OR_PATH")
    ev.add_argument("--ferplus", action="store_true",
                    help="score on FER+ majority labels (fer2013new.csv beside the CSV) with annotator agreement")
    ev.add_argument("--wild", action="store_true",
                    help="score through the full pipeline on the in-the-wild set (benchmarks/wild/labels.csv; "
                         "docs/wild-eval.md)")
    ev.add_argument("--wild-labels", metavar="CSV", help="labels file for --wild (default: the repository's)")
    ev.add_argument("--wild-data", default="../shared/data", metavar="DIR",
                    help="shared data folder the --wild sources are relative to")
    ev.add_argument("--json", metavar="OUT", help="write the report as JSON ('-' = stdout)")
    ev.add_argument("--plots", metavar="DIR", help="write confusion-matrix and reliability-diagram PNGs to DIR")
    ev.add_argument("--threads", type=int, default=0)
    ev.set_defaults(func=cmd_evaluate)


def _add_train_parser(sub) -> None:
    """``affectlens train``."""
    tr = sub.add_parser("train", help="train an emotion model (needs the 'train' extra)", epilog=_train_set_keys(),
                        formatter_class=_WrapEpilog)
    tr.add_argument("--config", default=None,
                    help="TOML config (see configs/); without it the defaults, changed with --set")
    tr.add_argument("--resume", action="store_true", help="continue an interrupted run (--config or --data)")
    tr.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override config values, e.g. --set epochs=10 augment.hflip=0 (keys listed below)")
    from affectlens.custom_cli import add_train_arguments

    add_train_arguments(tr)
    tr.set_defaults(func=cmd_train)


def _add_train_temporal_parser(sub) -> None:
    """``affectlens train-temporal``."""
    tt = sub.add_parser("train-temporal", help="train the learned temporal smoother (needs the 'train' extra)")
    tt.add_argument("--config", default=None, metavar="TOML", help="e.g. configs/temporal-gru.toml")
    tt.add_argument("--resume", action="store_true", help="continue from last.pt in the run folder")
    tt.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config values")
    tt.set_defaults(func=cmd_train_temporal)


def _add_video_parser(sub) -> None:
    """``affectlens video``."""
    vi = sub.add_parser("video", help="analyse a video file, folder of frames, webcam or stream")
    vi.add_argument("source", help="video file, folder of frames, webcam index (0) or rtsp/http URL")
    vi.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_video_run_arguments(vi)
    vi.add_argument("--start", type=float, default=None, metavar="SECONDS", help="analyse from this time on")
    vi.add_argument("--end", type=float, default=None, metavar="SECONDS", help="stop at this time")
    vi.add_argument("--annotate", action="store_true", help="write annotated.mp4 (H.264 with PyAV installed)")
    _add_report_arguments(vi)
    vi.add_argument("--blur-faces", action="store_true", help="blur the faces in annotated.mp4 / --live (privacy)")
    vi.add_argument("--live", action="store_true", help="show a window when a display exists")
    vi.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    _add_face_and_model_arguments(vi)
    vi.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = the CPUs this process may use)")
    vi.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    vi.set_defaults(func=cmd_video)


def _add_batch_parser(sub) -> None:
    """``affectlens batch``."""
    ba = sub.add_parser("batch", help="analyse many images and videos (resumable; local processes or Ray)")
    ba.add_argument("inputs", nargs="+", help="files, folders, glob patterns, or manifest CSVs "
                    "(path[,subject,session,consent_ref])")
    ba.add_argument("--out", required=True, metavar="DIR", help="output folder (a rerun skips the items done)")
    ba.add_argument("--engine", default="local", choices=["local", "ray"],
                    help="local processes (default) or a Ray cluster (needs the 'batch' extra)")
    ba.add_argument("--address", default=None, metavar="auto|ray://HOST:PORT",
                    help="Ray cluster to join (default: start a local Ray instance)")
    ba.add_argument("--workers", type=int, default=0, metavar="N", help="parallel workers (0 = one per CPU)")
    ba.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads per worker (0 = CPUs / workers)")
    ba.add_argument("--max-attempts", type=int, default=3, metavar="N",
                    help="tries per item when a worker crashes (default 3; unreadable files are not retried)")
    _add_video_run_arguments(ba, prefix="videos: ")
    ba.add_argument("--annotate", action="store_true", help="annotated copies of images and videos")
    _add_report_arguments(ba)
    ba.add_argument("--blur-faces", action="store_true", help="blur the faces in annotated outputs (privacy)")
    _add_face_and_model_arguments(ba)
    ba.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-item lines")
    ba.set_defaults(func=cmd_batch)


def _add_report_arguments(parser) -> None:
    """Scene cuts, the annotated video's codec and the report's options: ``video`` and ``batch``."""
    parser.add_argument("--codec", default="auto", choices=["auto", "h264", "vp9", "mp4v"],
                        help="codec of annotated.mp4: auto = H.264 when PyAV is installed (plays in browsers), "
                        "else mp4v")
    parser.add_argument("--min-track", type=float, default=2.0, metavar="SECONDS",
                        help="report: fold tracks visible for less than this into one short list (default 2)")
    parser.add_argument("--no-thumbnails", action="store_true",
                        help="report: no face picture per person (they are blurred with --blur-faces)")
    parser.add_argument("--scene-cut", type=float, default=0.35, metavar="D",
                        help="end all tracks at a scene cut (colour-histogram distance >= D, 0-1; default 0.35); "
                        "0 = off")


def _add_video_run_arguments(parser, prefix: str = "") -> None:
    """Frame sampling, smoothing, detection schedule, reading budget and aggregation: the
    options ``video`` and ``batch`` share (``prefix`` starts the help of the sampling and
    smoother choices, e.g. ``"videos: "`` for ``batch``, which also reads images)."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--every", type=int, default=1, metavar="N", help=prefix + "analyse every N-th frame")
    g.add_argument("--fps", type=float, default=None, metavar="F", help=prefix + "analyse about F frames per second")
    parser.add_argument("--smooth", default="hmm", choices=["none", "moving-average", "ema", "hmm", "learned"],
                        help=prefix + "temporal smoother (default hmm; see docs/temporal.md)")
    parser.add_argument("--window-s", type=float, default=None, metavar="SECONDS",
                        help="--smooth moving-average: window in seconds of video time (default 0.5)")
    parser.add_argument("--window", type=int, default=None, metavar="FRAMES",
                        help="--smooth moving-average: window in analysed frames instead (10-30)")
    parser.add_argument("--ema-tau", type=float, default=None, metavar="SECONDS",
                        help="--smooth ema: time constant (default 0.3)")
    parser.add_argument("--hmm-hold", type=float, default=None, metavar="SECONDS",
                        help="--smooth hmm: mean time an expression is expected to be held (default 0.8)")
    parser.add_argument("--temporal-model", default=None, metavar="NAME_OR_PATH",
                        help="model of --smooth learned (default: the shipped one trained on the emotion "
                             "model's outputs, picked by its labels and name)")
    parser.add_argument("--detect-every", type=int, default=0, metavar="K",
                        help="scan the whole frame for faces on every K-th analysed frame and track in between; "
                        "0 (default) = auto: a full scan every 0.5 s, the detector on windows around the tracked "
                        "faces between")
    parser.add_argument("--classify-per-s", type=float, default=30.0, metavar="N",
                        help="read at most about N faces per second of video with the emotion model, the longest "
                        "unread first; the others keep their latest reading for that frame (0 = every face on "
                        "every frame; default 30: one face is read on every frame but its second, a crowd of "
                        "eight about 4 times a second each)")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="aggregation interval (default 5)")


def _add_export_parser(sub) -> None:
    """``affectlens export``."""
    ex = sub.add_parser("export", help="write the detector and an emotion model (shipped or a --model MODEL_DIR) "
                                       "for on-device apps (web/Node SDK, Android, iOS)")
    ex.add_argument("--format", required=True, choices=["ort", "onnx", "tflite"],
                    help="ort: ONNX Runtime Mobile (+ operator list for a reduced build); onnx: plain ONNX")
    ex.add_argument("--out", required=True, metavar="DIR", help="bundle folder")
    ex.add_argument("--model", default=None, metavar="NAME_OR_PATH",
                    help="emotion model: a shipped name, a spec/ONNX path or a model folder from `affectlens train "
                         "--out MODEL_DIR` (default: the fp32 reference of the default model; see docs/mobile.md)")
    ex.add_argument("--min-agreement", type=float, default=0.99, metavar="SHARE",
                    help="lowest top-emotion agreement of the exported files with the source model on real faces")
    ex.add_argument("--verify-faces", type=int, default=1000, metavar="N",
                    help="FER-2013 PrivateTest crops checked besides the photos (0 = photos only)")
    ex.set_defaults(func=cmd_export)


def _add_models_parser(sub) -> None:
    """``affectlens models``."""
    mo = sub.add_parser("models", help="list the shipped emotion models and the one chosen for this CPU")
    mo.set_defaults(func=cmd_models)


def _add_doctor_parser(sub) -> None:
    """``affectlens doctor``."""
    dr = sub.add_parser("doctor", help="this CPU, its int8 path, the thread policy, and a 10-second self-check "
                        "of the chosen model against its fp32 reference")
    dr.add_argument("--model", default=None, metavar="NAME", help="model to check (default: the one chosen here)")
    dr.add_argument("--precision", choices=("auto", "int8", "fp32"), default="auto")
    dr.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = the CPUs this process may use)")
    dr.add_argument("--data", default=None, metavar="DIR", help="FER-2013 folder (default: $AFFECTLENS_SHARED_DATA/"
                    "fer2013 or ../shared/data/fer2013; without it, sample photos and agreement only)")
    dr.add_argument("--faces", type=int, default=300, help="reference faces to check")
    dr.add_argument("--json", metavar="OUT", help="also write the report as JSON ('-' = stdout only)")
    dr.set_defaults(func=cmd_doctor)


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
