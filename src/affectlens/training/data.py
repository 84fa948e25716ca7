"""Training data for :func:`affectlens.training.train.train`: FER-2013 (hard labels), FER+
(annotator vote distributions as soft targets, majority labels for scoring) or face crops in
class folders (hard labels, any label set)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectlens.labels import EMOTIONS

#: Output labels of FER+ models: our 7 emotions, then contempt.
FERPLUS_MODEL_LABELS: tuple[str, ...] = EMOTIONS + ("contempt",)


@dataclass(frozen=True)
class Split:
    """Faces with hard labels and, for FER+, soft targets.

    Attributes:
        images: ``(n, 48, 48)`` uint8.
        labels: ``(n,)`` int64 indices into the data set's labels.
        targets: ``(n, C)`` float32 target distributions, or ``None`` for hard labels.
    """

    images: np.ndarray
    labels: np.ndarray
    targets: np.ndarray | None = None


@dataclass(frozen=True)
class TrainData:
    """Splits ``Training`` / ``PublicTest`` / ``PrivateTest``, their label names, and the key
    prefix of the metrics (``fer2013`` or ``ferplus``)."""

    name: str
    labels: tuple[str, ...]
    splits: dict[str, Split]
    metric_prefix: str


def mix_fer2013_labels(votes: np.ndarray, fer_labels: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * votes + weight * one_hot(fer_labels)``: FER+ vote distributions ``(n, C)``
    (rows sum to 1) with FER-2013's single labels (indices into the same columns) mixed in."""
    one_hot = np.eye(votes.shape[1], dtype=np.float32)[fer_labels]
    return ((1.0 - weight) * votes + weight * one_hot).astype(np.float32)


def load_training_data(dataset: str, path: str, input_size: int = 48, fer2013_mix: float = 0.0) -> TrainData:
    """``dataset`` is ``"fer2013"``, ``"ferplus"`` or ``"folder"`` (see
    :mod:`affectlens.datasets.image_folder`; crops resized to ``input_size``). ``fer2013_mix``
    (FER+ only) mixes FER-2013's label into the Training split's targets
    (:func:`mix_fer2013_labels`); validation and test keep the pure vote distributions.

    Raises:
        ValueError: unknown dataset.
        DatasetError: files missing or malformed.
    """
    if dataset == "fer2013":
        from affectlens.datasets import load_fer2013

        raw = load_fer2013(path)
        return TrainData("FER-2013", EMOTIONS, {k: Split(v.images, v.labels) for k, v in raw.items()}, "fer2013")
    if dataset == "ferplus":
        from affectlens.datasets.ferplus import FERPLUS_EMOTIONS, load_ferplus

        order = [FERPLUS_EMOTIONS.index(e) for e in FERPLUS_MODEL_LABELS]  # FER+ columns → our order
        remap = np.argsort(order)  # FER+ index → our index
        splits = {}
        for name in ("Training", "PublicTest", "PrivateTest"):
            s = load_ferplus(path, name)
            votes = s.votes[:, order]
            targets = (votes / np.maximum(votes.sum(1, keepdims=True), 1e-9)).astype(np.float32)
            if fer2013_mix and name == "Training":
                from affectlens.datasets import load_fer2013

                fer = load_fer2013(path, ("Training",))["Training"]
                by_row = dict(zip(fer.rows.tolist(), fer.labels.tolist()))
                # FER-2013's 7 labels are the first 7 of FERPLUS_MODEL_LABELS (same order)
                fer_labels = np.array([by_row[r] for r in s.rows.tolist()], np.int64)
                targets = mix_fer2013_labels(targets, fer_labels, fer2013_mix)
            splits[name] = Split(s.images, remap[s.labels].astype(np.int64), targets)
        return TrainData("FER+", FERPLUS_MODEL_LABELS, splits, "ferplus")
    if dataset == "folder":
        from affectlens.datasets.image_folder import load_image_folder

        ds = load_image_folder(path, size=input_size)
        return TrainData(f"image folder {path}", ds.labels,
                         {k: Split(v.images, v.labels) for k, v in ds.splits.items()}, "folder")
    raise ValueError(f"unknown dataset {dataset!r}; expected 'fer2013', 'ferplus' or 'folder'")
