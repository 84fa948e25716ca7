"""The web dashboard end to end in headless Chromium (Selenium): a real server on loopback (open
mode, consent required), the page it serves, real uploads, and the live view fed by Chromium's
fake camera playing a .y4m made from a shared video. Screenshots go to ``tests/artifacts/``
(or ``$AFFECTLENS_ARTIFACTS``).

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and the
``browser`` extra (selenium); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytest.importorskip("selenium", reason="selenium not installed (pip install -e '.[browser]')")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from affectlens.service.app import create_app  # noqa: E402
from affectlens.service.config import ServiceConfig  # noqa: E402
from conftest import IMAGES, ROOT, VIDEOS, need  # noqa: E402
from service_helpers import LiveServer  # noqa: E402

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason=f"headless browser tests need chromium and chromedriver on PATH (found chromium={CHROMIUM}, "
           f"chromedriver={CHROMEDRIVER}); `apt-get install chromium chromium-driver` (.ci/run does)")

BASIS = "subject-consented"
FAKE_FRAMES = 60  # 2 s at 30 fps; Chromium loops the file


def artifacts_dir() -> Path:
    d = Path(os.environ.get("AFFECTLENS_ARTIFACTS") or ROOT / "tests" / "artifacts") / "dashboard"
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_y4m(video: Path, dest: Path, frames: int = FAKE_FRAMES) -> Path:
    """A 4:2:0 YUV4MPEG2 file from the first ``frames`` frames of ``video`` (what Chromium's fake camera plays)."""
    cap = cv2.VideoCapture(str(video))
    out = None
    n = 0
    try:
        while n < frames:
            ok, bgr = cap.read()
            if not ok:
                break
            h, w = bgr.shape[0] // 2 * 2, bgr.shape[1] // 2 * 2
            i420 = cv2.cvtColor(np.ascontiguousarray(bgr[:h, :w]), cv2.COLOR_BGR2YUV_I420)  # Y, then U, then V planes
            if out is None:
                out = open(dest, "wb")
                out.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
            out.write(b"FRAME\n" + i420.tobytes())
            n += 1
    finally:
        cap.release()
        if out is not None:
            out.close()
    assert n > 0, f"no frames decoded from {video}"
    return dest


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("dash")
    config = ServiceConfig(data_dir=data, consent_required=True, rate_limit_per_minute=10000,
                           cleanup_interval_s=3600)  # no key file: open mode, loopback only
    with LiveServer(create_app(config)) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    fake = write_y4m(need(VIDEOS / "single_face.mp4"), tmp_path_factory.mktemp("cam") / "single_face.y4m")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,2400", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={fake}", "--mute-audio", "--no-first-run"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    except WebDriverException as exc:
        pytest.skip(f"could not start headless chromium: {exc.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, cond, timeout_s: float = 15.0, what: str = ""):
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(cond)
    except TimeoutException:
        shot = artifacts_dir() / "timeout.png"
        driver.save_screenshot(str(shot))
        logs = "\n".join(e["message"] for e in driver.get_log("browser"))
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; screenshot {shot}; "
                             f"browser console:\n{logs}") from None


def open_page(driver, server):
    driver.get(server.url + "/")
    wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1",
         what="the page to initialise")


def acknowledge(driver):
    Select(driver.find_element(By.ID, "consent-basis")).select_by_value(BASIS)
    driver.find_element(By.ID, "consent-ack").click()


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def test_static_files_are_served(server):
    r = httpx.get(server.url + "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "/static/dashboard.js" in r.text and "/static/dashboard.css" in r.text
    assert not re.search(r'(src|href)="(https?:)?//', r.text)  # self-contained: no CDN
    for name, ctype in (("dashboard.js", "javascript"), ("dashboard.css", "text/css")):
        r = httpx.get(f"{server.url}/static/{name}")
        assert r.status_code == 200 and ctype in r.headers["content-type"]
    assert "/" not in httpx.get(server.url + "/openapi.json").json()["paths"]


def test_page_shows_consent_notice_and_gates_analysis(browser, server):
    open_page(browser, server)
    assert "AffectLens" in browser.title
    notice = text(browser, "consent-notice").lower()
    assert "not inner state" in notice and "consent" in notice and "covert" in notice
    assert "open mode" in text(browser, "server-status")
    gated = [browser.find_element(By.ID, i) for i in ("image-input", "video-input", "cam-start")]
    assert all(not e.is_enabled() for e in gated)
    # A basis alone is not enough: the notice must be acknowledged too, and un-ticking disables again.
    Select(browser.find_element(By.ID, "consent-basis")).select_by_value(BASIS)
    assert all(not e.is_enabled() for e in gated)
    browser.find_element(By.ID, "consent-ack").click()
    assert all(e.is_enabled() for e in gated)
    browser.save_screenshot(str(artifacts_dir() / "consent-acknowledged.png"))
    browser.find_element(By.ID, "consent-ack").click()
    assert all(not e.is_enabled() for e in gated)
    assert not browser.find_element(By.ID, "cam-stop").is_enabled()


def test_image_upload_draws_a_face_box_and_label(browser, server):
    image = need(IMAGES / "single_face.jpg")
    open_page(browser, server)
    acknowledge(browser)
    browser.find_element(By.ID, "image-input").send_keys(str(image))
    items = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#image-results li.face-result"),
                 what="the image results")
    assert len(items) == 1
    emotion = items[0].get_attribute("data-emotion")
    assert emotion and emotion in items[0].text
    canvas = browser.find_element(By.ID, "image-canvas")
    h, w = cv2.imread(str(image)).shape[:2]
    assert canvas.get_attribute("data-faces") == "1"
    assert (int(canvas.get_attribute("width")), int(canvas.get_attribute("height"))) == (w, h)
    # The canvas holds the photo plus the overlay: many distinct colours, not a blank fill.
    distinct = browser.execute_script("""
        const c = document.getElementById('image-canvas');
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < px.length; i += 4 * 97) seen.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
        return seen.size;""")
    assert distinct > 100
    assert "1 face" in text(browser, "image-status")
    browser.save_screenshot(str(artifacts_dir() / "image-upload.png"))


def test_live_view_receives_tracked_results_over_the_websocket(browser, server):
    open_page(browser, server)
    acknowledge(browser)
    browser.find_element(By.ID, "cam-start").click()
    # The list is rebuilt on every frame: read it in one script call, not element by element.
    snapshot = """return Array.from(document.querySelectorAll('#live-results li.live-face'))
                  .map(li => [li.dataset.track, li.dataset.emotion, li.textContent]);"""
    tracked = wait(browser, lambda d: [f for f in d.execute_script(snapshot) if f[0]], timeout_s=20,
                   what="a tracked face in the live view")
    track, emotion, label = tracked[0]
    assert emotion and emotion in label and f"track {track}:" in label
    wait(browser, lambda d: int(d.find_element(By.ID, "timeline-canvas").get_attribute("data-points") or 0) >= 10,
         timeout_s=15, what="ten timeline points")
    assert "streaming" in text(browser, "live-status")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline-legend span")) >= 2
    browser.save_screenshot(str(artifacts_dir() / "live-view.png"))
    browser.find_element(By.ID, "cam-stop").click()
    assert browser.find_element(By.ID, "cam-start").is_enabled()
    metrics = httpx.get(server.url + "/metrics").text
    assert "affectlens_stream_frames_total" in metrics


def test_video_upload_reaches_done_and_shows_the_report(browser, server):
    video = need(VIDEOS / "single_face.mp4")
    open_page(browser, server)
    acknowledge(browser)
    browser.find_element(By.ID, "video-input").send_keys(str(video))
    wait(browser, lambda d: d.find_element(By.ID, "video-status").get_attribute("data-state"), timeout_s=45,
         what="the video job to end")
    assert browser.find_element(By.ID, "video-status").get_attribute("data-state") == "done", \
        text(browser, "video-status")
    link = browser.find_element(By.ID, "video-report-link")
    assert link.is_displayed() and link.get_attribute("href").startswith("blob:")
    browser.switch_to.frame(browser.find_element(By.ID, "video-report"))
    try:
        assert len(browser.find_element(By.TAG_NAME, "body").text) > 0
    finally:
        browser.switch_to.default_content()
    browser.save_screenshot(str(artifacts_dir() / "video-report.png"))
