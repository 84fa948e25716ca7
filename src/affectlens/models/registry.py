"""Find emotion models by name or path.

Shipped models live in ``affectlens/models/weights/`` as ``NAME.onnx`` + ``NAME.json``; a
name resolves there. A path may point at a spec JSON, at an ONNX file with its spec beside it
(same stem), or at a folder holding exactly one spec (or, like the model folders
``affectlens train --data`` writes, a ``model.json`` beside other specs).
"""

from __future__ import annotations

from pathlib import Path

from affectlens.errors import ModelLoadError
from affectlens.models.spec import ModelSpec, load_spec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: The model :class:`~affectlens.EmotionRecognizer` uses when none is named: the int8 file of
#: a two-member ensemble with mirror and zoom test-time views (MODEL_CARD.md); ``fer-vgg48s`` /
#: ``fer-vgg48s-int8`` are the faster single-network variants.
DEFAULT_MODEL = "fer-vgg48s-ens-zoom-int8"


def available_models() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.json"))


def resolve_spec(name_or_path: str | Path | ModelSpec | None = None) -> ModelSpec:
    """The spec of a shipped model name, a spec/ONNX path or a folder.

    Raises:
        ModelLoadError: nothing found, or the spec is unreadable.
    """
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    ref = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    p = Path(ref)
    if p.suffix.lower() == ".json":
        return load_spec(p)
    if p.suffix.lower() == ".onnx":
        if not p.exists():
            raise ModelLoadError(f"{p}: model file not found")
        spec_path = p.with_suffix(".json")
        if not spec_path.exists():
            raise ModelLoadError(f"{p}: no spec JSON beside the model (expected {spec_path.name}); "
                                 "the spec says how to feed the model and cannot be guessed")
        return load_spec(spec_path)
    if p.is_dir():
        specs = sorted(p.glob("*.json"))
        specs = [s for s in specs if s.with_suffix(".onnx").exists()] or specs
        if len(specs) > 1 and p / "model.json" in specs:
            specs = [p / "model.json"]  # a custom model folder (affectlens train --data): fp32 + int8
        if len(specs) != 1:
            raise ModelLoadError(f"{p}: expected exactly one model spec JSON in the folder (or a model.json), "
                                 f"found {len(specs)}")
        return load_spec(specs[0])
    shipped = WEIGHTS_DIR / f"{ref}.json"
    if shipped.exists():
        return load_spec(shipped)
    if p.exists():
        raise ModelLoadError(f"{p}: not a model (give a spec .json, an .onnx with its spec beside it, or a folder)")
    raise ModelLoadError(f"{ref}: unknown model; shipped models: {', '.join(available_models()) or 'none'}; "
                         "or give a path to a spec .json / .onnx")
