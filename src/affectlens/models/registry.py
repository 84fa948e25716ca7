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
#: The model family :class:`~affectlens.EmotionRecognizer` uses when none is named: two
#: networks trained on FER+'s 10-annotator vote shares, with mirror and zoom test-time views
#: (MODEL_CARD.md). It reads real, unposed faces far better than the models trained to
#: FER-2013's single labels (in-the-wild set, docs/wild-eval.md), which call many calm faces
#: sad. Its fp32 file is ``DEFAULT_MODEL``; :func:`select_variant` picks it or its ``-int8``
#: sibling for this CPU.
DEFAULT_MODEL = "ferplus-vgg48s-ens-zoom"
#: The family trained to FER-2013's own labels, kept by name for benchmark comparison
#: (73.4% PrivateTest); not for real faces.
FER2013_BENCHMARK_MODEL = "fer-vgg48s-ens-zoom"
#: Precision choices: ``auto`` = int8 where this CPU has an x86 int8 path, else fp32.
PRECISIONS = ("auto", "int8", "fp32")


def available_models() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.json"))


def select_variant(name: str | None = None, precision: str = "auto") -> tuple[str, str]:
    """The shipped file to run for model ``name`` (``None`` = the default family) on this CPU.

    ``auto`` keeps an explicitly named model as it is, and for the default family takes the
    int8 file where the CPU has an x86 int8 path (AVX2, VNNI or AMX; our int8 files use 7-bit
    weights, accurate on all three: MODEL_CARD.md) and fp32 elsewhere (e.g. Arm, where
    ONNX Runtime's int8 kernels are not faster for these small networks). ``int8``/``fp32``
    force the variant of the named (or default) model.

    Returns:
        ``(model name, reason)``, e.g. ``("fer-vgg48s-ens-zoom-int8", "int8: x86 int8 path avx2")``.

    Raises:
        ValueError: unknown precision, or no shipped variant of that precision.
    """
    from affectlens.cpu import cpu_info

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if name is not None and precision == "auto":
        return name, "named explicitly"
    if name is not None and Path(name).is_dir():  # a model folder (affectlens train --data): model[-int8].json
        chosen = Path(name) / ("model-int8.json" if precision == "int8" else "model.json")
        if not chosen.exists():
            raise ValueError(f"{name}: this model folder has no {precision} file ({chosen.name}); "
                             "use --precision auto or the other precision")
        return str(chosen), f"{precision}: asked for"
    base = (name or DEFAULT_MODEL).removesuffix("-int8")
    path = cpu_info().int8_path
    if precision == "auto":
        precision = "int8" if path in ("avx2", "vnni", "amx") else "fp32"
        reason = f"{precision}: x86 int8 path {path}" if precision == "int8" else f"fp32: no x86 int8 path ({path})"
    else:
        reason = f"{precision}: asked for"
    chosen = f"{base}-int8" if precision == "int8" else base
    if not (WEIGHTS_DIR / f"{chosen}.json").exists():
        if name is None or precision == "fp32":
            raise ValueError(f"{chosen}: no shipped {precision} variant; shipped: {', '.join(available_models())}")
        raise ValueError(f"{base}: has no shipped int8 variant; use --precision fp32 or auto")
    return chosen, reason


def resolve_spec(name_or_path: str | Path | ModelSpec | None = None) -> ModelSpec:
    """The spec of a shipped model name, a spec/ONNX path or a folder.

    Raises:
        ModelLoadError: nothing found, or the spec is unreadable.
    """
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    ref = select_variant()[0] if name_or_path is None else str(name_or_path)
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
        if (p / "dataset.json").exists() and not (p / "model.json").exists():
            raise ModelLoadError(f"{p}: a prepared data set, not a model; make a model from it with "
                                 f"`affectlens train --data {p} --base default --out MODEL_DIR`")
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
    if any(sep in ref for sep in ("/", "\\")) or ref.startswith("."):
        raise ModelLoadError(f"{ref}: no such file or folder (give a model folder from `affectlens train --data`, "
                             "a spec .json or an .onnx with its spec beside it)")
    raise ModelLoadError(f"{ref}: unknown model; shipped models: {', '.join(available_models()) or 'none'}; "
                         "or give a model folder, a spec .json or an .onnx path")
