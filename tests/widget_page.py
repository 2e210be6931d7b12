"""The web widget driven in Debian's chromium (Playwright): the browser and the page object
the widget and hand-over browser tests share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TIMEOUT = 60_000  # ms: a first answer may wait for the action server's catalog index


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium; FAILS (never skips) when it is missing: `make test` installs it."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: `make test` installs Debian's "
                    "chromium (or set CHROMIUM=/path/to/chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class Widget:
    """The widget inside its (open) shadow root, by its data-testid hooks (Playwright's CSS
    engine pierces open shadow roots). `errors` collects page errors and, with
    `console_errors`, console errors too (off where a test blocks WebSockets on purpose)."""

    def __init__(self, page: Any, console_errors: bool = True) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        if console_errors:
            page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))

    def el(self, testid: str) -> Any:
        return self.page.locator(f"#dvc-widget-root [data-testid='{testid}']")

    def open(self) -> None:
        self.el("launcher").click()
        self.el("panel").wait_for(state="visible")

    def send(self, text: str) -> None:
        self.el("input").fill(text)
        self.el("send").click()

    def bot_texts(self) -> list[str]:
        return self.el("msg-bot").all_inner_texts()

    def wait_for_reply(self, before: int) -> None:
        """Until there are more than `before` bot bubbles."""
        self.page.wait_for_function(
            """([n]) => document.querySelector('#dvc-widget-root').shadowRoot
                 .querySelectorAll("[data-testid='msg-bot']").length > n""",
            arg=[before], timeout=TIMEOUT)

    def ask(self, text: str, one_bubble: bool = True) -> str:
        """Send a message; return the text of the bot's reply once it has arrived (with
        `one_bubble`, fail unless the answer is exactly one bubble: parts merged)."""
        before = self.el("msg-bot").count()
        self.send(text)
        self.wait_for_reply(before)
        replies = self.bot_texts()[before:]
        if one_bubble:
            assert len(replies) == 1, replies
        return replies[-1]

    def session(self) -> str:
        return self.page.evaluate("localStorage.getItem('dvc-widget:session')")
