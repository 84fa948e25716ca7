"""Per-item figures for the batch summary, computed once by the worker from the item's rows.

- ``shares``: of all faces in all analysed frames, the share whose (smoothed) top emotion is
  each label.
- ``engagement``: for a video, the mean of its tracks' engagement (presence x frontal attention
  x expressiveness, see :mod:`affectlens.video.aggregate`) weighted by each track's lifespan in
  frames; for an image, the mean per-face engagement (attention x expressiveness; a still has
  no presence over time). ``None`` when there is no face.
"""

from __future__ import annotations

from typing import Sequence


def item_stats(rows: list[dict], labels: Sequence[str], video_summary: dict | None = None) -> dict:
    """``{"faces", "shares": {label: share}, "engagement"}`` for one item's ``frame_rows``."""
    n = len(rows)
    counts = {k: 0 for k in labels}
    for r in rows:
        counts[r["emotion"]] = counts.get(r["emotion"], 0) + 1
    shares = {k: (v / n if n else 0.0) for k, v in counts.items()}
    engagement = None
    tracks = (video_summary or {}).get("tracks") or []
    if video_summary is not None:
        weight = sum(t["lifespan_frames"] for t in tracks if t.get("engagement") is not None)
        if weight:
            engagement = sum(t["engagement"] * t["lifespan_frames"] for t in tracks
                             if t.get("engagement") is not None) / weight
    elif n:
        vals = [r["engagement"] for r in rows if r.get("engagement") is not None]
        engagement = sum(vals) / len(vals) if vals else None
    return {"faces": n, "shares": shares, "engagement": None if engagement is None else round(engagement, 4)}
