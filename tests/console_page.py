"""Driving the hub console page in a real headless Chromium, as an admin would: sign in, go to a section,
fill a form, read what the page shows; each step that matters kept as a screenshot under
test-artifacts/console/ (NOVAPOS_ARTIFACTS names another folder instead of test-artifacts)."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions

from tests.browser import BrowserPage
from tests.identity import PASSWORD
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips the importer without a browser)

DESKTOP = (1366, 768)
TABLET = (768, 1024)



class Page(BrowserPage):
    """One browser on the console: every wait fails with what the page showed instead."""

    ARTIFACTS = "console"

    def __init__(self, url: str, size: tuple[int, int] = DESKTOP) -> None:
        super().__init__(url)
        self.browser.set_window_size(*size)

    def __enter__(self) -> Page:
        return self

    def shown(self) -> str:
        """What the page says now: its problem line, its status line and the view's text, for a failure."""
        return str(self.js("return ['problem', 'status', 'view'].map(id => id + ': ' + "
                           "document.getElementById(id).innerText.slice(0, 600)).join(' | ')"))

    def find(self, css: str) -> WebElement:
        return self.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)), css)

    def open(self, hash_: str = "") -> None:
        self.browser.get(f"{self.url}/{hash_}")

    def go(self, hash_: str) -> None:
        """Navigate within the page and wait for the section (and the item, if any) to be shown."""
        self.js("location.hash = arguments[0]", hash_)
        name, _, item = hash_.lstrip("#").partition("/")
        self.until(lambda b: b.execute_script(
            "const v = document.getElementById('view'); return v.dataset.section === arguments[0] && "
            "v.dataset.item === arguments[1]", name, item), f"section {hash_}")

    def sign_in(self, login: str, password: str = PASSWORD) -> None:
        form = self.find("#signin-form")
        self.until(expected_conditions.visibility_of(form), "the sign-in form")
        for name, value in (("login", login), ("password", password)):
            box = form.find_element(By.NAME, name)
            box.clear()
            box.send_keys(value)
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    def fill(self, values: dict[str, str]) -> None:
        """Type into text inputs by id; choose in selects and date pickers (by value), as their widgets would."""
        for element_id, value in values.items():
            element = self.find(f"#{element_id}")
            if element.tag_name == "select" or element.get_attribute("type") in ("date", "datetime-local"):
                self.js("document.getElementById(arguments[0]).value = arguments[1]", element_id, value)
            else:
                element.clear()
                element.send_keys(value)

    def rows(self, table_id: str) -> list[list[str]]:
        """A table's body rows, cell texts, read in one step (the page may rebuild the table)."""
        return list(self.js(f"return [...document.querySelectorAll('#{table_id} tbody tr')]"
                            ".map(r => [...r.cells].map(c => c.textContent))"))

    def table_loaded(self, table_id: str) -> list[list[str]]:
        self.find(f"#{table_id} tbody")
        return self.rows(table_id)

    def overflow(self) -> int:
        """How many pixels the page is wider than the window (0: nothing scrolls sideways but tables)."""
        return int(self.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth"))
