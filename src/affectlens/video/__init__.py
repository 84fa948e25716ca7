"""Video analysis: sources, frame-by-frame analysis, per-track analytics and reports.

Example:
    >>> from affectlens.video import VideoAnalyzer, run_video
    >>> result = run_video("talk.mp4", "out/", progress=True)
    >>> result.to_pandas().groupby("track_id")["emotion"].agg(lambda s: s.mode()[0])
"""

_LAZY = {"VideoAnalyzer": "analyzer", "VideoOptions": "analyzer", "RunOptions": "session", "RunResult": "session",
         "run_video": "session", "frames_to_pandas": "session"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    """Imported on first use, so ``python -m affectlens.video.<module>`` and light imports stay light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"affectlens.video.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'affectlens.video' has no attribute {name!r}")
