"""The self-contained HTML report."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from affectlens.faces import Faces, FrameInfo
from affectlens.labels import EMOTIONS
from affectlens.video.aggregate import NOTICE, aggregate_intervals, summarize
from affectlens.video.report import render_html_report, write_html_report

FRONTAL = np.array([[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]])
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Checker(HTMLParser):
    """Collects unbalanced tags and every src/href value."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.add(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href")]

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")


def parse(text: str) -> Checker:
    c = Checker()
    c.feed(text)
    c.close()
    assert c.errors == [] and c.stack == [], (c.errors, c.stack)
    return c


def make_frames(n: int, tracks: dict[int, range], dt_ms: float = 40.0) -> list[Faces]:
    rng = np.random.default_rng(1)
    frames = []
    for i in range(n):
        tids = [t for t, span in tracks.items() if i in span]
        info = FrameInfo("clip.mp4", i, i * dt_ms, (480, 640))
        if not tids:
            frames.append(Faces.empty(EMOTIONS, info))
            continue
        p = rng.dirichlet(np.ones(7) * 0.5, len(tids))
        lm = np.stack([FRONTAL + 150 * k for k in range(len(tids))])
        boxes = np.concatenate([lm.min(1) - 10, lm.max(1) + 10], 1)
        frames.append(Faces(boxes, np.full(len(tids), 0.9), lm, p, EMOTIONS, tids,
                            {"probs_raw": rng.dirichlet(np.ones(7), len(tids))}, info))
    return frames


def report(frames, interval_s=0.4, **kw) -> str:
    rows = aggregate_intervals(frames, interval_s)
    return render_html_report(frames, rows, summarize(frames, rows), **kw)


def assert_self_contained(text: str, checker: Checker) -> None:
    assert "http://" not in text and "https://" not in text
    assert all(not re.match(r"^[a-z]+:|^//", link) for link in checker.links), checker.links
    assert "<script" not in text


def test_report_with_several_tracks(tmp_path):
    frames = make_frames(30, {1: range(0, 30), 2: range(5, 15), 7: range(10, 28)})
    rows = aggregate_intervals(frames, 0.4)
    path = write_html_report(tmp_path / "sub" / "report.html", frames, rows, summarize(frames, rows),
                             title="Call <b>&</b> demo")
    text = path.read_text(encoding="utf-8")
    c = parse(text)
    assert_self_contained(text, c)
    assert {"svg", "polygon", "rect", "polyline", "table"} <= c.tags
    for tid in (1, 2, 7):
        assert f'id="track-{tid}"' in text and f"Track {tid}" in text
    assert text.count("<svg") >= 3 * 4                      # timeline, distribution, engagement, valence/arousal
    assert "Call &lt;b&gt;&amp;&lt;/b&gt; demo" in text and "<b>&</b>" not in text
    assert NOTICE.split(":")[0] in text and "consent" in text
    assert "presence x attention x expressiveness" in text
    assert "time (seconds)" in text and "100%" in text
    assert "#f0e442" in text                                # happy: BGR (66, 228, 240) → RGB hex


def test_report_without_faces():
    frames = [Faces.empty(EMOTIONS, FrameInfo("empty.mp4", i, 40.0 * i)) for i in range(10)]
    text = report(frames)
    c = parse(text)
    assert_self_contained(text, c)
    assert "No faces found" in text and "consent" in text


def test_report_with_no_frames_and_default_summary():
    text = render_html_report([], [], None)
    parse(text)
    assert "No faces found" in text


def test_report_of_long_video_bins_the_timeline():
    frames = make_frames(900, {3: range(0, 900), 4: range(100, 400)}, dt_ms=100.0)
    text = report(frames, interval_s=10.0)
    parse(text)
    # 400 time bins at most per track: the raw-label strip has one rect per bin with the face
    strip = re.findall(r'<rect x="[\d.]+" y="8" ', text)
    assert 0 < len(strip) <= 2 * 400


def test_report_escapes_run_details():
    frames = make_frames(5, {1: range(5)})
    rows = aggregate_intervals(frames, 1.0)
    s = summarize(frames, rows)
    s.update(source={"source": "<img src=x onerror=alert(1)>.mp4"}, problems=["stopped at <frame 4>"])
    text = render_html_report(frames, rows, s)
    parse(text)
    assert "<img" not in text and "&lt;img src=x" in text and "&lt;frame 4&gt;" in text


@pytest.mark.parametrize("interval_s", [0.2, 5.0])
def test_report_handles_one_or_many_intervals(interval_s):
    frames = make_frames(20, {1: range(2, 6), 2: range(8, 20)})
    parse(report(frames, interval_s=interval_s))
