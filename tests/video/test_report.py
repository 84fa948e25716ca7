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
    # inline face thumbnails (data: URIs) are part of the file; nothing else may point outside it
    assert all(not re.match(r"^[a-z]+:|^//", link) or link.startswith("data:image/") for link in checker.links), \
        checker.links
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
    assert "#fbc02d" in text                                # happy, from palette.json


def test_report_without_faces():
    frames = [Faces.empty(EMOTIONS, FrameInfo("empty.mp4", i, 40.0 * i)) for i in range(10)]
    text = report(frames)
    assert "contains small pictures" not in text
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


def _b64_jpeg(value: int) -> str:
    import base64

    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), value, np.uint8))
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()


def test_group_report_ranks_people_folds_short_tracks_and_draws_one_overview():
    # 10 s at 25 fps: track 9 on screen longest, 4 second, 5 and 6 short (2 and 10 frames)
    spans = {4: range(0, 150), 9: range(0, 250), 5: range(40, 42), 6: range(100, 110), 8: range(60, 160)}
    frames = make_frames(250, spans)
    rows = aggregate_intervals(frames, 5.0)
    thumbs = {9: _b64_jpeg(200), 4: _b64_jpeg(100)}
    text = render_html_report(frames, rows, summarize(frames, rows), thumbnails=thumbs)
    c = parse(text)
    assert_self_contained(text, c)
    assert text.count('id="overview"') == 1 and "Overview: when each person was visible" in text
    # ranking by time on screen: Person 1 = track 9, Person 2 = track 4, Person 3 = track 8
    assert re.search(r"Person 1 <small>\(track 9\)", text) and re.search(r"Person 2 <small>\(track 4\)", text)
    assert re.search(r"Person 3 <small>\(track 8\)", text)
    # short tracks (0.08 s, 0.4 s < 2 s) are listed compactly, without sections
    assert 'id="short-tracks"' in text and "2 short track(s)" in text
    assert 'id="track-5"' not in text and 'id="track-6"' not in text
    assert "track 5 (0.1 s at 1.6 s" in text
    # thumbnails inline, a placeholder where there is none
    assert text.count('class="thumb"') == 2 * 2 and "no image" in text
    assert "contains small pictures of the faces" in text
    # rates only for spans of 10 s or more: none here (all spans < 10 s)
    assert "changes per minute" in text and "– (too short)" in text


def test_rates_show_for_long_tracks_only():
    frames = make_frames(300, {1: range(0, 300), 2: range(0, 100)}, dt_ms=40.0)   # 12 s and 4 s
    text = report(frames, interval_s=5.0)
    assert text.count("– (too short)") == 2  # table and section of the 4 s track
    assert re.search(r"<td>\d+\.\d → \d+\.\d</td>", text), "the 12 s track has a rate"


def test_max_sections_limits_the_detailed_charts():
    from affectlens.video.report import ReportOptions

    frames = make_frames(100, {t: range(0, 100 - 5 * t) for t in range(1, 6)})
    rows = aggregate_intervals(frames, 1.0)
    text = render_html_report(frames, rows, summarize(frames, rows), options=ReportOptions(max_sections=2))
    assert text.count('class="track-section"') == 2 and "the other 3 appear in the table" in text
    with pytest.raises(ValueError, match="max_sections"):
        ReportOptions(max_sections=-1)


def test_run_details_are_human_readable():
    frames = make_frames(5, {1: range(5)})
    rows = aggregate_intervals(frames, 1.0)
    s = summarize(frames, rows)
    s.update(source={"source": "/data/clips/talk.mp4", "kind": "file", "width": 640, "height": 360,
                     "fps_nominal": 23.976023976023978, "last_timestamp_ms": 19644.624999999996},
             options={"smooth": "ema", "window": 15, "ema_alpha": 0.2, "fps": None},
             processing={"seconds": 12.3456, "complete": True})
    text = render_html_report(frames, rows, s)
    details = text[text.index("<h2>Run details"):]
    assert "23.976023976023978" not in details and "19644.62" not in details
    assert "23.98 frames per second" in details and "19.6 s" in details and "640 × 360 pixels" in details
    assert "<td>video</td><td>talk.mp4</td>" in details and "source: source" not in details
    assert "EMA weight" in details and "smoothing window" not in details   # only the smoother that ran
    assert "every frame" in details and "12.3 s" in details and "<td>yes</td>" in details


def test_scene_cuts_are_drawn_on_the_overview():
    frames = make_frames(100, {1: range(0, 50), 2: range(50, 100)})
    rows = aggregate_intervals(frames, 1.0)
    s = summarize(frames, rows)
    s["scene_cuts_ms"] = [2000.0]
    text = render_html_report(frames, rows, s)
    parse(text)
    assert text.count('class="cut"') == 1 and "scene cut at 2.0 s" in text and "Dashed lines: scene cuts" in text
    assert "<td>scene cuts</td><td>2.0 s</td>" in text


def test_run_details_read_a_reading_rate_as_a_rate_not_seconds():
    from affectlens.video.report import _human

    assert _human("options", "classify_per_s", 30.0, {}) == "30 per second"
    assert _human("options", "interval_s", 5.0, {}) == "5 s"
