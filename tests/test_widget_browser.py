"""The embeddable widget in a real browser (Debian's chromium driven by Playwright).

Everything is real: the trained model, Rasa, the action server, the catalog and the
gateway of `bot.stack.Stack`; the browser loads `/demo` (a third-party-style page served
with a strict CSP) or a plain HTML file from another port, exactly as a citizen would.
Screenshots (closed, open with a conversation, a 360 px phone) are written to
var/screenshots/ on every run; README shows copies from docs/screenshots/.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.catalog.db import session_scope
from bot.catalog.models import Feedback
from bot.stack import Stack
from tests.conftest import free_port
from tests.widget_page import TIMEOUT, Widget, chromium

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "var" / "screenshots"



@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    """The session's shared stack (tests.conftest.shared_stack)."""
    return shared_stack


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


def base(st: Stack) -> str:
    return f"http://{st.settings.bot_host}:{st.settings.bot_port}"


def test_demo_page_chat_buttons_history_and_feedback(stack: Stack, browser) -> None:  # noqa: ANN001
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    w = Widget(page)
    resp = page.goto(base(stack) + "/demo")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    w.el("launcher").wait_for()
    page.screenshot(path=str(SHOTS / "widget-closed.png"))
    w.open()
    assert w.el("input").evaluate("e => e === e.getRootNode().activeElement")

    answer = w.ask("đăng ký khai sinh cần giấy tờ gì")
    assert "Hồ sơ cần chuẩn bị" in answer, answer
    assert w.el("msg-bot").last.locator("a[href^='https://']").count() >= 1  # link clickable

    # Candidate buttons: clicking shows the title as the citizen's bubble, sends the payload.
    w.ask("đăng ký xe hết bao nhiêu tiền")
    replies = w.el("quick-reply")
    assert replies.count() >= 2
    title = replies.first.inner_text()
    before = w.el("msg-bot").count()
    replies.first.click()
    w.wait_for_reply(before)
    assert w.el("msg-user").last.inner_text().strip() == title.strip()
    chosen = re.search(r"mã thủ tục ([\d.]+)", w.bot_texts()[-1])
    assert chosen, w.bot_texts()[-1]
    page.screenshot(path=str(SHOTS / "widget-open.png"))

    # Thumbs up on the last answer is stored for operators.
    w.el("feedback-up").last.click()
    assert w.el("feedback-up").last.get_attribute("aria-pressed") == "true"
    session = page.evaluate("localStorage.getItem('dvc-widget:session')")

    def stored() -> list[Feedback]:
        with session_scope(stack.settings.database_url) as s:
            rows = s.query(Feedback).filter(Feedback.session == session).all()
            s.expunge_all()
            return rows

    for _ in range(40):  # the POST is sent in the background
        if stored():
            break
        page.wait_for_timeout(250)
    rows = stored()
    assert [r.rating for r in rows] == ["up"]
    assert chosen.group(1) in (rows[0].text or "")  # the whole answer, not one part

    # Reload: the history is back and the conversation goes on about the chosen procedure.
    count = w.el("msg-bot").count()
    page.reload()
    w.el("launcher").wait_for()
    if not w.el("panel").is_visible():
        w.open()
    assert w.el("msg-bot").count() == count
    follow = w.ask("cần giấy tờ gì")
    assert chosen.group(1) in follow, follow
    assert not w.errors, w.errors


def test_messages_are_text_never_html(stack: Stack, browser) -> None:  # noqa: ANN001
    page = browser.new_page()
    w = Widget(page)
    page.goto(base(stack) + "/demo")
    w.open()
    evil = "<img src=x onerror=\"window.__pwned=1\"> <b>đậm</b>"
    w.ask(evil)
    assert w.el("msg-user").last.inner_text().strip() == evil
    root = "document.querySelector('#dvc-widget-root').shadowRoot"
    assert page.evaluate(f"{root}.querySelectorAll('img').length") == 0
    assert page.evaluate("window.__pwned") is None


def test_keyboard_only_and_new_conversation(stack: Stack, browser) -> None:  # noqa: ANN001
    page = browser.new_page()
    w = Widget(page)
    page.goto(base(stack) + "/demo")
    w.el("launcher").wait_for()
    w.el("launcher").focus()
    page.keyboard.press("Enter")
    w.el("panel").wait_for(state="visible")
    assert w.el("launcher").get_attribute("aria-expanded") == "true"
    assert w.el("input").evaluate("e => e === e.getRootNode().activeElement")
    before = w.el("msg-bot").count()
    page.keyboard.type("xin chào")
    page.keyboard.press("Enter")
    w.wait_for_reply(before)
    old_session = page.evaluate("localStorage.getItem('dvc-widget:session')")
    # Tab reaches the "new conversation" control; Enter activates it.
    for _ in range(40):
        page.keyboard.press("Tab")
        if w.el("new-conversation").evaluate("e => e === e.getRootNode().activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the new-conversation button")
    page.keyboard.press("Enter")
    assert w.el("msg-user").count() == 0
    assert page.evaluate("localStorage.getItem('dvc-widget:session')") != old_session
    page.keyboard.press("Escape")
    w.el("panel").wait_for(state="hidden")
    assert w.el("launcher").evaluate("e => e === e.getRootNode().activeElement")
    assert w.el("launcher").get_attribute("aria-expanded") == "false"


def test_phone_width_is_full_screen(stack: Stack, browser) -> None:  # noqa: ANN001
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 360, "height": 740})
    w = Widget(page)
    page.goto(base(stack) + "/demo")
    w.open()
    w.ask("đăng ký khai sinh mất bao lâu")
    box = w.el("panel").bounding_box()
    assert box and box["width"] >= 359 and box["x"] <= 1
    page.screenshot(path=str(SHOTS / "widget-phone-360.png"))


@pytest.fixture()
def other_site(tmp_path: Path, stack: Stack) -> Iterator[str]:
    """A plain HTML file with the documented snippet, served from another port."""
    (tmp_path / "index.html").write_text(
        "<!doctype html><html lang='vi'><head><meta charset='utf-8'>"
        "<link rel='icon' href='data:,'><title>Trang khác"
        "</title></head><body><h1>Trang của phường</h1>"
        f"<script src='{base(stack)}/widget.js' defer></script></body></html>",
        encoding="utf-8")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


def test_snippet_pasted_into_another_site_chats(stack: Stack, browser,  # noqa: ANN001
                                                other_site: str) -> None:
    page = browser.new_page()
    w = Widget(page)
    page.goto(other_site)
    w.open()
    answer = w.ask("đăng ký tạm trú cần giấy tờ gì")
    assert "Hồ sơ cần chuẩn bị" in answer, answer
    assert not w.errors, w.errors


def test_rest_fallback_without_websocket_and_unread_badge(stack: Stack,  # noqa: ANN001
                                                          browser) -> None:
    """A proxy that blocks WebSockets: the widget still chats over REST; a reply that
    arrives while the panel is closed shows the unread badge."""
    page = browser.new_page()
    page.add_init_script("""window.WebSocket = function () { throw new Error('blocked'); };
        Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});""")
    w = Widget(page)
    page.goto(base(stack) + "/demo")
    w.open()
    answer = w.ask("đăng ký tạm trú cần giấy tờ gì")
    assert "Hồ sơ cần chuẩn bị" in answer, answer

    # Hold the next answer back a little, so the panel is surely closed when it arrives.
    page.route("**/api/v1/chat", lambda route: (time.sleep(1.5), route.continue_()))
    w.el("input").fill("đăng ký tạm trú mất bao lâu")
    w.el("send").click()
    page.keyboard.press("Escape")  # closed before the answer arrives
    w.el("panel").wait_for(state="hidden")
    w.el("badge").wait_for(state="visible", timeout=TIMEOUT)
    assert w.el("badge").inner_text().strip() == "1"
    w.open()
    assert not w.el("badge").is_visible()
    assert "Thời hạn giải quyết" in w.bot_texts()[-1]
    assert not w.errors, w.errors
