"""Model specs: the JSON that sits beside every ``.onnx`` and says how to feed and read it.

Preprocessing is never guessed from file names or tensor shapes: the classifier reads input
size, channels, mean/std, alignment template and labels from here, and checks the model
file's sha256 before loading it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from affectlens.errors import ModelLoadError

SPEC_VERSION = 1


@dataclass(frozen=True)
class InputSpec:
    """How a face crop becomes the model's input tensor.

    Attributes:
        name: ONNX input name.
        size_hw: crop height and width in pixels.
        color: ``"gray"`` (1 channel) or ``"rgb"`` / ``"bgr"`` (3 channels).
        scale: multiplies uint8 pixels first (1/255 maps them to [0, 1]).
        mean / std: per-channel normalisation after scaling.
        layout: ``"NCHW"``.
    """

    name: str
    size_hw: tuple[int, int]
    color: str
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str = "NCHW"

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3


@dataclass(frozen=True)
class AlignmentSpec:
    """Where the 5 landmarks (right eye, left eye, nose, right and left mouth corner, as seen
    in the image) land in the crop, as fractions of its width and height.

    Attributes:
        points_norm: five ``(x, y)`` pairs in [0, 1].
        source: how the template was obtained.
        roll_dead_band_deg: roll (in-plane rotation, degrees, in [0, 90)) the alignment leaves
            in place: a face tilted by ``a`` degrees is turned back by ``sign(a) * max(0,
            |a| - band)`` only (:func:`affectlens.alignment.limit_roll`). 0 (absent in the JSON)
            aligns fully; models trained on unaligned crops (FER-2013, FER+) use 15.
    """

    points_norm: tuple[tuple[float, float], ...]
    source: str = ""
    roll_dead_band_deg: float = 0.0

    def __post_init__(self):
        band = self.roll_dead_band_deg
        if isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 <= band < 90:
            raise ValueError(f"roll_dead_band_deg must be a number of degrees in [0, 90), got {band!r}; write e.g. "
                             "15 (the roll a model trained on unaligned crops keeps), or 0 / leave it out to align fully")
        object.__setattr__(self, "roll_dead_band_deg", float(band))


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to run and judge one emotion model.

    Attributes:
        name: registry name.
        file: ONNX file name, relative to the spec's folder.
        sha256: hex digest of that file.
        labels: output column names, in order.
        input: see :class:`InputSpec`.
        alignment: see :class:`AlignmentSpec`.
        output_name / output_kind: ONNX output holding ``"probabilities"`` (rows sum to 1).
        temperature: the calibration temperature already folded into the model (for the record).
        tta: test-time augmentations folded into the model (e.g. ``["hflip"]``).
        metrics: measured figures, e.g. ``{"fer2013_private_test": {"accuracy": 0.70}}``.
        training: how it was trained (data, epochs, commands).
        license / description: free text.
        root: folder the spec was read from (not serialised).
        spec_path: the JSON file the spec was read from, ``None`` when built in code (not serialised).
    """

    name: str
    file: str
    sha256: str
    labels: tuple[str, ...]
    input: InputSpec
    alignment: AlignmentSpec
    output_name: str = "probs"
    output_kind: str = "probabilities"
    temperature: float = 1.0
    tta: tuple[str, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    description: str = ""
    format_version: int = SPEC_VERSION
    root: Path | None = field(default=None, compare=False, repr=False)
    spec_path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def model_path(self) -> Path:
        return (self.root or Path(".")) / self.file

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("root")
        d.pop("spec_path")
        return d

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _require(d: dict, key: str, where: Path) -> Any:
    if key not in d:
        raise ModelLoadError(f"{where}: model spec lacks the field {key!r}")
    return d[key]


def load_spec(path: str | Path) -> ModelSpec:
    """Read a spec JSON.

    Raises:
        ModelLoadError: missing or unreadable file, invalid JSON, or missing fields.
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{p}: model spec not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{p}: unreadable model spec ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{p}: expected a JSON object, got {type(raw).__name__}")
    inp = _require(raw, "input", p)
    ali = _require(raw, "alignment", p)
    try:
        input_spec = InputSpec(name=inp["name"], size_hw=tuple(inp["size_hw"]), color=inp["color"],
                               scale=float(inp["scale"]), mean=tuple(inp["mean"]), std=tuple(inp["std"]),
                               layout=inp.get("layout", "NCHW"))
        points = tuple(tuple(float(v) for v in pt) for pt in ali["points_norm"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{p}: malformed input/alignment section ({exc!r})") from None
    if input_spec.color not in ("gray", "rgb", "bgr"):
        raise ModelLoadError(f"{p}: input.color must be gray, rgb or bgr, got {input_spec.color!r}")
    if len(points) != 5 or any(len(pt) != 2 for pt in points):
        raise ModelLoadError(f"{p}: alignment.points_norm must hold 5 (x, y) pairs")
    try:
        alignment = AlignmentSpec(points_norm=points, source=ali.get("source", ""),
                                  roll_dead_band_deg=ali.get("roll_dead_band_deg", 0.0))
    except ValueError as exc:
        raise ModelLoadError(f"{p}: alignment.{exc}") from None
    return ModelSpec(
        name=_require(raw, "name", p), file=_require(raw, "file", p), sha256=_require(raw, "sha256", p),
        labels=tuple(_require(raw, "labels", p)), input=input_spec,
        alignment=alignment,
        output_name=raw.get("output_name", "probs"), output_kind=raw.get("output_kind", "probabilities"),
        temperature=float(raw.get("temperature", 1.0)), tta=tuple(raw.get("tta", ())),
        metrics=raw.get("metrics", {}), training=raw.get("training", {}), license=raw.get("license", ""),
        description=raw.get("description", ""), format_version=int(raw.get("format_version", SPEC_VERSION)),
        root=p.parent, spec_path=p,
    )


def verify_model_file(spec: ModelSpec) -> Path:
    """Check that the spec's model file exists and matches its sha256.

    Raises:
        ModelLoadError: missing, unreadable, or a different file than the spec describes.
    """
    path = spec.model_path
    try:
        digest = sha256_of(path)
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: model file not found (named by spec {spec.name!r})") from None
    except OSError as exc:
        raise ModelLoadError(f"{path}: unreadable model file ({exc})") from None
    if digest != spec.sha256:
        raise ModelLoadError(
            f"{path}: sha256 mismatch: the spec expects {spec.sha256[:12]}…, the file has {digest[:12]}…; "
            "the file is corrupt or not the model this spec describes"
        )
    return path
