"""CLI layer for custom models: ``affectlens dataset prepare``, ``affectlens train --data`` and
``affectlens evaluate --data DATASET`` / ``--folder`` with an HTML report. Thin: argument
parsing and printing over :mod:`affectlens.datasets.prepare`, :mod:`affectlens.training.custom`
and :mod:`affectlens.dataset_eval`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from affectlens.errors import DatasetError, ModelLoadError


def _die(msg: str, code: int = 2) -> int:
    print(f"affectlens: error: {msg}", file=sys.stderr)
    return code


def add_dataset_parser(sub) -> None:
    """The ``dataset`` command and its ``prepare`` subcommand."""
    ds = sub.add_parser("dataset", help="prepare your own labelled faces for training and evaluation")
    dsub = ds.add_subparsers(dest="dataset_command", required=True)
    pr = dsub.add_parser("prepare", help="detect and align the faces of labelled photos, videos or crops once",
                         description="SRC: a class-folder tree (label/*.jpg), a CSV (path,label[,subject]), an "
                                     "interval CSV (video,start_s,end_s,label[,subject]) or a public data set's "
                                     "layout (fer2013, ferplus, rafdb, affectnet, ckplus, ckplus48, sfew, expw). "
                                     "Only analyse faces of people who consented.")
    pr.add_argument("src", help="source folder or CSV")
    pr.add_argument("--out", required=True, metavar="DATASET", help="data set folder to create")
    pr.add_argument("--layout", default="auto", help="auto, folder, csv, videos, or a public layout name")
    pr.add_argument("--base", default="default", help="model whose crop size and alignment template to use")
    pr.add_argument("--crops", action="store_true", help="the inputs are face crops already (no detection)")
    pr.add_argument("--multi-face", default="largest", choices=["largest", "skip"],
                    help="an image with several faces: keep the largest, or skip it")
    pr.add_argument("--subject-pattern", default=None, metavar="REGEX",
                    help="first group = subject in a file name (default: CK+'s S### prefix, else one per file)")
    pr.add_argument("--video-fps", type=float, default=2.0, help="frames sampled per second of a video interval")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing data set (once the new one is done)")
    pr.add_argument("-q", "--quiet", action="store_true")
    pr.set_defaults(func=cmd_dataset_prepare)


def cmd_dataset_prepare(args) -> int:
    from tqdm import tqdm

    from affectlens.datasets.prepare import PrepareOptions, prepare_dataset
    from affectlens.datasets.sources import find_items

    try:
        opts = PrepareOptions(base=args.base, crops=args.crops, multi_face=args.multi_face, video_fps=args.video_fps)
        items = find_items(args.src, args.layout, args.subject_pattern, args.crops)
        bar = tqdm(total=len(items), unit="input", disable=args.quiet, file=sys.stderr, dynamic_ncols=True)

        def progress(done, total):
            bar.update(done - bar.n)

        result = prepare_dataset(items, args.out, opts, overwrite=args.overwrite, source=args.src, progress=progress)
        bar.close()
    except (DatasetError, ModelLoadError, ValueError) as exc:
        return _die(str(exc))
    for source, kind, detail in result.problems[:20]:
        print(f"affectlens: {source}: {kind}: {detail}", file=sys.stderr)
    if len(result.problems) > 20:
        print(f"affectlens: ... {len(result.problems) - 20} more in {result.out / 'problems.csv'}", file=sys.stderr)
    print(result.summary())
    failed = [p for p in result.problems if p[1] in ("missing", "unreadable")]
    return 1 if failed else 0


def add_train_arguments(tr) -> None:
    """``--data/--base/--out`` options of ``affectlens train`` (custom models)."""
    g = tr.add_argument_group("custom model (instead of --config)")
    g.add_argument("--data", metavar="DATASET", help="a prepared data set (affectlens dataset prepare)")
    g.add_argument("--base", default="default", help="default (ferplus-vgg48s), a shipped vgg48_s model, or none")
    g.add_argument("--out", metavar="MODEL_DIR", help="model folder to write")
    g.add_argument("--labels", default=None, help="comma-separated output labels (default: all in the data)")
    g.add_argument("--epochs", type=int, default=30)
    g.add_argument("--patience", type=int, default=8, help="early stopping: epochs without a better val macro-F1")
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--tune", default="all", choices=["all", "late", "head"], help="which weights learn")
    g.add_argument("--class-weights", default="balanced", choices=["balanced", "sqrt", "none"])
    g.add_argument("--folds", default="0", help="also run a subject-disjoint k-fold cross-validation (N or auto)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    g.add_argument("--threads", type=int, default=0)
    g.add_argument("--overwrite", action="store_true", help="replace a model already in --out")


def cmd_train_custom(args) -> int:
    from tqdm import tqdm

    from affectlens.training.custom import CustomTrainOptions, train_custom

    if not args.out:
        return _die("--data needs --out MODEL_DIR")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # onnxruntime's quantiser logs at INFO
    logging.getLogger("affectlens").setLevel(logging.INFO)
    try:
        folds = args.folds if args.folds == "auto" else int(args.folds)
        opts = CustomTrainOptions(base=args.base, labels=tuple(s.strip() for s in args.labels.split(",")) if args.labels
                                  else None, epochs=args.epochs, patience=args.patience, lr=args.lr, tune=args.tune,
                                  class_weights=args.class_weights, folds=folds, seed=args.seed, device=args.device,
                                  threads=args.threads)
    except ValueError as exc:
        return _die(f"--folds must be a number or auto ({exc})")
    runs = 1 + (folds if isinstance(folds, int) else 0)  # early stopping can end runs sooner: an upper bound
    bar = tqdm(total=args.epochs * runs, unit="epoch", file=sys.stderr, dynamic_ncols=True, desc="training")

    def progress(row):
        bar.set_postfix(run=row["run"], val_f1=row["val_macro_f1"], refresh=False)
        bar.update(1)

    try:
        metrics = train_custom(args.data, args.out, opts, resume=args.resume, overwrite=args.overwrite,
                               progress=progress)
    except (DatasetError, ModelLoadError, ValueError) as exc:
        bar.close()
        return _die(str(exc))
    bar.close()
    t = metrics["test"]
    print(f"{args.out}: test subjects accuracy {t['accuracy']:.1%}, macro-F1 {t['macro_f1']:.3f} ({t['n']} faces)")
    if "base_test" in metrics:
        b = metrics["base_test"]
        print(f"base {b['model']} on the same faces ({len(b['classes'])} shared classes): {b['accuracy']:.1%} "
              f"(this model: {t.get('shared_classes_accuracy', 0):.1%})")
    if "cross_validation" in metrics:
        cv = metrics["cross_validation"]
        print(f"{cv['folds']}-fold subject-disjoint CV: {cv['accuracy_mean']:.1%} ± {100 * cv['accuracy_sd']:.1f}"
              + (f"; base zero-shot {cv['base_accuracy_mean']:.1%} ± {100 * cv['base_accuracy_sd']:.1f}"
                 if "base_accuracy_mean" in cv else ""))
    print(f"model card: {Path(args.out) / 'MODEL_CARD.md'}; use it with --model {args.out}")
    return 0


def cmd_evaluate_custom(args) -> int:
    """``evaluate --data DATASET`` (a prepared data set) or ``--folder`` with ``--html``."""
    from affectlens.dataset_eval import evaluate_folder_faces, evaluate_prepared, write_html_report
    from affectlens.evaluate import format_report, public

    try:
        if args.folder:
            report = evaluate_folder_faces(args.model, args.folder, args.split or "all", crops=args.crops,
                                           threads=args.threads)
        else:
            split = {None: "auto", "PrivateTest": "test", "PublicTest": "val", "Training": "train"}.get(args.split,
                                                                                                      args.split)
            report = evaluate_prepared(args.model, args.data, split, threads=args.threads)
    except (ModelLoadError, DatasetError) as exc:
        return _die(str(exc))
    if args.html:
        write_html_report(report, args.html)
    out = public(report)
    if args.json:
        from affectlens.cli import _write_json

        _write_json(out, args.json)
    if args.json != "-":
        print(format_report(out))
        b = out.get("base")
        if b:
            print(f"\nbase {b['model']} on the same faces ({len(b['classes'])} shared classes, {b['n']} faces): "
                  f"accuracy {b['accuracy']:.4f}, macro-F1 {b['macro_f1']:.4f}; this model on them: "
                  f"{b['model_accuracy_same_faces']:.4f}")
        if args.html:
            print(f"report: {args.html}")
    return 0


def is_prepared(path: str | None) -> bool:
    """Whether ``path`` is a prepared data set folder."""
    return bool(path) and (Path(path) / "dataset.json").is_file()


