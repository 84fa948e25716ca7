"""Scoring a model on your own faces: a prepared data set or a folder of photos and crops.

``affectlens evaluate --model MODEL_DIR --data DATASET`` scores a model on a prepared data set
(:mod:`affectlens.datasets.prepare`): on the test subjects its training held out when the
model folder was trained on this data set, else on every face. ``--folder DIR`` detects and
aligns photos with the model's own template (crops are taken as crops), then does the same.
Beside the model's scores come the base model's on the same faces (the classes they share),
and :func:`write_html_report` writes a self-contained HTML report with a gallery of the most
confident mistakes. The gallery shows your own faces: the report is yours, keep it private.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

import cv2
import numpy as np

from affectlens.classifier import EmotionClassifier
from affectlens.errors import DatasetError
from affectlens.metrics import classification_report, expected_calibration_error


def _classifier(model, threads: int = 0) -> EmotionClassifier:
    return model if isinstance(model, EmotionClassifier) else EmotionClassifier(model, threads=threads, batch_size=256)


def score_faces(clf: EmotionClassifier, images: np.ndarray, labels: list[str], sources: list[str],
                dataset: str, split: str) -> dict:
    """The report of ``clf`` on aligned crops with label names.

    Raises:
        DatasetError: labels the model has no output for, or no faces.
    """
    if len(labels) == 0:
        raise DatasetError(f"{dataset}: no faces to score in split {split!r}")
    unknown = sorted(set(labels) - set(clf.labels))
    if unknown:
        raise DatasetError(f"{dataset}: label folders {unknown} are not among the model's labels "
                           f"(model {clf.spec.name} knows {list(clf.labels)})")
    true = np.array([clf.labels.index(lab) for lab in labels])
    t0 = time.perf_counter()
    probs = clf.classify_crops(images)
    seconds = time.perf_counter() - t0
    report = classification_report(probs, true, clf.labels)
    report.update({"model": clf.spec.name, "model_file": str(clf.spec.model_path), "dataset": dataset, "split": split,
                   "seconds": round(seconds, 3), "faces_per_second": round(len(true) / max(seconds, 1e-9), 1),
                   "ece": expected_calibration_error(probs, true), "temperature": float(clf.spec.temperature),
                   "comparison": []})
    report["_probs"], report["_true"], report["_images"], report["_sources"] = probs, true, images, list(sources)
    return report


def base_beside(report: dict, base: EmotionClassifier) -> dict | None:
    """The base model's scores on the report's faces, over the classes both models share."""
    labels = report["labels"]
    shared = [lab for lab in labels if lab in base.labels]
    if len(shared) < 2:
        return None
    true_names = np.asarray(labels)[report["_true"]]
    keep = np.isin(true_names, shared)
    probs = base.classify_crops(report["_images"][keep])[:, [base.labels.index(s) for s in shared]]
    probs = probs / probs.sum(1, keepdims=True)
    true = np.array([shared.index(n) for n in true_names[keep]])
    rep = classification_report(probs, true, shared)
    mine = report["_probs"][keep][:, [labels.index(s) for s in shared]]
    return {"model": base.spec.name, "classes": shared, "n": rep["n"], "accuracy": rep["accuracy"],
            "macro_f1": rep["macro_f1"], "ece": expected_calibration_error(probs, true),
            "per_class_recall": rep["per_class_recall"],
            "model_accuracy_same_faces": float((mine.argmax(1) == true).mean())}


def _base_of(clf: EmotionClassifier, base) -> EmotionClassifier | None:
    if base is False:
        return None
    if base in (None, "auto"):
        name = clf.spec.training.get("base")
        if not name or name == "none":
            return None
        base = name
    return _classifier(base)


def evaluate_prepared(model, data: str | Path, split: str = "auto", base="auto", threads: int = 0) -> dict:
    """Score a model on a prepared data set.

    Args:
        model: name, path, model folder or :class:`EmotionClassifier`.
        data: a folder from ``affectlens dataset prepare``.
        split: ``"auto"`` (the held-out test subjects when the model folder was trained on this
            very data set, else every face), ``"test"``, ``"val"``, ``"train"`` or ``"all"``.
        base: the model to show beside (``"auto"``: the one it was fine-tuned from; ``False``: none).

    Raises:
        DatasetError: not a prepared data set, labels the model lacks, a split the model folder
            does not record.
    """
    from affectlens.datasets.prepare import load_prepared

    clf = _classifier(model, threads)
    ds = load_prepared(data)
    keep = np.ones(len(ds), bool)
    splits_file = clf.spec.model_path.parent / "splits.json"
    recorded = json.loads(splits_file.read_text()) if splits_file.is_file() else None
    same = recorded is not None and recorded.get("manifest_sha256") == _sha(ds.root)
    if split == "auto":
        split = "test" if same else "all"
    if split != "all":
        if not same:
            raise DatasetError(f"{data}: split {split!r} needs the model folder that was trained on this data set "
                               f"({splits_file} is missing or names another data set); use --split all")
        keep = np.isin(ds.ids, recorded[split])
    known = np.isin(ds.labels, clf.labels)
    dropped = sorted(set(ds.labels[keep & ~known].tolist()))
    keep &= known
    report = score_faces(clf, ds.images[keep], ds.labels[keep].tolist(), ds.sources[keep].tolist(), str(ds.root),
                         split)
    if dropped:
        report["protocol"] = f"faces labelled {dropped} left out (the model has no such output)"
    report["subjects"] = len(set(ds.subjects[keep].tolist()))
    b = _base_of(clf, base)
    if b is not None:
        report["base"] = base_beside(report, b)
    return report


def _sha(root: Path) -> str:
    import hashlib

    return hashlib.sha256((Path(root) / "manifest.csv").read_bytes()).hexdigest()


def evaluate_folder_faces(model, folder: str | Path, split: str = "all", crops: bool = False, base="auto",
                          threads: int = 0) -> dict:
    """Score a model on a folder of labelled photos or crops (``folder/<label>/*``, label
    synonyms accepted): photos are detected and aligned with the model's own template, crops
    (``crops=True`` or face-sized images) resized; photos without a face are reported, not fatal.

    Args:
        split: ``"all"``, or with ``train``/``val``/``test`` sub-folders one of them (``Training``,
            ``PublicTest``, ``PrivateTest`` are accepted too). A flat folder's named split is the
            hashed 10% part :mod:`affectlens.datasets.image_folder` defines.

    Raises:
        DatasetError: folder missing, empty class folder, labels the model lacks, no face at all.
    """
    from affectlens.datasets.image_folder import SPLIT_ALIASES, _bucket
    from affectlens.datasets.prepare import FacePreparer, PrepareOptions, prepare_in_memory
    from affectlens.datasets.sources import SPLIT_FOLDERS, class_folder_items

    clf = _classifier(model, threads)
    root = Path(folder)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder (expected {root}/<label>/*.jpg)")
    items = class_folder_items(root, is_crop=True if crops else None)
    if split != "all":
        want = SPLIT_ALIASES.get(split.lower(), split)
        subdirs = {p.name.lower() for p in root.iterdir() if p.is_dir()}
        if subdirs and subdirs <= SPLIT_FOLDERS:
            items = [it for it in items if SPLIT_ALIASES.get(it.path.relative_to(root).parts[0].lower()) == want]
        else:
            lo, hi = {"PublicTest": (0.0, 0.1), "PrivateTest": (0.1, 0.2), "Training": (0.2, 1.0)}[want]
            items = [it for it in items if lo <= _bucket(str(it.path.relative_to(root))) < hi]
    unknown = sorted({it.label for it in items} - set(clf.labels))
    if unknown:
        raise DatasetError(f"{root}: label folders {unknown} are not among the model's labels "
                           f"(model {clf.spec.name} knows {list(clf.labels)})")
    preparer = FacePreparer(PrepareOptions(crops=crops), classifier=clf)
    faces, problems = prepare_in_memory(items, preparer=preparer)
    if not faces:
        raise DatasetError(f"{root}: no face found in split {split!r} ({len(items)} images, {len(problems)} problems)")
    images = np.stack([f.crop for f in faces])
    report = score_faces(clf, images, [f.label for f in faces], [f.source for f in faces], f"folder {root}", split)
    report["skipped_files"] = [{"path": s, "error": f"{k}: {d}"} for s, k, d in problems if k != "multi_face"]
    report["problems"] = [{"source": s, "problem": k, "detail": d} for s, k, d in problems]
    b = _base_of(clf, base)
    if b is not None:
        report["base"] = base_beside(report, b)
    return report


def _png64(img: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", img)
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""


def most_confident_mistakes(report: dict, k: int = 24) -> list[dict]:
    """The ``k`` wrong predictions with the highest confidence: index, true, predicted, confidence, source."""
    probs, true = report["_probs"], report["_true"]
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != true)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]])][:k]
    labels = report["labels"]
    return [{"index": int(i), "true": labels[true[i]], "predicted": labels[pred[i]],
             "confidence": float(probs[i, pred[i]]), "source": report["_sources"][i]} for i in order]


def write_html_report(report: dict, path: str | Path, mistakes: int = 24) -> Path:
    """A self-contained HTML report: headline scores (and the base model's), per-class
    precision/recall, confusion matrix, reliability diagram and the most confident mistakes."""
    import tempfile

    from affectlens.plots import confusion_png, reliability_png

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        title = f"{report['model']}: accuracy {report['accuracy']:.1%}"
        cpng = cv2.imread(str(confusion_png(Path(tmp) / "c.png", report["confusion_matrix"], report["labels"], title)))
        rpng = cv2.imread(str(reliability_png(Path(tmp) / "r.png", report["_probs"], report["_true"],
                                              title=f"ECE {report['ece']:.3f}")))
    e = html.escape
    rows = "".join(f"<tr><td>{e(n)}</td><td>{report['per_class_precision'][n]:.3f}</td>"
                   f"<td>{report['per_class_recall'][n]:.3f}</td><td>{report['per_class_f1'][n]:.3f}</td>"
                   f"<td>{report['support'][n]}</td></tr>" for n in report["labels"])
    b = report.get("base")
    base_html = "<p>No base model to compare with.</p>" if not b else (
        f"<p>Base model <b>{e(b['model'])}</b> on the same faces, over the {len(b['classes'])} classes both know "
        f"({e(', '.join(b['classes']))}; {b['n']} faces): accuracy <b>{b['accuracy']:.1%}</b>, macro-F1 "
        f"{b['macro_f1']:.3f}, ECE {b['ece']:.3f}. This model on the same faces and classes: "
        f"<b>{b['model_accuracy_same_faces']:.1%}</b>.</p>")
    gallery = "".join(
        f"<figure><img src='{_png64(cv2.resize(report['_images'][m['index']], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))}'>"
        f"<figcaption>true <b>{e(m['true'])}</b><br>read as {e(m['predicted'])} {m['confidence']:.0%}<br>"
        f"<small>{e(Path(m['source']).name)}</small></figcaption></figure>"
        for m in most_confident_mistakes(report, mistakes))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(report['model'])} on {e(report['dataset'])}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:4px;text-align:center;font-size:12px;width:110px}}img{{image-rendering:pixelated}}</style></head><body>
<h1>{e(report['model'])} on {e(report['dataset'])}</h1>
<p>Split <b>{e(report['split'])}</b>: {report['n']} faces{f", {report['subjects']} subjects" if 'subjects' in report else ''}.
{e(report.get('protocol', ''))}</p>
<p>Accuracy <b>{report['accuracy']:.1%}</b>, macro-F1 <b>{report['macro_f1']:.3f}</b>, ECE {report['ece']:.3f}.</p>
{base_html}
<h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>faces</th></tr>{rows}</table>
<h2>Confusion matrix and reliability</h2><img src="{_png64(cpng)}"> <img src="{_png64(rpng)}">
<h2>Most confident mistakes</h2><p>These are faces from your own data; keep this report private.</p>{gallery or '<p>No mistakes.</p>'}
<p><small>Emotion recognition reads facial appearance, not inner state. Scores hold for faces like these.</small></p>
</body></html>"""
    path.write_text(doc)
    return path
