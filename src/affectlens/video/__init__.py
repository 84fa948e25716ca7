"""Video analysis: sources, frame-by-frame analysis, per-track analytics and reports.

Example:
    >>> from affectlens.video import VideoAnalyzer, run_video
    >>> result = run_video("talk.mp4", "out/", progress=True)
    >>> result.to_pandas().groupby("track_id")["emotion"].agg(lambda s: s.mode()[0])
"""

from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
from affectlens.video.session import RunOptions, RunResult, frames_to_pandas, run_video

__all__ = ["VideoAnalyzer", "VideoOptions", "RunOptions", "RunResult", "run_video", "frames_to_pandas"]
