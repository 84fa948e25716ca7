"""Shared fixtures: the read-only data folder and one recognizer per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AFFECTLENS_SHARED_DATA", ROOT.parent / "shared" / "data"))
IMAGES = SHARED / "media" / "images"
DETECTION = SHARED / "media" / "detection"
VIDEOS = SHARED / "media" / "videos"
FER2013 = SHARED / "fer2013"


def write_face_folder(root: Path, images, labels, per_class: int, sub: str = "") -> dict:
    """``root/sub/<emotion>/<i>.png`` for the first ``per_class`` faces of each class; returns
    relative path → (image, emotion)."""
    import cv2
    import numpy as np

    from affectlens.labels import EMOTIONS

    written = {}
    for c, name in enumerate(EMOTIONS):
        idx = np.flatnonzero(labels == c)[:per_class]
        folder = root / sub / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in idx:
            path = folder / f"{i}.png"
            cv2.imwrite(str(path), images[i])
            written[str(path.relative_to(root))] = (images[i], name)
    return written


def need(path: Path) -> Path:
    """Skip the test when a shared data file is absent (e.g. a clone without ../shared)."""
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def recognizer():
    from affectlens import EmotionRecognizer

    return EmotionRecognizer()


@pytest.fixture(scope="session")
def classifier(recognizer):
    return recognizer.classifier


@pytest.fixture(scope="session")
def single_face_path() -> Path:
    return need(IMAGES / "single_face.jpg")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say loudly how many tests skipped because the shared data folder is missing, and how to fix it."""
    skipped = terminalreporter.stats.get("skipped", [])
    missing = [r for r in skipped if "shared data not available" in str(getattr(r, "longrepr", ""))]
    if missing:
        terminalreporter.write_sep("=", f"{len(missing)} tests skipped: shared data not found at {SHARED}", yellow=True)
        terminalreporter.write_line("Point the tests at the data with AFFECTLENS_SHARED_DATA=/path/to/shared/data "
                                    "(default: ../shared/data beside the repository).")
