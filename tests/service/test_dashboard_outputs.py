"""Dashboard details that decide whether people can use it: a hint instead of an empty canvas, bar
panels that cover no face on a group photo, and the video panel showing the error it got.
Headless Chromium against a real server (fixtures shared with test_dashboard_browser.py)."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("selenium", reason="selenium not installed (pip install -e '.[browser]')")

from selenium.webdriver.common.by import By  # noqa: E402

from conftest import IMAGES, need  # noqa: E402
from test_dashboard_browser import (CHROMEDRIVER, CHROMIUM, acknowledge, artifacts_dir, browser,  # noqa: E402,F401
                                    open_page, server, wait)

pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="needs chromium and chromedriver")


def test_hints_instead_of_empty_canvases(browser, server):  # noqa: F811
    open_page(browser, server)
    for hint, canvas in (("image-hint", "image-canvas"), ("live-hint", "live-canvas")):
        assert browser.find_element(By.ID, hint).is_displayed()
        assert "Choose a photo" in browser.find_element(By.ID, "image-hint").text
        assert not browser.find_element(By.ID, canvas).is_displayed()


def test_group_photo_bars_cover_no_face(browser, server):  # noqa: F811
    insightface = pytest.importorskip("insightface")
    from pathlib import Path

    photo = need(Path(os.path.dirname(insightface.__file__)) / "data" / "images" / "t1.jpg")
    open_page(browser, server)
    acknowledge(browser)
    browser.find_element(By.ID, "image-input").send_keys(str(photo))
    wait(browser, lambda d: d.find_element(By.ID, "image-canvas").get_attribute("data-faces"), timeout_s=30,
         what="the group photo's results")
    assert not browser.find_element(By.ID, "image-hint").is_displayed()
    # Compare the drawn canvas with the bare photo inside every face (away from its own box and tag).
    covered = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const boxes = [...document.querySelectorAll('#image-results li.face-result')]
          .map(li => JSON.parse(li.textContent.match(/box (\\[[^\\]]*\\])/)[1]));
        const img = new Image();
        img.onload = () => {
          const c = document.getElementById('image-canvas');
          const bare = document.createElement('canvas');
          bare.width = c.width; bare.height = c.height;
          bare.getContext('2d').drawImage(img, 0, 0);
          const out = [];
          for (const [x1, y1, x2, y2] of boxes) {
            const w = x2 - x1, h = y2 - y1;
            const r = [Math.round(x1 + 0.15 * w), Math.round(y1 + 0.35 * h), Math.round(0.7 * w), Math.round(0.5 * h)];
            const a = c.getContext('2d').getImageData(...r).data, b = bare.getContext('2d').getImageData(...r).data;
            let diff = 0;
            for (let i = 0; i < a.length; i += 4) diff += Math.abs(a[i] - b[i]) > 8 ? 1 : 0;
            out.push(diff / (a.length / 4));
          }
          done({covered: out, bars: Number(c.dataset.bars), faces: boxes.length});
        };
        img.src = arguments[0];
    """, "data:image/jpeg;base64," + __import__("base64").b64encode(photo.read_bytes()).decode())
    browser.save_screenshot(str(artifacts_dir() / "group-photo.png"))
    assert covered["faces"] >= 5 and covered["bars"] >= 1, covered
    assert max(covered["covered"]) < 0.02, covered


def test_video_panel_shows_the_error_it_got(browser, server, tmp_path):  # noqa: F811
    bad = tmp_path / "not-a-video.mp4"
    bad.write_bytes(b"this is text, not a video\n" * 50)
    open_page(browser, server)
    acknowledge(browser)
    browser.find_element(By.ID, "video-input").send_keys(str(bad))
    wait(browser, lambda d: d.find_element(By.ID, "video-status").get_attribute("data-state"), timeout_s=45,
         what="the video job to end")
    assert browser.find_element(By.ID, "video-status").get_attribute("data-state") == "failed"
    box = browser.find_element(By.ID, "video-error")
    assert box.is_displayed()
    message = box.text
    browser.save_screenshot(str(artifacts_dir() / "video-error.png"))
    assert len(message) > 15 and ("not-a-video" in message or "video" in message.lower()), message
    assert "unknown error" not in message
