"""Emotion classification of faces with an ONNX model described by its spec JSON.

The spec says everything: crop size, colour, scale, mean/std, alignment template, labels and
the file's sha256. Nothing is inferred from tensor shapes or file names.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from affectlens.alignment import align_faces
from affectlens.errors import ModelLoadError
from affectlens.models.registry import resolve_spec
from affectlens.models.spec import ModelSpec, verify_model_file
from affectlens.preprocess import to_model_input
from affectlens.runtime import session_options


class EmotionClassifier:
    """Probabilities over the spec's labels for aligned faces.

    Args:
        model: shipped model name, spec/ONNX path, folder, or a :class:`ModelSpec`
            (``None`` = the default model).
        threads: ONNX Runtime intra-op threads (0 = the CPUs this process may use; see :mod:`affectlens.runtime`).
        batch_size: faces per ONNX run; larger inputs are split.

    Raises:
        ModelLoadError: spec or model missing, corrupt, sha256 mismatch, or the ONNX graph does
            not match the spec (input name/size, output width).

    Example:
        >>> clf = EmotionClassifier()
        >>> probs = clf.classify(image_bgr, landmarks)   # (n, 7), rows sum to 1
    """

    def __init__(self, model: str | ModelSpec | None = None, threads: int = 0, batch_size: int = 64):
        self.spec = resolve_spec(model)
        path = verify_model_file(self.spec)
        try:
            self._session = ort.InferenceSession(str(path), session_options(threads),
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's exception types are not public
            raise ModelLoadError(f"{path}: ONNX Runtime cannot load the model ({exc})") from None
        self._check_graph(path)
        self.batch_size = max(1, int(batch_size))

    def _check_graph(self, path) -> None:
        spec = self.spec
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        if spec.input.name not in inputs:
            raise ModelLoadError(f"{path}: the spec names input {spec.input.name!r}, the model has {list(inputs)}")
        if spec.output_name not in outputs:
            raise ModelLoadError(f"{path}: the spec names output {spec.output_name!r}, the model has {list(outputs)}")
        shape = inputs[spec.input.name].shape
        want = (spec.input.channels, *spec.input.size_hw)
        if len(shape) != 4 or any(isinstance(s, int) and s != w for s, w in zip(shape[1:], want)):
            raise ModelLoadError(f"{path}: model input shape {shape} does not match the spec's (N, {want})")
        width = outputs[spec.output_name].shape[-1]
        if isinstance(width, int) and width != len(spec.labels):
            raise ModelLoadError(f"{path}: model outputs {width} classes, the spec lists {len(spec.labels)} labels")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def crop_size_hw(self) -> tuple[int, int]:
        return tuple(self.spec.input.size_hw)

    def align(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """``(n, H, W, 3)`` uint8 BGR crops warped to the spec's template, leaving the spec's
        roll dead band in place (``alignment.roll_dead_band_deg``)."""
        ali = self.spec.alignment
        return align_faces(image_bgr, landmarks, ali.points_norm, self.crop_size_hw, ali.roll_dead_band_deg)

    def preprocess(self, crops: np.ndarray) -> np.ndarray:
        """Crops → the model's float32 NCHW input (:func:`affectlens.preprocess.to_model_input`).

        Args:
            crops: ``(n, H, W, 3)`` uint8 BGR, or ``(n, H, W)`` uint8 grayscale (e.g. FER-2013
                faces), any size (resized to the spec's).

        Raises:
            ValueError: not a stack of gray or 3-channel crops.
        """
        return to_model_input(crops, self.spec.input)

    def classify_crops(self, crops: np.ndarray) -> np.ndarray:
        """``(n, len(labels))`` float32 probabilities for aligned crops (see :meth:`preprocess`)."""
        x = self.preprocess(crops)
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        outs = [self._session.run([self.spec.output_name], {self.spec.input.name: x[i:i + self.batch_size]})[0]
                for i in range(0, len(x), self.batch_size)]
        out = np.concatenate(outs).astype(np.float32)
        if self.spec.output_kind == "logits":
            out = np.exp(out - out.max(1, keepdims=True))
            out /= out.sum(1, keepdims=True)
        return out

    def classify(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Align every face by its 5 landmarks and classify them in one batch."""
        return self.classify_crops(self.align(image_bgr, landmarks))
