"""Dashboard numbers and SVG charts.

The numbers are checked as differences: the dashboard is computed before and after this
module's conversations on the console's shared stack (tests.test_console_conversations),
so other modules' conversations in the same database cannot blur them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

from bot.catalog.db import session_scope
from bot.console.charts import bar_chart, line_chart, number_vi
from bot.console.conversations import VIETNAM, read_conversation
from bot.console.stats import DashboardStats, dashboard
from bot.handover.queue import open_handover
from tests.test_console_conversations import FEE_QUESTION, NONSENSE, chat, console_stack, rate

WEB = "stats-web-0001"
WIDGET = "stats-widget-0001"
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Made:
    url: str
    before: DashboardStats
    after: DashboardStats


def today() -> date:
    return datetime.now(VIETNAM).date()


@pytest.fixture(scope="module")
def made(trained, request: pytest.FixtureRequest,  # noqa: ANN001
         tmp_path_factory: pytest.TempPathFactory) -> Made:
    """Web: the fee question (answered about a procedure) and nonsense, thumbs up; widget:
    the fee question again, thumbs down, then handed to a person."""
    st, url = console_stack(trained, request, tmp_path_factory)
    start, end = today() - timedelta(days=1), today() + timedelta(days=1)
    with session_scope(url) as s:
        before = dashboard(s, start, end)
    answer = chat(st, WEB, FEE_QUESTION)
    rate(st, WEB, "up", answer)
    chat(st, WEB, NONSENSE)
    answer = chat(st, WIDGET, FEE_QUESTION, channel="widget")
    rate(st, WIDGET, "down", answer)
    open_handover(url, sender_id=WIDGET, channel="widget", address=WIDGET,
                  reason="requested", after_hours=False)
    with session_scope(url) as s:
        after = dashboard(s, start, end)
    return Made(url, before, after)


@pytest.mark.integration
def test_numbers_match_the_conversations(made: Made) -> None:
    b, a = made.before, made.after
    assert a.conversations - b.conversations == 2
    assert a.handed_over - b.handed_over == 1
    assert a.answered_without_human - b.answered_without_human == 1
    assert a.share_without_human == pytest.approx(a.answered_without_human / a.conversations)
    assert a.citizen_messages - b.citizen_messages == 3
    assert a.fallback_messages - b.fallback_messages == 1
    assert a.fallback_rate == pytest.approx(a.fallback_messages / a.citizen_messages)
    assert (a.thumbs_up - b.thumbs_up, a.thumbs_down - b.thumbs_down) == (1, 1)
    assert a.thumbs_up_ratio == pytest.approx(a.thumbs_up / (a.thumbs_up + a.thumbs_down))
    intents = Counter(dict(a.top_intents))
    intents.subtract(dict(b.top_intents))
    assert +intents == Counter({"ask_fee": 2})  # fallbacks are not an intent here


@pytest.mark.integration
def test_per_day_and_top_procedure(made: Made) -> None:
    with session_scope(made.url) as s:
        turns = read_conversation(s, WEB) + read_conversation(s, WIDGET)
        code = next(v for t in turns for name, v in t.slots if name == "procedure_code")
    days = Counter()
    for sender in (WEB, WIDGET):
        with session_scope(made.url) as s:
            days.update({t.at.astimezone(VIETNAM).date() for t in read_conversation(s, sender)})
    before, after = dict(made.before.per_day), dict(made.after.per_day)
    assert list(after) == [made.after.start + timedelta(days=i) for i in range(3)]
    assert {d: after[d] - before[d] for d in after if after[d] != before[d]} == dict(days)
    top = {c: (name, n) for c, name, n in made.after.top_procedures}
    old = {c: n for c, _, n in made.before.top_procedures}
    name, count = top[code]
    assert count - old.get(code, 0) == 2 and name != code  # the catalog's name
    assert "căn cước" in name.lower()


def test_empty_range_has_no_ratios(db_url: str) -> None:
    with session_scope(db_url) as s:
        stats = dashboard(s, date(2026, 1, 3), date(2026, 1, 1))  # reversed on purpose
    assert (stats.start, stats.end, stats.conversations) == (date(2026, 1, 1),
                                                             date(2026, 1, 3), 0)
    assert stats.per_day == [(date(2026, 1, d), 0) for d in (1, 2, 3)]
    assert (stats.share_without_human, stats.fallback_rate, stats.thumbs_up_ratio) == (
        None, None, None)


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML or this raises
    assert root.tag == f"{SVG}svg" and root.get("viewBox", "").startswith("0 0 640 ")
    assert root.get("role") == "img"
    ids = root.get("aria-labelledby", "").split()
    found = {el.get("id") for el in root.iter() if el.get("id")}
    assert len(ids) == 2 and set(ids) <= found
    return root


def test_bar_chart_escapes_labels_and_is_accessible() -> None:
    hostile = '<script>alert("x")</script> & co'
    svg = bar_chart([(hostile, 12), ("Cấp lại thẻ căn cước", 1234)], title="Thủ tục hỏi nhiều",
                    unit="cuộc")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    root = _parse(svg)
    assert root.find(f"{SVG}title").text == "Thủ tục hỏi nhiều"
    desc = root.find(f"{SVG}desc").text
    assert hostile in desc and "1.234 cuộc" in desc  # the parsed text is the original
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert hostile in texts and "1.234 cuộc" in texts
    widths = [float(r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert widths[0] < widths[1]


def test_line_chart_per_day() -> None:
    points = [(date(2026, 11, 1) + timedelta(days=i), i % 4) for i in range(30)]
    root = _parse(line_chart(points, title="Cuộc trò chuyện mỗi ngày", unit="cuộc"))
    assert len(list(root.iter(f"{SVG}circle"))) == 30
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "30/11" in labels and len([x for x in labels if x and "/" in x]) <= 11
    assert "01/11/2026: 0 cuộc" in root.find(f"{SVG}desc").text
    empty = _parse(line_chart([], title="Trống"))
    assert "Chưa có dữ liệu" in empty.find(f"{SVG}desc").text
    assert _parse(bar_chart([], title="<b>"))


def test_number_format() -> None:
    assert (number_vi(1234567), number_vi(12.5), number_vi(0)) == ("1.234.567", "12,5", "0")
