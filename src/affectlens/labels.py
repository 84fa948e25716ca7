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


#: Common spellings of emotion names in data sets and labelling tools, mapped onto our names
#: (``anger`` → ``angry``, ``happiness`` → ``happy``, ...). Keys are lower case.
LABEL_SYNONYMS: dict[str, str] = {
    "anger": "angry", "angry": "angry", "mad": "angry", "an": "angry",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "fe": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "smile": "happy", "ha": "happy",
    "neutral": "neutral", "calm": "neutral", "ne": "neutral",
    "sad": "sad", "sadness": "sad", "unhappy": "sad", "sa": "sad",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise",
    "contempt": "contempt", "contemptuous": "contempt",
}


def canonical_label(name: str) -> str:
    """Our name for a label: a known synonym maps onto :data:`EMOTIONS` (or ``contempt``);
    any other name (a class of your own, e.g. ``confusion``) is kept, lower-cased and stripped.

    Example:
        >>> canonical_label("Happiness"), canonical_label("boredom")
        ('happy', 'boredom')
    """
    key = str(name).strip().lower()
    return LABEL_SYNONYMS.get(key, key)
