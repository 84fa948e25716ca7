"""Sample photos that ship inside a registry package, for demos that need no data download.

The images come from the PyPI package ``insightface`` (MIT; installed with ``--no-deps`` by
the Makefile, never imported), whose ``data/images`` folder holds a group photo.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SAMPLE_NAMES = ("t1.jpg", "Tom_Hanks_54745.png")


def sample_images() -> list[Path]:
    """Paths of the bundled sample photos that are installed (empty list when none)."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    return [root / n for n in SAMPLE_NAMES if (root / n).is_file()]
