"""Human handover end to end: the real gateway, Rasa, action server and database, a real
browser (Debian's chromium through Playwright) and the fake Zalo OA server on loopback.

The agent's side is the queue's service functions called from this test process, i.e. a
console running in another process than the gateway: replies reach the widget through the
gateway's change feed and socket registry, and Zalo users through the durable outbox.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.handover import queue
from bot.stack import Stack
from tests.conftest import ROOT, own_stack
from tests.test_zalo_channel import post, text_event, texts_to, wait_until
from tests.test_zalo_channel import zalo as zalo  # noqa: F401 - the fake Zalo fixture
from tests.widget_page import Widget, chromium
from tests.zalo_fake import FakeZalo

pytestmark = pytest.mark.integration
OA_SECRET = "fake-oa-secret-key"  # as tests.test_zalo_channel signs events
SHOTS = ROOT / "var" / "screenshots"
ASK_HUMAN = "cho tôi gặp cán bộ"
STAFF = "cb.lan"


@pytest.fixture(scope="module")
def nlu_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of data/nlu: the console's corrections in this stack go there, not into git."""
    import shutil

    target = tmp_path_factory.mktemp("handover-nlu") / "nlu"
    shutil.copytree(ROOT / "data" / "nlu", target)
    return target


@pytest.fixture(scope="module")
def stack(trained, zalo: FakeZalo, nlu_copy: Path) -> Iterator[Stack]:  # noqa: F811
    """One stack for the module, staffed at any hour (after-hours wording is covered by
    test_handover_actions.py), with the Zalo channel on the fake."""
    with own_stack(trained, "handover", HANDOVER_HOURS="always",
                   NLU_CORRECTIONS_FILE=str(nlu_copy / "corrections.yml"),
                   ZALO_APP_ID=zalo.app_id, ZALO_OA_SECRET_KEY=OA_SECRET,
                   ZALO_APP_SECRET=zalo.app_secret, ZALO_ACCESS_TOKEN=zalo.access_token,
                   ZALO_REFRESH_TOKEN=zalo.refresh_token, ZALO_API_BASE=zalo.base_url,
                   ZALO_OAUTH_BASE=zalo.base_url) as st:
        yield st


def base(st: Stack) -> str:
    return f"http://{st.settings.bot_host}:{st.settings.bot_port}"


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, json.loads(resp.read())


def chat(st: Stack, sender: str, text: str) -> dict[str, Any]:
    status, body = http("POST", f"{base(st)}/api/v1/chat", {"sender": sender, "text": text})
    assert status == 200
    return body


def joined(body: dict[str, Any]) -> str:
    return "\n".join(m.get("text") or "" for m in body["messages"])


def rasa_heard(st: Stack, sender: str) -> list[str]:
    """The user messages Rasa's tracker holds for a conversation."""
    # Rasa's API needs the token the stack made (bot run: RASA_TOKEN, or one per run)
    _, tracker = http("GET", f"{st.settings.rasa_url}/conversations/{sender}/tracker"
                             f"?token={st.settings.rasa_token}")
    return [e.get("text") for e in tracker.get("events", []) if e.get("event") == "user"]


def open_handover_of(st: Stack, sender: str) -> queue.HandoverView:
    state = queue.find_open(st.settings.database_url, sender)
    assert state is not None, f"no open handover for {sender}"
    return queue.get(st.settings.database_url, state.id).handover


def test_rest_request_silence_reply_close(stack: Stack) -> None:
    url, sender = stack.settings.database_url, "rest-handover-1"
    body = chat(stack, sender, ASK_HUMAN)
    assert "chuyển cuộc trò chuyện tới cán bộ" in joined(body)
    assert body["handover"] == {"status": "waiting", "after_hours": False}
    h = open_handover_of(stack, sender)
    assert (h.channel, h.reason) == ("web", "requested")

    body = chat(stack, sender, "Tôi muốn hỏi về tranh chấp đất đai")
    assert [m["author"] for m in body["messages"]] == ["system"]  # one note, no bot answer
    assert chat(stack, sender, "đăng ký khai sinh cần giấy tờ gì")["messages"] == []
    assert "đăng ký khai sinh cần giấy tờ gì" not in rasa_heard(stack, sender)

    queue.take(url, h.id, STAFF)
    queue.reply(url, h.id, STAFF, "Chào bạn, tranh chấp đất đai thì bạn liên hệ UBND phường.")
    _, pulled = http("GET", f"{base(stack)}/api/v1/messages?session={sender}&after=0")
    assert pulled["handover"]["status"] == "held"
    assert any(m["author"] == "agent" and "UBND phường" in m["text"]
               for m in pulled["messages"])

    queue.close(url, h.id, STAFF)
    body = chat(stack, sender, "đăng ký khai sinh cần giấy tờ gì")
    assert "handover" not in body and "Hồ sơ cần chuẩn bị" in joined(body)
    assert "kết thúc" in body["messages"][0]["text"]  # the close note comes first
    thread = [(m.author, m.text) for m in queue.get(url, h.id).messages]
    assert ("citizen", "Tôi muốn hỏi về tranh chấp đất đai") in thread


def test_zalo_user_gets_the_agents_reply(stack: Stack, zalo: FakeZalo) -> None:  # noqa: F811
    url, user = stack.settings.database_url, "u-handover"
    assert post(stack, zalo, text_event(user, "msg-h-1", ASK_HUMAN))[0] == 200
    wait_until(lambda: any("chuyển cuộc trò chuyện tới cán bộ" in t
                           for t in texts_to(zalo, user)))
    h = open_handover_of(stack, f"zalo-{user}")
    assert (h.channel, h.address) == ("zalo", user)

    for i, text in enumerate(("Tôi cần hỏi về hộ khẩu", "Bạn ơi")):
        assert post(stack, zalo, text_event(user, f"msg-h-{i + 2}", text))[0] == 200
    wait_until(lambda: sum("đã được chuyển tới cán bộ" in t for t in texts_to(zalo, user)) == 1)

    queue.reply(url, h.id, STAFF, "Chào bạn, mình là cán bộ phường, bạn hỏi gì về hộ khẩu?")
    wait_until(lambda: any("mình là cán bộ phường" in t for t in texts_to(zalo, user)), 30)
    wait_until(lambda: queue.get(url, h.id).messages[-1].delivery == "delivered", 30)
    queue.close(url, h.id, STAFF)
    wait_until(lambda: any("kết thúc" in t for t in texts_to(zalo, user)), 30)

    sent = texts_to(zalo, user)
    assert not any("Hồ sơ cần chuẩn bị" in t for t in sent)  # the bot stayed silent
    assert post(stack, zalo, text_event(user, "msg-h-9", "đăng ký khai sinh cần giấy tờ gì"
                                        ))[0] == 200
    wait_until(lambda: any("Hồ sơ cần chuẩn bị" in t for t in texts_to(zalo, user)))


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def test_widget_user_sees_the_staff_reply_labelled(stack: Stack, browser: Any) -> None:
    url = stack.settings.database_url
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    w = Widget(page, console_errors=False)
    page.goto(base(stack) + "/demo")
    w.open()
    assert "chuyển cuộc trò chuyện tới cán bộ" in w.ask(ASK_HUMAN, one_bubble=False)
    w.el("handover-status").wait_for(state="visible")
    assert "Đang chờ cán bộ" in w.el("handover-status").inner_text()

    bots = w.el("msg-bot").count()
    w.send("Tôi muốn hỏi về giấy phép xây dựng nhà ở")
    w.el("msg-note").first.wait_for(timeout=10_000)  # the single "sent to staff" note
    assert w.el("msg-bot").count() == bots  # the bot said nothing

    h = open_handover_of(stack, w.session())
    assert h.channel == "widget"
    queue.take(url, h.id, STAFF)
    queue.reply(url, h.id, STAFF, "Chào bạn, mình là cán bộ phường. Nhà bạn mấy tầng?")
    w.el("msg-staff").first.wait_for(timeout=10_000)  # pushed within a few seconds
    assert "Nhà bạn mấy tầng?" in w.el("msg-staff").last.inner_text()
    assert w.el("staff-label").last.inner_text().strip() == "Cán bộ hỗ trợ"
    assert "đang trò chuyện" in w.el("handover-status").inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "widget-handover.png"))

    # A reload keeps the labelled reply (history) and the handover bar (asked on connect).
    page.reload()
    if not w.el("panel").is_visible():
        w.open()
    assert "Nhà bạn mấy tầng?" in w.el("msg-staff").last.inner_text()
    w.el("handover-status").wait_for(state="visible", timeout=10_000)

    queue.close(url, h.id, STAFF)
    w.el("handover-status").wait_for(state="hidden", timeout=10_000)
    assert "kết thúc" in w.el("msg-note").last.inner_text()
    assert "Hồ sơ cần chuẩn bị" in w.ask("đăng ký khai sinh cần giấy tờ gì", one_bubble=False)
    assert not w.errors, w.errors


def test_widget_without_websocket_polls_for_the_reply_and_can_go_back(
        stack: Stack, browser: Any) -> None:
    url = stack.settings.database_url
    page = browser.new_page()
    page.add_init_script("""window.WebSocket = function () { throw new Error('blocked'); };
        Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});""")
    w = Widget(page, console_errors=False)
    page.goto(base(stack) + "/demo")
    w.open()
    assert "chuyển cuộc trò chuyện tới cán bộ" in w.ask(ASK_HUMAN, one_bubble=False)
    h = open_handover_of(stack, w.session())
    queue.reply(url, h.id, STAFF, "Mình nghe đây, bạn cần gì ạ?")
    w.el("msg-staff").first.wait_for(timeout=15_000)  # the 5-second poll
    assert "bạn cần gì" in w.el("msg-staff").last.inner_text()

    w.el("handover-cancel").click()  # "Quay lại trợ lý ảo"
    w.el("handover-status").wait_for(state="hidden", timeout=15_000)
    assert queue.get(url, h.id).handover.closed_by == "citizen"
    assert "Hồ sơ cần chuẩn bị" in w.ask("đăng ký tạm trú cần giấy tờ gì", one_bubble=False)
    assert not w.errors, w.errors


def test_operator_in_the_console_fixes_the_nlu_and_answers_a_widget_user(
        stack: Stack, browser: Any, nlu_copy: Path) -> None:
    """Two browsers: an agent-trainer in the console and a citizen in the widget."""
    import yaml

    from bot.catalog.db import session_scope
    from bot.console import accounts
    from bot.console.corrections import export_corrections

    with session_scope(stack.settings.database_url) as s:
        accounts.add_operator(s, "thu", "mat-khau-cua-thu-1", "trainer", "Cán bộ Thu")
    citizen = browser.new_page(viewport={"width": 1280, "height": 800})
    w = Widget(citizen, console_errors=False)
    citizen.goto(base(stack) + "/demo")
    w.open()
    nonsense = "qwop zzkx blarg"
    w.ask(nonsense, one_bubble=False)  # the bot does not understand

    op = browser.new_page(viewport={"width": 1280, "height": 900})
    op.on("dialog", lambda d: d.accept())  # the "are you sure" confirmations
    errors: list[str] = []
    op.on("pageerror", lambda e: errors.append(str(e)))
    op.goto(base(stack) + "/console/")
    op.fill("#username", "thu")
    op.fill("#password", "mat-khau-cua-thu-1")
    op.click("button[type=submit]")
    op.wait_for_selector("[data-testid='kpi-conversations']")

    # The inbox: the message the bot did not understand, marked out of scope in one click.
    op.click("nav >> text=Hộp cần xem")
    row = op.locator("[data-testid='inbox-row']", has_text=nonsense)
    row.wait_for()
    row.get_by_role("button", name="Ngoài phạm vi").click()
    op.wait_for_selector("text=Đã lưu.")
    assert op.locator("[data-testid='inbox-row']", has_text=nonsense).count() == 0
    # stored in the database for every replica; `bot nlu export-corrections` writes the file
    with session_scope(stack.settings.database_url) as s:
        assert export_corrections(s, nlu_copy / "corrections.yml") >= 1
    data = yaml.safe_load((nlu_copy / "corrections.yml").read_text(encoding="utf-8"))
    assert any(nonsense in b["examples"] for b in data["nlu"] if b["intent"] == "out_of_scope")

    # The citizen asks for a person; the queue page shows it by itself (long poll).
    op.click("nav >> text=Chuyển cán bộ")
    op.wait_for_selector("h1:has-text('Người dân cần gặp cán bộ')")
    w.ask(ASK_HUMAN, one_bubble=False)
    w.send("Tôi cần hỏi về hồ sơ cấp sổ đỏ bị trả về")
    w.el("msg-note").first.wait_for(timeout=10_000)
    mine = open_handover_of(stack, w.session())  # other tests' hand-overs may be queued too
    link = op.locator(f"a[href='/console/handover/{mine.id}']")
    link.wait_for(timeout=40_000)  # the queue page reloads by itself (long poll)
    link.click()
    op.wait_for_selector("text=hồ sơ cấp sổ đỏ bị trả về")
    op.click("[data-testid='take']")
    op.wait_for_selector("[data-testid='handover-status']:has-text('Đang trao đổi')")
    op.fill("[data-testid='reply-text']",
            "Chào bạn, mình là cán bộ Thu. Bạn gửi giúp mã hồ sơ nhé.")
    op.click("[data-testid='send-reply']")
    op.wait_for_selector("text=Bạn gửi giúp mã hồ sơ nhé.")
    op.screenshot(path=str(SHOTS / "console-handover.png"), full_page=True)

    # The citizen sees it in the widget, labelled as staff, within seconds.
    w.el("msg-staff").first.wait_for(timeout=15_000)
    assert "Bạn gửi giúp mã hồ sơ nhé." in w.el("msg-staff").last.inner_text()
    assert w.el("staff-label").last.inner_text().strip() == "Cán bộ hỗ trợ"

    # Closing gives the conversation back to the bot.
    op.click("[data-testid='close']")
    op.wait_for_selector("[data-testid='handover-status']:has-text('Đã kết thúc')")
    w.el("handover-status").wait_for(state="hidden", timeout=15_000)
    assert "Hồ sơ cần chuẩn bị" in w.ask("làm giấy khai sinh cần giấy tờ gì", one_bubble=False)
    assert not errors and not w.errors, errors + w.errors
