"""AffectLens error hierarchy. Every message names the input and the problem."""

from __future__ import annotations


class AffectLensError(Exception):
    """Base class of every error AffectLens raises on purpose."""


class InvalidImageError(AffectLensError, ValueError):
    """An image that cannot be read or analysed (missing, corrupt, unsupported, too large)."""


class ModelLoadError(AffectLensError):
    """A model file or its spec is missing, unreadable, or fails its sha256 check."""


class DatasetError(AffectLensError, ValueError):
    """A data set file or folder is missing or malformed."""


class InvalidVideoError(AffectLensError, ValueError):
    """A video source that cannot be opened or decoded."""


class ResumeMismatchError(AffectLensError, ValueError):
    """``--resume`` into an output folder that holds the run of another video."""
