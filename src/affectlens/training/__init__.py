"""Training of AffectLens emotion classifiers (needs the ``train`` extra: PyTorch).

Nothing in this package is imported by the runtime pipeline.
"""
