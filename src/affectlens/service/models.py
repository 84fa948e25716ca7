"""The emotion models a server may run, chosen per API key or per request by name.

The server is started with its models (``--model``, ``--allow-model NAME_OR_DIR``, ``--models-dir``);
a client names one of them (``model`` on ``POST /v1/images:analyze``, ``POST /v1/videos`` or in the
WebSocket hello), never a path: a request can only pick from this list. Each model is loaded once
and kept in a small LRU cache (:attr:`ModelCatalog.max_loaded`).

Names: a shipped model is known by its name (``ferplus-vgg48s-ens-zoom-int8``); a model folder
(``affectlens train --data ... --out DIR``) by the folder's name; ``default`` always means the
server's default model.

Example:
    >>> cat = ModelCatalog.from_config(ServiceConfig(allowed_models=("models/ckplus-ft",)))
    >>> cat.entry("ckplus-ft").sha256
    'ddb6bb...'
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from affectlens.service.security import ServiceError

#: The name that always means the server's default model.
DEFAULT_ALIAS = "default"


@dataclass(frozen=True)
class ModelEntry:
    """One model a server may run.

    Attributes:
        name: what clients call it (a shipped model's name or a model folder's name).
        ref: what the library loads (a shipped name or a spec path); never shown to clients.
        spec_name: the name in the model's spec.
        sha256: sha256 of the ONNX file (what results report).
        labels: the model's output labels, in order.
        choice: why this file runs (e.g. ``int8: x86 int8 path avx2``).
    """

    name: str
    ref: str
    spec_name: str
    sha256: str
    labels: tuple[str, ...]
    choice: str

    def public(self) -> dict:
        """What clients see: name, spec name, sha256 and labels (no server path)."""
        return {"name": self.name, "spec_name": self.spec_name, "sha256": self.sha256, "labels": list(self.labels)}


def _entry(ref: str | None, name: str | None = None) -> ModelEntry:
    """Resolve one configured model (a shipped name, ``None`` for the default, or a path).

    Raises:
        ValueError: the model cannot be found or read (the message names it and how to fix it).
    """
    from affectlens.errors import ModelLoadError
    from affectlens.models.registry import resolve_spec, select_variant
    from affectlens.models.spec import verify_model_file

    path = Path(ref) if ref else None
    try:
        if path is not None and path.exists():
            spec = resolve_spec(path)
            chosen, choice = str((spec.spec_path or path).resolve()), "given as a folder or file"
            public = name or (path.name if path.is_dir() else path.stem)
        else:
            chosen, choice = select_variant(ref)
            spec = resolve_spec(chosen)
            public = name or chosen
        verify_model_file(spec)
    except (ModelLoadError, ValueError) as exc:
        raise ValueError(f"model {ref or DEFAULT_ALIAS!r}: {exc}; give a shipped model name or a model folder "
                         "(affectlens train --data ... --out DIR)") from None
    return ModelEntry(public, chosen, spec.name, spec.sha256, tuple(spec.labels), choice)


class ModelCatalog:
    """The models a server may run, and a bounded cache of loaded recognizers.

    Args:
        entries: the allowed models; the first is the default.
        threads: ONNX Runtime threads per loaded model.
        max_loaded: recognizers kept loaded at once (the least recently used is dropped).

    Raises:
        ValueError: two models with the same name.
    """

    def __init__(self, entries: list[ModelEntry], threads: int = 0, max_loaded: int = 4):
        self.entries: dict[str, ModelEntry] = {}
        for e in entries:
            if e.name in self.entries and self.entries[e.name].sha256 != e.sha256:
                raise ValueError(f"two allowed models are both named {e.name!r}; rename one of the folders")
            self.entries.setdefault(e.name, e)
        self.default = entries[0]
        self.threads, self.max_loaded = threads, max(1, max_loaded)
        self._loaded: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> "ModelCatalog":
        """The catalogue of a :class:`~affectlens.service.config.ServiceConfig`: ``model`` (the default),
        ``allowed_models`` and every model folder under ``models_dir``.

        Raises:
            ValueError: a model that cannot be found or read, or a key whose model is not allowed.
        """
        entries = [_entry(config.model)]
        for ref in config.allowed_models:
            entries.append(_entry(str(ref)))
        if config.models_dir is not None:
            folder = Path(config.models_dir)
            if not folder.is_dir():
                raise ValueError(f"models_dir {folder}: no such folder (it holds one model folder per model)")
            for sub in sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.json"))):
                entries.append(_entry(str(sub)))
        catalog = cls(entries, threads=config.threads, max_loaded=config.max_loaded_models)
        for key in config.load_keys():
            if key.model is not None and key.model not in catalog.entries and key.model != DEFAULT_ALIAS:
                raise ValueError(f"API key {key.key_id!r} names model {key.model!r}, which this server does not "
                                 f"serve; allowed: {', '.join(catalog.names())} (add it with --allow-model)")
        return catalog

    def names(self) -> list[str]:
        return list(self.entries)

    def entry(self, name: str | None) -> ModelEntry:
        """The allowed model called ``name`` (``None`` or ``"default"``: the default).

        Raises:
            ServiceError: 422 ``unknown_model`` naming the allowed models (a path is never loaded).
        """
        if name is None or name == "" or name == DEFAULT_ALIAS:
            return self.default
        found = self.entries.get(name)
        if found is None:
            raise ServiceError(422, "unknown_model", f"model {name[:80]!r} is not served here; allowed: "
                               f"{', '.join(self.names())} (or 'default' = {self.default.name})")
        return found

    def choose(self, requested: str | None, key_default: str | None) -> ModelEntry:
        """The model of a request: the one it names, else its API key's default, else the server's."""
        return self.entry(requested if requested not in (None, "") else key_default)

    def recognizer(self, entry: ModelEntry):
        """The loaded :class:`~affectlens.recognizer.EmotionRecognizer` of ``entry`` (loaded once, cached)."""
        with self._lock:
            rec = self._loaded.get(entry.name)
            if rec is not None:
                self._loaded.move_to_end(entry.name)
                return rec
        from affectlens.recognizer import EmotionRecognizer

        rec = EmotionRecognizer(model=entry.ref, threads=self.threads)  # outside the lock: loading takes a while
        with self._lock:
            rec = self._loaded.setdefault(entry.name, rec)
            self._loaded.move_to_end(entry.name)
            while len(self._loaded) > self.max_loaded:
                self._loaded.popitem(last=False)
        return rec

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._loaded)


def check_smoother(smooth: str | None, entry: ModelEntry) -> None:
    """Refuse ``smooth=learned`` (422 ``invalid_option``) for a model no shipped temporal model was
    trained for, before any work is queued."""
    if smooth != "learned":
        return
    from affectlens.errors import ModelLoadError
    from affectlens.temporal.learned import pick_temporal_model

    try:
        pick_temporal_model(entry.labels, entry.spec_name)
    except ModelLoadError:
        raise ServiceError(422, "invalid_option", f"smooth=learned: no temporal model was trained for the labels "
                           f"of model {entry.name!r} ({', '.join(entry.labels)}); use smooth=hmm, ema or "
                           "moving-average") from None
