"""Headless Chromium for tests that look at what we produce (videos, reports) the way a browser does.

Needs the Debian packages ``chromium`` and ``chromium-driver`` and the ``browser`` extra (selenium);
:func:`chromium` skips the calling test with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"),
                             shutil.which("google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")


def artifacts_dir(sub: str) -> Path:
    """``tests/artifacts/<sub>`` (or ``$AFFECTLENS_ARTIFACTS/<sub>``), created."""
    d = Path(os.environ.get("AFFECTLENS_ARTIFACTS") or ROOT / "tests" / "artifacts") / sub
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextmanager
def chromium(width: int = 1100, height: int = 1400):
    """A headless Chromium WebDriver; skips the test when Chromium, chromedriver or selenium is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[browser]')")
    from selenium.common.exceptions import WebDriverException

    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(f"needs chromium and chromedriver on PATH (found chromium={CHROMIUM}, "
                    f"chromedriver={CHROMEDRIVER}); `apt-get install chromium chromium-driver`")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--mute-audio", "--no-first-run",
                "--autoplay-policy=no-user-gesture-required", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    try:
        driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    except WebDriverException as exc:
        pytest.skip(f"could not start headless chromium: {exc.msg}")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def play_video(driver, video: Path, timeout_s: float = 30.0) -> dict:
    """Load ``video`` in a ``<video>`` element and play it to the end.

    Returns:
        ``{"ended": bool, "error": MediaError code or None, "duration": s, "width": px, "height": px}``.
    """
    page = video.with_suffix(".html")
    page.write_text(f'<!DOCTYPE html><html><body><video id="v" muted autoplay playsinline '
                    f'src="{video.name}"></video></body></html>', encoding="utf-8")
    driver.get(page.as_uri())
    driver.set_script_timeout(timeout_s)
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const v = document.getElementById("v");
        const report = () => done({ended: v.ended, error: v.error ? v.error.code : null,
                                   duration: v.duration, width: v.videoWidth, height: v.videoHeight});
        if (v.ended || v.error) return report();
        v.addEventListener("ended", report);
        v.addEventListener("error", report);
        v.play().catch(() => {});
    """)
