"""Fee answers in the actions: province and situation from the message and the slots."""

from __future__ import annotations

import pytest

from actions.answers import AnswerFee
from actions.fees import SetFeeContext, declared_situations
from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.fees.rules import COUNCIL
from tests.test_actions import run, tracker


@pytest.fixture()
def catalog(seeded_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", seeded_db)
    monkeypatch.setenv("PROVINCE", "01")
    monkeypatch.setenv("FEE_DATE", "2026-11-27")
    return seeded_db


def council_procedure(db: str, with_exemption: bool = False) -> str:
    """A seed procedure whose fee the provincial council sets (optionally exemptable)."""
    with session_scope(db) as s:
        for p in s.query(Procedure).order_by(Procedure.code):
            has = any(r.kind == "exemption" and r.exempt_tags for r in p.fee_rules)
            online = any(c.channel == "online" for c in p.channels)
            if p.fee_set_by == COUNCIL and online and has == with_exemption:
                return p.code
    raise AssertionError("no such seed procedure")


def slots_of(events: list[dict]) -> dict[str, object]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def test_province_named_in_the_question_is_used_and_remembered(catalog: str) -> None:
    code = council_procedure(catalog)
    msgs, events = run(AnswerFee(), tracker("ở Đà Nẵng thì phí bao nhiêu",
                                            slots={"procedure_code": code}, intent="ask_fee"))
    text = msgs[0]["text"]
    assert "tại Đà Nẵng" in text and "theo quy định riêng" not in text, text
    assert slots_of(events)["province"] == "48"

    msgs, events = run(AnswerFee(), tracker("phí bao nhiêu", slots={
        "procedure_code": code, "province": "48"}, intent="ask_fee"))
    assert "tại Đà Nẵng" in msgs[0]["text"]
    assert "province" not in slots_of(events)  # nothing new to remember


def test_configured_province_applies_without_being_stored(catalog: str) -> None:
    code = council_procedure(catalog)
    msgs, events = run(AnswerFee(), tracker("phí bao nhiêu", slots={"procedure_code": code},
                                            intent="ask_fee"))
    text = msgs[0]["text"]
    assert "tại Hà Nội" in text and "• Nộp trực tuyến: 0 đồng" in text, text
    assert "theo quy định riêng của Hà Nội" in text
    assert "province" not in slots_of(events)


def test_a_named_channel_gets_one_line(catalog: str) -> None:
    code = council_procedure(catalog)
    msgs, _ = run(AnswerFee(), tracker("nộp online thì mất bao nhiêu tiền",
                                       slots={"procedure_code": code}, intent="ask_fee"))
    lines = [x for x in msgs[0]["text"].splitlines() if x.startswith("• ")]
    assert len(lines) == 1 and lines[0].startswith("• Nộp trực tuyến"), lines


def test_exemption_question_only_where_an_exemption_exists(catalog: str) -> None:
    with_ex = council_procedure(catalog, with_exemption=True)
    without = council_procedure(catalog, with_exemption=False)
    msgs, _ = run(AnswerFee(), tracker("phí", slots={"procedure_code": with_ex},
                                       intent="ask_fee"))
    assert "Bạn có thuộc một trong các trường hợp này" in msgs[0]["text"]
    msgs, _ = run(AnswerFee(), tracker("phí", slots={"procedure_code": without},
                                       intent="ask_fee"))
    assert "Bạn có thuộc" not in msgs[0]["text"]


def test_declaring_a_situation_re_answers_the_fee(catalog: str) -> None:
    code = council_procedure(catalog, with_exemption=True)
    msgs, events = run(SetFeeContext(), tracker("nhà tôi thuộc hộ nghèo", slots={
        "procedure_code": code}, intent="inform_situation"))
    text = msgs[0]["text"]
    assert code in text
    assert "• Nộp trực tiếp: 0 đồng" in text and "hộ nghèo" in text, text
    assert slots_of(events)["situation"] == ["ho_ngheo"]


def test_a_negated_situation_declares_nothing(catalog: str) -> None:
    assert declared_situations("tôi không thuộc hộ nghèo") == []
    code = council_procedure(catalog, with_exemption=True)
    msgs, events = run(SetFeeContext(), tracker("tôi không thuộc hộ nghèo", slots={
        "procedure_code": code}, intent="inform_situation"))
    assert "situation" not in slots_of(events)
    assert "tỉnh, thành phố nào" in msgs[0]["text"]


def test_declaring_a_province_without_a_procedure_asks_which_one(catalog: str) -> None:
    msgs, events = run(SetFeeContext(), tracker("mình ở tp hcm", intent="inform_province"))
    assert "Hồ Chí Minh" in msgs[0]["text"] and "thủ tục nào" in msgs[0]["text"]
    assert slots_of(events) == {"province": "79"}


def test_declaring_a_province_re_answers_for_that_province(catalog: str) -> None:
    code = council_procedure(catalog)
    msgs, events = run(SetFeeContext(), tracker("toi o da nang", slots={
        "procedure_code": code, "province": "01"}, intent="inform_province"))
    text = msgs[0]["text"]
    assert code in text and "tại Đà Nẵng" in text and "quy định riêng" not in text, text
    assert slots_of(events) == {"province": "48"}
