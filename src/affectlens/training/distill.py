"""Knowledge distillation targets: a teacher model's probabilities on the training faces.

The teacher is any exported model (``.onnx`` with its spec JSON beside it), typically an
ensemble written by :mod:`affectlens.training.ensemble`. Its probabilities on the
un-augmented Training faces (its own mirror TTA and temperature included) are computed once
and cached next to the run (``teacher_probs.npz``, keyed by the teacher's sha256).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from affectlens.errors import ModelLoadError
from affectlens.preprocess import to_model_input

logger = logging.getLogger(__name__)


def teacher_probabilities(teacher: str | Path, images: np.ndarray, labels: tuple[str, ...],
                          cache_dir: str | Path, batch_size: int = 512) -> np.ndarray:
    """``(n, C)`` float32 probabilities of ``teacher`` on ``images`` (``(n, H, W)`` uint8 faces).

    Raises:
        ModelLoadError: the teacher or its spec cannot be read, or its labels differ from ``labels``.
    """
    import onnxruntime as ort

    from affectlens.models.registry import resolve_spec
    from affectlens.models.spec import verify_model_file

    spec = resolve_spec(teacher)
    path = verify_model_file(spec)
    if tuple(spec.labels) != tuple(labels):
        raise ModelLoadError(f"{path}: teacher labels {list(spec.labels)} differ from the data's {list(labels)}")
    cache = Path(cache_dir) / "teacher_probs.npz"
    if cache.is_file():
        with np.load(cache) as z:
            if str(z["sha256"]) == spec.sha256 and z["probs"].shape[0] == len(images):
                return z["probs"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logger.info("teacher %s: predicting %d training faces", path.name, len(images))
    out = []
    for i in range(0, len(images), batch_size):
        x = to_model_input(images[i:i + batch_size], spec.input)
        out.append(sess.run([spec.output_name], {spec.input.name: x})[0])
    probs = np.concatenate(out).astype(np.float32)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    np.savez(cache, probs=probs, sha256=spec.sha256)
    return probs


def distillation_targets(teacher_probs: np.ndarray, hard_labels: np.ndarray, soft_targets: np.ndarray | None,
                         alpha: float) -> np.ndarray:
    """``alpha * teacher + (1 - alpha) * data`` where the data part is the vote distribution
    (``soft_targets``) or the one-hot label. Rows sum to 1."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distill_alpha must be in [0, 1], got {alpha}")
    c = teacher_probs.shape[1]
    data = soft_targets if soft_targets is not None else np.eye(c, dtype=np.float32)[hard_labels]
    return (alpha * teacher_probs + (1.0 - alpha) * data).astype(np.float32)
