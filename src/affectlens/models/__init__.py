"""Emotion model specs, the registry of shipped models, and loading."""

from affectlens.models.registry import (DEFAULT_MODEL, FER2013_BENCHMARK_MODEL, PRECISIONS, WEIGHTS_DIR, available_models, resolve_spec,
                                        select_variant)
from affectlens.models.spec import AlignmentSpec, InputSpec, ModelSpec, load_spec, sha256_of, verify_model_file

__all__ = ["DEFAULT_MODEL", "FER2013_BENCHMARK_MODEL", "PRECISIONS", "WEIGHTS_DIR", "select_variant", "available_models", "resolve_spec", "AlignmentSpec", "InputSpec",
           "ModelSpec", "load_spec", "sha256_of", "verify_model_file"]
