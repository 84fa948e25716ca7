"""Reports of real videos as a reader sees them: rendered by headless Chromium, screenshots kept.

The crowd clip (4 s, a dozen passers-by) and the talking head (20 s, one person) are analysed at a
low frame rate with the single fast model, written as a full run (``run_video``) and opened in
Chromium: the page renders, nothing overflows horizontally, the overview chart exists with one
row per person, no SVG text sticks out of its chart, and face thumbnails are inline. Screenshots
land in ``tests/artifacts/report/`` (or ``$AFFECTLENS_ARTIFACTS/report``).
"""

from __future__ import annotations

import pytest

from affectlens.recognizer import RecognizerOptions
from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
from affectlens.video.session import RunOptions, run_video
from browser_helpers import artifacts_dir, chromium
from conftest import VIDEOS, need

pytestmark = pytest.mark.slow

CLIPS = {"crowd": ("crowd_walking.mp4", 5.0, None), "talking-head": ("WolfgangLanger_Pexels.mp4", 2.0, None)}

PAGE_FACTS = """
const svgs = [...document.querySelectorAll("svg")];
const sticking = [];
for (const s of svgs) {
  const r = s.getBoundingClientRect();
  for (const t of s.querySelectorAll("text")) {
    const b = t.getBoundingClientRect();
    if (b.width && (b.left < r.left - 1 || b.right > r.right + 1 || b.top < r.top - 1 || b.bottom > r.bottom + 1))
      sticking.push(t.textContent);
  }
}
const overview = document.querySelector("#overview svg");
const broken = [...document.images].filter((i) => !i.complete || i.naturalWidth === 0).length;
return {scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
        height: document.documentElement.scrollHeight, sticking: sticking,
        overviewRows: overview ? overview.querySelectorAll("text[text-anchor=end]").length : -1,
        thumbs: document.querySelectorAll("img.thumb").length, brokenImages: broken,
        people: document.querySelectorAll("table.people tbody tr").length};
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from affectlens import EmotionRecognizer

    fast = EmotionRecognizer(RecognizerOptions(model="fer-vgg48s"))
    out = {}
    for key, (name, fps, end_s) in CLIPS.items():
        va = VideoAnalyzer(VideoOptions(), recognizer=fast)
        out[key] = run_video(need(VIDEOS / name), tmp_path_factory.mktemp(key), analyzer=va,
                             run=RunOptions(fps=fps, end_s=end_s, blur_faces=key == "crowd"))
    return out


@pytest.fixture(scope="module")
def browser():
    with chromium(1000, 900) as driver:
        yield driver


@pytest.mark.parametrize("key", list(CLIPS))
def test_report_renders_without_overflow_and_has_the_overview(runs, browser, key):
    result = runs[key]
    browser.set_window_size(1000, 900)
    browser.get((result.out_dir / "report.html").as_uri())
    facts = browser.execute_script(PAGE_FACTS)
    browser.set_window_size(1000, min(facts["height"] + 40, 8000))
    shot = artifacts_dir("report") / f"{key}.png"
    browser.save_screenshot(str(shot))
    people = facts["people"]
    assert people >= 1, facts
    assert facts["scrollWidth"] <= facts["clientWidth"], f"horizontal overflow, see {shot}"
    assert facts["overviewRows"] == people, facts
    assert facts["sticking"] == [], f"chart text outside its chart: {facts['sticking']}, see {shot}"
    assert facts["thumbs"] >= people and facts["brokenImages"] == 0, facts
    if key == "crowd":
        assert people >= 4, "a group: several people in the overview"
    else:
        assert people == 1


def test_narrow_window_scrolls_the_table_not_the_page(runs, browser):
    browser.set_window_size(480, 900)
    browser.get((runs["crowd"].out_dir / "report.html").as_uri())
    facts = browser.execute_script(PAGE_FACTS)
    browser.save_screenshot(str(artifacts_dir("report") / "crowd-narrow.png"))
    assert facts["scrollWidth"] <= facts["clientWidth"], facts
