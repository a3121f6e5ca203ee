"""A real headless Chromium for the page tests (the web till's and the console's): the browser, the folder its
screenshots are kept in, and the page driver both build on, whose every wait fails with what the page showed."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WAIT_S = 20.0


def headless_chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tempfile.mkdtemp(prefix='novapos-chromium-')}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # type: ignore[arg-type]


def artifacts(kind: str) -> Path:
    """test-artifacts/<kind>/ (NOVAPOS_ARTIFACTS names another folder instead of test-artifacts)."""
    folder = Path(os.environ.get("NOVAPOS_ARTIFACTS") or Path(__file__).parent.parent / "test-artifacts") / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class BrowserPage:
    """One browser on one page of ours. A subclass names its screenshots' folder (`ARTIFACTS`) and says what the
    page shows (`shown`) for a failed wait."""

    ARTIFACTS = "pages"

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.browser = headless_chromium()

    def __enter__(self) -> BrowserPage:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.browser.quit()

    def js(self, script: str, *args: Any) -> Any:
        return self.browser.execute_script(script, *args)

    def shown(self) -> str:
        return str(self.js("return document.body.innerText.slice(0, 600)"))

    def until(self, condition: Any, what: str, timeout: float = WAIT_S) -> Any:
        try:
            return WebDriverWait(self.browser, timeout).until(condition)
        except TimeoutException:
            raise AssertionError(f"waited for {what}; the page shows {self.shown()}") from None

    def text_in(self, element_id: str, text: str, timeout: float = WAIT_S) -> None:
        self.until(expected_conditions.text_to_be_present_in_element((By.ID, element_id), text),
                   f"{text!r} in #{element_id}", timeout)

    def screenshot(self, name: str) -> Path:
        path = artifacts(self.ARTIFACTS) / f"{name}.png"
        self.browser.save_screenshot(str(path))
        return path
