"""The console's conversation, inbox and dashboard pages over conversations made through a
real stack (the console modules' shared stack, tests.test_console_conversations).

The pages run in-process on the gateway app (TestServer) against the stack's database, so
the inbox can write its corrections into a copy of data/nlu instead of the checkout.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.catalog.db import session_scope
from bot.config import ROOT, Settings
from bot.console import accounts, inbox
from bot.console.corrections import export_corrections
from bot.console.models import AuditEntry
from bot.console.nlu_pages import MarkupError, parse_markup, to_marked
from bot.gateway.app import create_app
from tests.conftest import free_port
from tests.test_console_auth import PASSWORD, csrf_of, login
from tests.test_console_conversations import (  # noqa: F401 - `made` is a fixture
    NONSENSE,
    WEB,
    WIDGET,
    chat,
    console_stack,
    made,
)

pytestmark = pytest.mark.integration
# This module's own message: the shared stack's other modules review theirs.
PAGES_NONSENSE = "vrumpf klatsch zzq"
PAGES_SENDER = "console-pages-0001"


@pytest.fixture(scope="module")
def own_fallback(trained, request: pytest.FixtureRequest,  # noqa: ANN001
                 tmp_path_factory: pytest.TempPathFactory) -> str:
    """A message the NLU does not understand, sent through the real stack by this module."""
    st, url = console_stack(trained, request, tmp_path_factory)
    chat(st, PAGES_SENDER, PAGES_NONSENSE)
    return url


@pytest.fixture(scope="module")
def nlu_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("nlu") / "nlu"
    shutil.copytree(ROOT / "data" / "nlu", target)
    return target


@pytest.fixture()
async def console(made: tuple[str, datetime], nlu_dir: Path,  # noqa: F811
                  ) -> AsyncIterator[TestClient]:
    url, _ = made
    with session_scope(url) as s:
        for name, role in (("pages-trainer", "trainer"), ("pages-agent", "agent")):
            try:
                accounts.add_operator(s, name, PASSWORD, role)
            except accounts.AccountError:
                pass  # made by an earlier test of this module
    settings = Settings.from_env({
        "DATABASE_URL": url, "NLU_CORRECTIONS_FILE": str(nlu_dir / "corrections.yml"),
        "RASA_URL": f"http://127.0.0.1:{free_port()}",
        "ACTIONS_URL": f"http://127.0.0.1:{free_port()}"})
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def test_dashboard_shows_numbers_and_three_charts(console: TestClient) -> None:
    await login(console, "pages-agent")
    html = await (await console.get("/console/")).text()
    assert 'data-testid="kpi-conversations"' in html
    svgs = [part.split("</svg>")[0] + "</svg>" for part in html.split("<svg")[1:]]
    assert len(svgs) == 3
    for svg in svgs:
        ET.fromstring("<svg" + svg)  # well-formed
    assert "Số cuộc trò chuyện mỗi ngày" in html


async def test_conversations_are_listed_filtered_and_read(console: TestClient) -> None:
    await login(console, "pages-agent")
    html = await (await console.get("/console/conversations?fallback=1")).text()
    assert f"/console/conversations/{WEB}" in html and WIDGET not in html
    html = await (await console.get("/console/conversations?down=1")).text()
    assert f"/console/conversations/{WIDGET}" in html
    html = await (await console.get(f"/console/conversations/{WEB}")).text()
    assert NONSENSE in html and "bot không hiểu" in html and "ask_fee" in html
    # An agent reads but does not get the link to correct the NLU.
    assert "/console/inbox/" not in html
    assert (await console.get("/console/inbox")).status == 403
    assert (await console.get("/console/conversations/nobody-here")).status == 404


async def test_inbox_one_click_correction_writes_training_data_and_audits(
        console: TestClient, own_fallback: str, nlu_dir: Path) -> None:
    url = own_fallback
    await login(console, "pages-trainer")
    html = await (await console.get("/console/inbox")).text()
    assert PAGES_NONSENSE in html
    with session_scope(url) as s:
        item = next(i for i in inbox.inbox(s, limit=500)[0] if i.text == PAGES_NONSENSE)
    token = await csrf_of(console, "/console/inbox")
    # A changed word is refused: the example must be the citizen's own text.
    resp = await console.post(f"/console/inbox/{item.id}", data={
        "csrf": token, "action": "correct", "intent": "out_of_scope",
        "marked": PAGES_NONSENSE + " nữa"})
    assert resp.status == 400 and "giữ nguyên" in await resp.text()
    resp = await console.post(f"/console/inbox/{item.id}", data={
        "csrf": token, "action": "out_of_scope"})
    assert resp.status == 200 and "Đã lưu." in await resp.text()
    with session_scope(url) as s:  # stored in the database; `bot nlu export-corrections`
        assert export_corrections(s, nlu_dir / "corrections.yml") >= 1
    data = yaml.safe_load((nlu_dir / "corrections.yml").read_text(encoding="utf-8"))
    block = next(b for b in data["nlu"] if b["intent"] == "out_of_scope")
    assert PAGES_NONSENSE in block["examples"]
    assert PAGES_NONSENSE not in await (await console.get("/console/inbox")).text()
    with session_scope(url) as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "nlu.out_of_scope",
                                                   AuditEntry.target == str(item.id)))\
            .scalar_one()
        assert entry.actor == "pages-trainer"


@pytest.mark.parametrize(("marked", "text", "spans"), [
    ("làm [căn cước](procedure) mất bao lâu", "làm căn cước mất bao lâu",
     [(4, 12, "procedure")]),
    ("không có gì", "không có gì", []),
    ("[a](x) và [b](y)", "a và b", [(0, 1, "x"), (5, 6, "y")]),
])
def test_markup_round_trip(marked: str, text: str, spans: list[tuple[int, int, str]]) -> None:
    plain, got = parse_markup(marked)
    assert plain == text and [(s.start, s.end, s.entity) for s in got] == spans
    assert to_marked(plain, got) == marked


@pytest.mark.parametrize("bad", ["làm [căn cước mất bao lâu", "làm [căn cước](procedure"])
def test_broken_markup_is_refused(bad: str) -> None:
    with pytest.raises(MarkupError):
        parse_markup(bad)
