"""The explain page in a real browser: Debian's Chromium, headless, driven by Selenium through ChromeDriver.

Opens the page from disk (``file://``), clicks through every layer, the loss and the overview, in both
directions and for every recorded step, and fails on any console error, any script error, any picture that does
not decode and any request that leaves the page (the page's own Content-Security-Policy forbids them; the
performance log shows any that was attempted). A full-page screenshot of every panel is written for a person to
look at: to the test's temporary folder (printed), or to ``$TINYNET_EXPLAIN_SHOTS`` when set.

Skipped, with the reason, when Selenium, Chromium or ChromeDriver is missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinynet import applications
from tinynet.learn.explain import explain
from tinynet.optimizers import SGD
from tinynet.utils import set_random_seed, to_categorical

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            return f"{program} is missing (apt-get install chromium chromium-driver)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


def bar_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digit-sized images with a bright bar whose height is the class, on faint noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    images = rng.uniform(0, 0.15, (count, 28, 28, 1)).astype(np.float32)
    for index, label in enumerate(labels):
        images[index, 3 + 2 * label:5 + 2 * label, 4:24] = 1.0
    return images, to_categorical(labels, 10)


class Browser:
    """Headless Chromium with its console and network logs, and the clicks the page offers."""

    def __init__(self, profile: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000",
                     "--hide-scrollbars"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(60)

    def close(self) -> None:
        self.driver.quit()

    def open(self, path: Path) -> str:
        url = path.resolve().as_uri()
        self.driver.get_log("performance")  # drop what the browser itself did at start (its new-tab page)
        self.driver.get_log("browser")
        self.driver.get(url)
        self.wait_for("return document.body && document.body.dataset.ready === '1'")
        return url

    def wait_for(self, script: str, timeout: float = 20) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout).until(lambda driver: driver.execute_script(script))

    def click(self, selector: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, selector).click()

    def shown_panel(self) -> str:
        return self.driver.execute_script("return document.body.dataset.panel")

    def broken_images(self) -> list[str]:
        """Pictures of the shown panel that did not decode (a bad PNG, a missing table entry)."""
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('.panel.shown img'))"
            ".filter(function (img) { return !img.complete || img.naturalWidth === 0; })"
            ".map(function (img) { return img.alt; });")

    def screenshot(self, path: Path) -> None:
        """The whole page, however long, as one PNG."""
        width, height = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];")
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 12000), "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))

    def problems(self, page_url: str) -> list[str]:
        """Console errors, script errors and requests for anything but the page itself and data: URIs."""
        found = [f"console: {entry['message']}" for entry in self.driver.get_log("browser")
                 if entry["level"] in ("SEVERE", "ERROR")]
        found += [f"script error: {message}" for message in
                  self.driver.execute_script("return window.__explainErrors || []")]
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            # Only what the page asked for: Chromium's own pages (its new-tab page at start) are not under test.
            if message["method"] == "Network.requestWillBeSent" and \
                    message["params"].get("documentURL") == page_url:
                url = message["params"]["request"]["url"]
                if url != page_url and not url.startswith("data:"):
                    found.append(f"request: {url}")
        return found


@pytest.fixture
def browser(tmp_path, monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never look for a driver on the network
    session = Browser(tmp_path / "chromium-profile")
    yield session
    session.close()


def _shots_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TINYNET_EXPLAIN_SHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_every_panel_opens_offline_without_errors(tmp_path, browser, capsys):
    set_random_seed(1)
    model = applications.mnist_cnn()
    model.compile(SGD(lr=0.001, decay=1e-6, nesterov=True), loss="categorical_crossentropy", metrics=["accuracy"])
    x, y = bar_images(32)
    page = explain(model, x, y, tmp_path / "explain.html", steps=2, batch_size=16, source="synthetic bar images")
    url = browser.open(page)
    shots = _shots_folder(tmp_path)
    layers = [str(index) for index in range(len(model.layers))]
    visited = []
    for step in range(2):
        if step:
            browser.click("#next-step")
        for direction in ("f", "b"):
            browser.click(f'header button[data-direction="{direction}"]')
            for item in ["overview", *layers, "loss"]:
                browser.click(f'nav button[data-item="{item}"]')
                expected = f"p{step}-{item}" if item in ("overview", "loss") else f"p{step}-{item}-{direction}"
                assert browser.shown_panel() == expected
                assert browser.broken_images() == [], expected
                if expected not in visited:
                    browser.screenshot(shots / f"{expected}.png")
                    visited.append(expected)
    # Keys move through the layers in the direction's order: going backward, down from the overview is the loss.
    browser.click('nav button[data-item="overview"]')
    from selenium.webdriver.common.keys import Keys

    browser.driver.find_element("css selector", "body").send_keys(Keys.ARROW_DOWN)
    assert browser.shown_panel() == "p1-loss"
    assert browser.problems(url) == []
    assert len(visited) == 2 * (2 * len(layers) + 2)
    with capsys.disabled():
        print(f"\nexplain page screenshots ({len(visited)} panels): {shots}")


def test_the_harness_catches_a_request_and_a_script_error(tmp_path, browser):
    """The checks above can fail: a page that reaches for the network and throws is caught on both counts."""
    set_random_seed(1)
    model = applications.mnist_cnn()
    model.compile(SGD(lr=0.001), loss="categorical_crossentropy")
    x, y = bar_images(8)
    page = explain(model, x, y, tmp_path / "explain.html", steps=1, batch_size=8)
    text = page.read_text().replace("</body>", '<img src="http://example.invalid/tracker.png">'
                                    "<script>undefinedFunction();</script></body>")
    bad = tmp_path / "bad.html"
    bad.write_text(text)
    url = browser.open(bad)
    problems = browser.problems(url)
    assert any("example.invalid" in problem for problem in problems), problems
    assert any("undefinedFunction" in problem for problem in problems), problems
