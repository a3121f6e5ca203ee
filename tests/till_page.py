"""Driving the web till in a real headless Chromium as a cashier would: a scanner that types into whatever
has the focus, fingers that tap buttons (each tap counted), the PIN pad; screenshots kept under
test-artifacts/till/ (NOVAPOS_ARTIFACTS names another folder instead of test-artifacts)."""

from __future__ import annotations

from typing import Any

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions

from tests.browser import CHROMEDRIVER, CHROMIUM, BrowserPage, headless_chromium

__all__ = ["CHROMEDRIVER", "CHROMIUM", "LANDSCAPE", "PORTRAIT", "TillPage", "headless_chromium"]

LANDSCAPE = (1024, 768)
PORTRAIT = (768, 1024)
MIN_TARGET_PX = 44


# The window's inner size is what a till's screen shows: set through the device metrics, not the window frame.
_LAYOUT = """
const small = [];
for (const el of document.querySelectorAll('button, input, select, summary')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === 'hidden') continue;
  if (r.width < arguments[0] || r.height < arguments[0])
    small.push(`${el.tagName.toLowerCase()}#${el.id || ''}.${el.className || ''} "${(el.textContent || el.placeholder || '').trim().slice(0, 20)}" ${Math.round(r.width)}x${Math.round(r.height)}`);
}
return {overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth, small,
        width: window.innerWidth, height: window.innerHeight};
"""


class TillPage(BrowserPage):
    """One browser on the web till; every wait fails with what the page showed instead. `taps` counts the
    cashier's scans and taps since `taps` was last set to 0."""

    ARTIFACTS = "till"

    def __init__(self, url: str, size: tuple[int, int] = LANDSCAPE) -> None:
        super().__init__(url)
        self.browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                     {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})
        self.taps = 0

    def __enter__(self) -> TillPage:
        return self

    def shown(self) -> str:
        return str(self.js("return ['message', 'who', 'summary', 'lines', 'login-error', 'card-stage']"
                           ".map(id => id + ': ' + (document.getElementById(id).innerText || '').slice(0, 300)"
                           ".replaceAll('\\n', ' ')).join(' | ')"))

    def logged_in(self, login: str) -> None:
        """Wait for `login` to be the till's cashier (shown by name once the staff list names them: Alice Archer)."""
        self.until(lambda b: login in str(b.execute_script("return document.getElementById('who').textContent")).lower(),
                   f"{login} logged in")
        self.until_visible("login", False)

    def visible(self, element_id: str) -> bool:
        return bool(self.js("const e = document.getElementById(arguments[0]); return !!e && !e.hidden && "
                            "e.getClientRects().length > 0", element_id))

    def until_visible(self, element_id: str, shown: bool = True) -> None:
        self.until(lambda _b: self.visible(element_id) == shown, f"#{element_id} {'shown' if shown else 'hidden'}")

    def open(self, cookies: httpx.Cookies | None = None, till: str = "till-1") -> None:
        """Load the page for `till`, carrying a login made over the API (`cookies`) when given."""
        if cookies:
            self.browser.get(f"{self.url}/healthz")  # a cookie is set on the page's own origin
            for cookie in cookies.jar:
                self.browser.add_cookie({"name": cookie.name, "value": cookie.value or "", "path": "/"})
        self.browser.get(f"{self.url}/?till={till}")
        self.until(lambda b: b.execute_script("return document.getElementById('till').options.length > 0"),
                   "the store's tills")

    def find(self, css: str) -> WebElement:
        return self.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, css)), css)

    def tap(self, css: str) -> None:
        """A finger on a button: counted."""
        self.find(css).click()
        self.taps += 1

    def scan(self, code: str) -> None:
        """The scanner types into whatever has the focus, then Enter: the page must have kept it on its field."""
        self.until(lambda b: b.execute_script("return document.activeElement && document.activeElement.id") == "scan",
                   "the scan field to have the focus")
        self.browser.switch_to.active_element.send_keys(code + Keys.ENTER)
        self.taps += 1

    def type_in(self, element_id: str, text: str) -> None:
        element = self.find(f"#{element_id}")
        element.clear()
        element.send_keys(text)

    def pin(self, pad: str, digits: str) -> None:
        """Tap a PIN on a pad (login, unlock, approve), then OK."""
        for digit in digits:
            self.tap(f".pinpad[data-for='{pad}'] button[data-key='{digit}']")
        self.tap(f".pinpad[data-for='{pad}'] button[data-key='ok']")

    def summary(self) -> dict[str, str]:
        return dict(self.js("return Object.fromEntries(['total', 'paid', 'due', 'change']"
                            ".map(k => [k, document.getElementById('sum-' + k).textContent]));"))

    def layout(self) -> dict[str, Any]:
        """Horizontal overflow (px), the window's size and every visible control smaller than 44 px."""
        return dict(self.js(_LAYOUT, MIN_TARGET_PX))
