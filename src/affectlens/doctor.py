"""``affectlens doctor``: what this machine runs and a short self-check of it.

It names the CPU, its ISA flags and int8 path, the thread policy, the model the library picks
here and why, then checks the chosen model against its fp32 reference on real faces: FER-2013
PrivateTest faces when the data is found (accuracy of both and top-1 agreement), else faces
found by the detector in the sample photos (agreement only). A disagreement above 2% means
the int8 file is not accurate on this CPU: the check fails and names the fix.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectlens.cpu import cpu_info
from affectlens.errors import DatasetError
from affectlens.models.registry import resolve_spec, select_variant
from affectlens.runtime import thread_policy

#: Minimum top-1 agreement between an int8 model and its fp32 reference in the self-check.
#: The tests hold the int8 files to 99% on the whole test split (3,589 faces); on the
#: self-check's few hundred faces sampling noise alone moves the figure by about a point,
#: so the doctor flags only what is clearly worse (a saturating int8 file agreed on 85–92%).
MIN_AGREEMENT = 0.98


@dataclass
class DoctorReport:
    """The self-check's findings (``ok`` is False when the chosen model disagrees with fp32)."""

    cpu: dict
    threads: dict
    model: str
    reason: str
    reference: str
    faces: int = 0
    faces_source: str = ""
    agreement: float | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    faces_per_second: float | None = None
    seconds: float = 0.0
    ok: bool = True
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def find_fer2013(data: str | os.PathLike | None = None) -> Path | None:
    """The FER-2013 folder: ``data``, ``$AFFECTLENS_SHARED_DATA/fer2013`` or ``../shared/data/fer2013``."""
    candidates = [Path(data)] if data else []
    if os.environ.get("AFFECTLENS_SHARED_DATA"):
        candidates.append(Path(os.environ["AFFECTLENS_SHARED_DATA"]) / "fer2013")
    candidates.append(Path("../shared/data/fer2013"))
    return next((p for p in candidates if (p / "fer2013.csv.gz").exists() or (p / "fer2013.csv").exists()), None)


def reference_faces(fer_dir: Path | None, n: int, clf) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``(crops, true label indices or None, description)``: ``n`` PrivateTest faces (FER+ labels
    for a model with a contempt output), or every face the detector finds in the sample photos
    (aligned for ``clf``, an :class:`~affectlens.classifier.EmotionClassifier`)."""
    labels = clf.labels
    if fer_dir is not None:
        rng = np.random.default_rng(0)
        if "contempt" in labels:
            from affectlens.datasets.ferplus import FERPLUS_EMOTIONS, load_ferplus

            fp = load_ferplus(fer_dir, "PrivateTest")
            idx = rng.choice(len(fp.labels), size=min(n, len(fp.labels)), replace=False)
            true = np.array([labels.index(FERPLUS_EMOTIONS[i]) for i in fp.labels[idx]])
            return fp.images[idx], true, f"{len(idx)} FER+ test faces ({fer_dir})"
        from affectlens.datasets import load_fer2013
        from affectlens.labels import EMOTIONS

        fer = load_fer2013(fer_dir, ("PrivateTest",))["PrivateTest"]
        idx = rng.choice(len(fer), size=min(n, len(fer)), replace=False)
        true = np.array([labels.index(EMOTIONS[i]) for i in fer.labels[idx]])
        return fer.images[idx], true, f"{len(idx)} FER-2013 PrivateTest faces ({fer_dir})"
    from affectlens.detection import RetinaFaceDetector
    from affectlens.imageio import load_image
    from affectlens.samples import sample_images

    det, crops = RetinaFaceDetector(), []
    for path in sample_images():
        bgr = load_image(path)
        found = det.detect(bgr)
        for scale in (1.0, 0.97, 1.03):  # small jitter: more faces, same people
            crops.append(clf.align(bgr, found.landmarks * scale + (1 - scale) * found.landmarks.mean(1, keepdims=True)))
    if not crops:
        raise DatasetError("no reference faces: FER-2013 not found (set AFFECTLENS_SHARED_DATA) and no sample "
                           "photos installed (pip install --no-deps insightface==2.1)")
    all_crops = np.concatenate(crops)
    return all_crops, None, f"{len(all_crops)} aligned faces from the sample photos (no labels: agreement only)"


def run_doctor(model: str | None = None, precision: str = "auto", threads: int = 0,
               data: str | os.PathLike | None = None, faces: int = 300) -> DoctorReport:
    """Run the self-check (about 10 s on 2 cores) and return its :class:`DoctorReport`.

    Args:
        model: model to check (``None`` = what the library picks here).
        precision: ``auto``, ``int8`` or ``fp32`` (see :func:`~affectlens.models.select_variant`).
        threads: ONNX Runtime threads (0 = the CPUs this process may use).
        data: FER-2013 folder (default: found as :func:`find_fer2013` says).
        faces: how many reference faces.

    Raises:
        ModelLoadError: the model cannot be loaded. DatasetError: no reference faces at all.
    """
    from affectlens.classifier import EmotionClassifier

    t0 = time.perf_counter()
    name, reason = select_variant(model, precision)
    spec = resolve_spec(name)
    ref_name = spec.name.removesuffix("-int8")
    report = DoctorReport(cpu=cpu_info().to_dict(), threads=thread_policy(threads), model=spec.name,
                          reason=reason, reference=ref_name)
    clf = EmotionClassifier(spec, threads=threads)
    crops, true, report.faces_source = reference_faces(find_fer2013(data), faces, clf)
    report.faces = len(crops)
    t1 = time.perf_counter()
    probs = clf.classify_crops(crops)
    report.faces_per_second = round(len(crops) / max(time.perf_counter() - t1, 1e-9), 1)
    if true is not None:
        report.accuracy = float((probs.argmax(1) == true).mean())
    if ref_name != spec.name:
        ref = EmotionClassifier(ref_name, threads=threads).classify_crops(crops)
        report.agreement = float((ref.argmax(1) == probs.argmax(1)).mean())
        if true is not None:
            report.reference_accuracy = float((ref.argmax(1) == true).mean())
        if report.agreement < MIN_AGREEMENT:
            report.ok = False
            report.problems.append(
                f"{spec.name} agrees with {ref_name} on only {report.agreement:.1%} of faces on this CPU "
                f"({cpu_info().int8_path} int8 path); run the fp32 model (--precision fp32) and report this CPU")
    report.seconds = round(time.perf_counter() - t0, 2)
    return report


def format_doctor(r: DoctorReport) -> str:
    """The report as the lines ``affectlens doctor`` prints."""
    cpu = r.cpu
    lines = [f"cpu        {cpu['model']} ({cpu['machine']}, {cpu['cores']} usable cores)",
             f"isa        {', '.join(cpu['flags']) or 'none of ' + 'avx2/avx512/vnni/amx'}; int8 path: {cpu['int8_path']}",
             f"threads    {r.threads['intra_op_threads']} intra-op, spin-wait off; onnxruntime {r.threads['onnxruntime']}",
             f"model      {r.model} ({r.reason})",
             f"self-check {r.faces_source}"]
    if r.accuracy is not None:
        ref = f", {r.reference} {r.reference_accuracy:.1%}" if r.reference_accuracy is not None else ""
        lines.append(f"accuracy   {r.model} {r.accuracy:.1%}{ref}")
    if r.agreement is not None:
        lines.append(f"agreement  {r.agreement:.1%} same top label as {r.reference} (need >= {MIN_AGREEMENT:.0%})")
    lines.append(f"speed      {r.faces_per_second:.0f} faces/s in the check; {r.seconds:.1f} s in all")
    lines.append("result     OK" if r.ok else "result     PROBLEM: " + "; ".join(r.problems))
    return "\n".join(lines)
