"""The one palette and emotion order (palette.json) and the helpers that read it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from affectlens.labels import (EMOTION_COLORS_BGR, EMOTION_COLORS_HEX, EMOTION_ORDER, EMOTIONS, display_order,
                               emotion_color)

PALETTE = Path(__file__).resolve().parents[1] / "src" / "affectlens" / "palette.json"
DASHBOARD_JS = PALETTE.parent / "service" / "static" / "dashboard.js"


def test_palette_file_covers_every_emotion_once():
    data = json.loads(PALETTE.read_text())
    assert set(EMOTIONS) <= set(data["order"]) and len(set(data["order"])) == len(data["order"])
    assert list(data["colors"]) == data["order"]
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in data["colors"].values())
    assert len(set(data["colors"].values())) == len(data["colors"]), "two emotions share a colour"


@pytest.mark.parametrize("label, fmt, want", [
    ("happy", "hex", "#fbc02d"), ("happy", "bgr", (45, 192, 251)), ("disgust", "hex", "#7cb342"),
    ("unreliable", "hex", "#bdbdbd"), (None, "bgr", (189, 189, 189)),
])
def test_emotion_color(label, fmt, want):
    assert emotion_color(label, fmt) == want


def test_emotion_color_rejects_unknown_format():
    with pytest.raises(ValueError, match="expected 'hex' or 'bgr'"):
        emotion_color("happy", "rgb")


def test_bgr_and_hex_agree():
    for k, hx in EMOTION_COLORS_HEX.items():
        b, g, r = EMOTION_COLORS_BGR[k]
        assert f"#{r:02x}{g:02x}{b:02x}" == hx


def test_display_order_puts_unknown_labels_last():
    assert display_order(["neutral", "x", "contempt", "angry"]) == ["angry", "neutral", "contempt", "x"]
    assert tuple(display_order(EMOTIONS)) == EMOTION_ORDER[:7]


def test_annotator_report_and_dashboard_use_the_palette():
    from affectlens.annotate import EMOTION_COLORS
    from affectlens.video.report import _hex

    assert EMOTION_COLORS == EMOTION_COLORS_BGR
    assert all(_hex(k) == v for k, v in EMOTION_COLORS_HEX.items())
    js = DASHBOARD_JS.read_text()
    block = re.search(r"const COLORS = (\{.*?\});", js, re.S)
    assert block, "dashboard.js: COLORS block not found"
    assert json.loads(block.group(1)) == EMOTION_COLORS_HEX, (
        "dashboard.js COLORS differ from src/affectlens/palette.json: paste the file's 'colors' object")


def test_custom_labels_get_a_deterministic_colour_of_their_own():
    from affectlens.labels import fallback_color, label_colors

    # pinned in sdk/web/test/custom.test.mjs too (the SDK's fallbackColor is the same function)
    assert fallback_color("boredom") == "#2eb843" and fallback_color("confusion") == "#b82ea8"
    assert emotion_color("boredom") == "#2eb843" and emotion_color("boredom", "bgr") == (0x43, 0xb8, 0x2e)
    assert label_colors(["happy", "boredom"]) == {"happy": "#fbc02d", "boredom": "#2eb843"}
    colors = [fallback_color(f"class{i}") for i in range(20)]
    assert len(set(colors)) >= 15 and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colors)


def test_the_dashboard_colours_custom_labels_like_python(tmp_path):
    """dashboard.js's fallbackColor, run in Node, gives affectlens.labels.fallback_color's colours."""
    import shutil
    import subprocess

    from affectlens.labels import fallback_color

    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed")
    js = DASHBOARD_JS.read_text()
    fn = re.search(r"function fallbackColor\(label\) \{.*?\n\}", js, re.S).group(0)
    labels = ["boredom", "confusion", "Überraschung", "class7", ""]
    script = tmp_path / "c.js"
    script.write_text(fn + f"\nconsole.log(JSON.stringify({json.dumps(labels)}.map(fallbackColor)));\n")
    out = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [fallback_color(x) for x in labels]
