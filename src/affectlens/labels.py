"""Emotion label sets and the mappings between data sets and our canonical order."""

from __future__ import annotations

#: The 7 Ekman-style emotions AffectLens reports, in canonical (alphabetical) order.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

#: FER-2013's own label order (column ``emotion`` 0..6 of ``fer2013.csv``).
FER2013_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: FER+ vote columns, in the order of ``fer2013new.csv``.
FERPLUS_COLUMNS: tuple[str, ...] = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF",
)

#: FER+ emotion names mapped onto our vocabulary (contempt has no counterpart in :data:`EMOTIONS`).
FERPLUS_TO_EMOTION: dict[str, str] = {
    "neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
    "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt",
}


def fer2013_to_canonical() -> list[int]:
    """Index map: ``canonical_index = map[fer2013_index]``."""
    return [EMOTIONS.index(name) for name in FER2013_LABELS]
