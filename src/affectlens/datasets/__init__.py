"""Readers for the public data sets AffectLens trains and evaluates on (numpy only, no PyTorch)."""

from affectlens.datasets.fer2013 import FER2013_SPLITS, FerSplit, load_fer2013

__all__ = ["FER2013_SPLITS", "FerSplit", "load_fer2013"]
