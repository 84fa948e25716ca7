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


# ----- one palette and one emotion order (src/affectlens/palette.json) ------------------------
def _load_palette() -> dict:
    import json
    from importlib import resources

    return json.loads(resources.files("affectlens").joinpath("palette.json").read_text(encoding="utf-8"))


_PALETTE = _load_palette()

#: Display order of emotions (charts, legends, bar panels): the 7 Ekman labels, then contempt.
EMOTION_ORDER: tuple[str, ...] = tuple(_PALETTE["order"])

#: Label → ``#rrggbb``, the one palette of the annotator, report, dashboard and web SDK.
EMOTION_COLORS_HEX: dict[str, str] = dict(_PALETTE["colors"])

#: Colour of "unreliable" faces and missing labels (a custom model's own classes get :func:`fallback_color`).
OTHER_COLOR_HEX = "#bdbdbd"


def _hex_to_bgr(color: str) -> tuple[int, int, int]:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return b, g, r


#: Label → BGR tuple for OpenCV drawing.
EMOTION_COLORS_BGR: dict[str, tuple[int, int, int]] = {k: _hex_to_bgr(v) for k, v in EMOTION_COLORS_HEX.items()}


def emotion_color(label: str | None, fmt: str = "hex"):
    """The palette colour of ``label``; a custom label gets its :func:`fallback_color`, and
    ``"unreliable"`` or no label a light grey.

    Args:
        label: emotion name, e.g. ``"happy"``.
        fmt: ``"hex"`` for ``"#rrggbb"`` or ``"bgr"`` for an OpenCV ``(b, g, r)`` tuple.

    Returns:
        The colour in the requested format.

    Raises:
        ValueError: unknown ``fmt``.

    Example:
        >>> emotion_color("happy"), emotion_color("happy", "bgr")
        ('#fbc02d', (45, 192, 251))
    """
    if not label or label == "unreliable":
        hexa = OTHER_COLOR_HEX
    else:
        hexa = EMOTION_COLORS_HEX.get(label) or fallback_color(label)
    if fmt == "hex":
        return hexa
    if fmt == "bgr":
        return _hex_to_bgr(hexa)
    raise ValueError(f"fmt: expected 'hex' or 'bgr', got {fmt!r}")


def fallback_color(label: str) -> str:
    """A deterministic ``#rrggbb`` for a label outside the palette (a custom model's own class).

    FNV-1a (32 bit) of the label's UTF-8 bytes picks the hue; saturation 0.6 and lightness 0.45
    keep it readable on light and dark backgrounds. The web SDK's ``fallbackColor`` is the same
    function, so Python, the browser and an exported bundle's spec show one colour per label.

    Example:
        >>> fallback_color("boredom") == fallback_color("boredom")
        True
    """
    h = 0x811C9DC5
    for byte in str(label).encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    hue, sat, light = h % 360, 0.6, 0.45
    c = (1 - abs(2 * light - 1)) * sat
    x = c * (1 - abs((hue / 60) % 2 - 1))
    m = light - c / 2
    sector = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][hue // 60]
    return "#" + "".join(f"{int((v + m) * 255 + 0.5):02x}" for v in sector)


def label_colors(labels) -> dict[str, str]:
    """``label → #rrggbb`` for a model's labels: the palette's colour, else :func:`fallback_color`."""
    return {lab: emotion_color(lab) for lab in labels}


def display_order(labels) -> list[str]:
    """``labels`` sorted by :data:`EMOTION_ORDER`, labels outside it last in their given order."""
    rank = {k: i for i, k in enumerate(EMOTION_ORDER)}
    return sorted(labels, key=lambda k: (rank.get(k, len(rank)), list(labels).index(k)))
