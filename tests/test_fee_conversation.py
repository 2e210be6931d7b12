"""Fee conversations through the real stack: province from configuration and from the chat.

The deployment is Hà Nội (PROVINCE=01) on a fixed day (FEE_DATE), so the reductions in the
catalog have a known state. Expected amounts are read from the catalog database (the
national rules the import derived), never written into the test: the test checks that the
conversation applies the right rule, not one number.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest

from bot.catalog.db import session_scope
from bot.catalog.models import FeeRule, Procedure
from bot.fees.rules import COUNCIL
from bot.stack import Stack
from bot.text import vnd
from tests.conftest import own_stack
from tests.test_dialogue_choice import chat

pytestmark = pytest.mark.integration
DAY = "2026-11-27"


@pytest.fixture(scope="module")
def stack(trained) -> Iterator[Stack]:
    """A stack of its own (see tests.conftest.own_stack)."""
    with own_stack(trained, "fees", PROVINCE="01", FEE_DATE=DAY) as st:
        yield st


def answered_code(text: str) -> str:
    m = re.search(r"mã thủ tục ([\d.]+)", text)
    assert m, text
    return m.group(1)


def rules(st: Stack, code: str) -> tuple[Procedure, list[FeeRule]]:
    with session_scope(st.settings.database_url) as s:
        p = s.get(Procedure, code)
        assert p is not None
        found = list(p.fee_rules)
        s.expunge_all()
        return p, found


def standard(found: list[FeeRule], channel: str) -> int | None:
    return next(r.amount for r in found if r.kind == "standard" and r.channel == channel)


def line(text: str, label: str) -> str:
    return next(x for x in text.splitlines() if x.startswith(f"• {label}"))


def test_council_fee_online_vs_in_person_in_hanoi_and_elsewhere(stack: Stack) -> None:
    sender = "fee-hkd"
    text, _ = chat(stack, sender, "lệ phí đăng ký thành lập hộ kinh doanh là bao nhiêu")
    code = answered_code(text)
    p, found = rules(stack, code)
    assert p.fee_set_by == COUNCIL  # the catalog says the provincial council sets this fee
    direct = standard(found, "in_person")
    online_national = standard(found, "online")
    assert direct and online_national, found

    assert "tại Hà Nội" in text, text
    assert line(text, "Nộp trực tuyến").startswith("• Nộp trực tuyến: 0 đồng"), text
    assert "Hà Nội" in line(text, "Nộp trực tuyến")
    assert line(text, "Nộp trực tiếp").startswith(f"• Nộp trực tiếp: {vnd(direct)}"), text
    assert "kỳ họp thứ 12" in text  # the basis of the 0-đồng rule is cited

    # The citizen lives elsewhere: the Hà Nội rule no longer applies.
    text, _ = chat(stack, sender, "tôi ở Đà Nẵng")
    assert code in text and "tại Đà Nẵng" in text, text
    assert line(text, "Nộp trực tuyến").startswith(
        f"• Nộp trực tuyến: {vnd(online_national)}"), text

    # ...and the province stays for the next question, until changed again.
    text, _ = chat(stack, sender, "phí bao nhiêu?")
    assert "tại Đà Nẵng" in text and vnd(online_national) in text, text
    text, _ = chat(stack, sender, "mình ở hn")
    assert line(text, "Nộp trực tuyến").startswith("• Nộp trực tuyến: 0 đồng"), text


def test_ministry_fee_keeps_the_national_reduction_in_hanoi(stack: Stack) -> None:
    text, _ = chat(stack, "fee-cccd", "lam lai cccd het bao nhieu tien")
    code = answered_code(text)
    p, found = rules(stack, code)
    assert p.fee_set_by is None  # a ministry sets it: Hà Nội's online rule cannot apply
    day = date.fromisoformat(DAY)
    reductions = [r for r in found if r.kind == "reduction" and r.channel == "online"
                  and (r.valid_from is None or r.valid_from <= day)
                  and (r.valid_to is None or day <= r.valid_to)]
    assert reductions, found  # the catalog states a 50 % reduction until 31/12/2026
    r = reductions[0]
    expected = r.amount if r.amount is not None else round(
        standard(found, "online") * r.percent / 100)
    online = line(text, "Nộp trực tuyến")
    assert online.startswith(f"• Nộp trực tuyến: {vnd(expected)}"), text
    assert f"{r.valid_to:%d/%m/%Y}" in online


def test_declared_exemption_makes_the_fee_zero(stack: Stack) -> None:
    sender = "fee-exempt"
    text, _ = chat(stack, sender, "lệ phí đăng ký khai sinh có yếu tố nước ngoài bao nhiêu")
    code = answered_code(text)
    _, found = rules(stack, code)
    exemptions = [r for r in found if r.kind == "exemption" and "ho_ngheo" in
                  (r.exempt_tags or "")]
    assert exemptions, found
    assert "hộ nghèo" in text and "Bạn có thuộc" in text, text  # asked only where one exists

    text, _ = chat(stack, sender, "nhà tôi thuộc hộ nghèo")
    assert code in text, text
    direct = line(text, "Nộp trực tiếp")
    assert direct.startswith("• Nộp trực tiếp: 0 đồng") and "hộ nghèo" in direct, text
    assert "Bạn có thuộc" not in text
