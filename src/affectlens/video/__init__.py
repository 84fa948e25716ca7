"""Video analysis: sources, frame-by-frame analysis, per-track analytics and reports."""
