"""Each custom action against a real SQLite catalog loaded with the shipped seed."""

from __future__ import annotations

import json

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.answers import (
    KNOWLEDGE_WITH_PROCEDURE,
    NONE_OF_THESE_BUTTON,
    UNSURE,
    AnswerDocuments,
    AnswerFee,
    AnswerOnline,
    AnswerProcedure,
    AnswerProcessingTime,
    AnswerWhere,
    HandleDeny,
    NoneOfThese,
)
from actions.catalog_client import CANDIDATES, CONFIDENT, get_client
from actions.fees import CHANNEL_NAMES
from actions.formatting import duration, money
from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.catalog.seed import upsert_records
from bot.fees.service import FeeBook, vietnam_today
from bot.text import fold


@pytest.fixture()
def catalog(seeded_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", seeded_db)
    return seeded_db


def tracker(text: str, entities: list[dict] | None = None, slots: dict | None = None,
            intent: str = "ask_documents") -> Tracker:
    return Tracker(
        sender_id="test", slots=slots or {}, latest_message={
            "text": text, "intent": {"name": intent, "confidence": 0.99},
            "entities": entities or []},
        events=[], paused=False, followup_action=None, active_loop={},
        latest_action_name="action_listen",
    )


def run(action, trk: Tracker) -> tuple[list[dict], list[dict]]:
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, trk, {})
    return dispatcher.messages, events


def find(db_url: str, name_part: str) -> Procedure:
    """The seed procedure whose short name is `name_part`, else the first whose name has it."""
    with session_scope(db_url) as s:
        procs = s.query(Procedure).order_by(Procedure.code).all()
        exact = [p for p in procs if fold(p.short_name or "") == fold(name_part)]
        for p in exact + [p for p in procs if fold(name_part) in fold(p.name)]:
            _ = (p.channels, p.documents, p.steps, p.legal_basis)  # load before close
            return p
    raise AssertionError(f"no seed procedure named like {name_part!r}")


def test_documents_by_code_entity(catalog: str) -> None:
    p = find(catalog, "đăng ký khai sinh")
    msgs, events = run(AnswerDocuments(), tracker("cần giấy tờ gì", [
        {"entity": "procedure", "value": p.code, "start": 0, "end": 3}]))
    text = msgs[0]["text"]
    assert p.code in text and p.url in text
    for d in p.documents:
        assert d.name in text
    assert {"event": "slot", "name": "procedure_code", "value": p.code, "timestamp": None} \
        in events


def test_fee_lists_every_channel_with_the_resolver_amount(catalog: str) -> None:
    p = find(catalog, "cấp phiếu lý lịch tư pháp")
    msgs, _ = run(AnswerFee(), tracker("phí bao nhiêu", [
        {"entity": "procedure", "value": p.code}], intent="ask_fee"))
    text = msgs[0]["text"]
    assert p.code in text
    with session_scope(catalog) as s:
        proc = s.get(Procedure, p.code)
        decisions = FeeBook.load().decide_channels(proc, vietnam_today(), "01")
    assert len(decisions) == len({ch.channel for ch in p.channels})
    for d in decisions:
        assert f"• {CHANNEL_NAMES[d.channel]}: {money(d.amount)}" in text, text


def test_processing_time_follow_up_uses_the_conversation_slot(catalog: str) -> None:
    p = find(catalog, "đăng ký kết hôn")
    msgs, _ = run(AnswerProcessingTime(), tracker(
        "bao lâu thì có", slots={"procedure_code": p.code}, intent="ask_processing_time"))
    text = msgs[0]["text"]
    assert p.code in text
    for ch in p.channels:
        assert duration(ch) in text


def test_entity_words_resolved_by_search(catalog: str) -> None:
    p = find(catalog, "đăng ký tạm trú")
    msgs, events = run(AnswerWhere(), tracker("dang ky tam tru o dau", [
        {"entity": "procedure", "value": "dang ky tam tru", "start": 0, "end": 15}],
        intent="ask_where"))
    assert p.code in msgs[0]["text"]
    assert p.agency in msgs[0]["text"]
    assert events[0]["value"] == p.code


def test_new_procedure_overrides_the_slot(catalog: str) -> None:
    old = find(catalog, "đăng ký khai sinh")
    new = find(catalog, "đăng ký kết hôn")
    msgs, _ = run(AnswerFee(), tracker("còn đăng ký kết hôn thì phí bao nhiêu", [
        {"entity": "procedure", "value": new.code}], slots={"procedure_code": old.code},
        intent="ask_fee"))
    assert new.code in msgs[0]["text"] and old.code not in msgs[0]["text"]


def test_ambiguous_name_answers_the_likeliest_and_offers_the_others(catalog: str) -> None:
    """"căn cước": several procedures fit; the likeliest is answered, saying it is a guess,
    the others (at most 3) and the way out follow as buttons, all remembered."""
    msgs, events = run(AnswerFee(), tracker("căn cước", [
        {"entity": "procedure", "value": "căn cước", "text": "căn cước"}], intent="ask_fee"))
    text = msgs[0]["text"]
    assert text.startswith(UNSURE)
    *buttons, none = msgs[0]["buttons"]
    assert none == NONE_OF_THESE_BUTTON
    assert 1 <= len(buttons) <= 3
    for b in buttons:
        assert b["payload"].startswith("/ask_fee{")
        code = json.loads(b["payload"][len("/ask_fee"):])["procedure"]
        with session_scope(catalog) as s:
            assert s.get(Procedure, code) is not None
        assert f"mã thủ tục {code}" not in text  # offered, not answered
    answered = slot_events(events, "procedure_code")[0]["value"]
    assert f"mã thủ tục {answered}" in text and "Phí, lệ phí" in text
    # The candidates (and the aspect asked) are remembered for a typed follow-up.
    codes = [json.loads(b["payload"][len("/ask_fee"):])["procedure"] for b in buttons]
    assert slot_events(events, "candidates")[0]["value"] == {
        "codes": [answered, *codes], "aspects": ["fee"], "yes_no": False}


def retrieval_tracker(text: str, hits: list[tuple[str, str, float]], intent: str) -> Tracker:
    """A message as the NLU's retrieval left it (bot/nlu/retrieval.py): ranked hits."""
    trk = tracker(text, intent=intent)
    trk.latest_message["retrieval"] = {
        "procedures": [{"code": c, "name": n, "score": sc} for c, n, sc in hits],
        "aspects": [], "aspects_from_cues": False, "yes_no": False, "faq": [],
        "knowledge": []}
    return trk


def test_no_likely_procedure_asks_with_up_to_four_buttons(catalog: str) -> None:
    """Below CONFIDENT nothing is answered: up to 4 procedures in ranking order, then
    the way out, each button with a working payload."""
    with session_scope(catalog) as s:
        procs = [(p.code, p.display_name) for p in
                 s.query(Procedure).order_by(Procedure.code).limit(6)]
    codes = [c for c, _ in procs]
    hits = [(c, n, CONFIDENT - 0.05 - 0.06 * i) for i, (c, n) in enumerate(procs)]  # unlike
    msgs, events = run(AnswerFee(), retrieval_tracker("thủ tục kia phí bao nhiêu", hits,
                                                      "ask_fee"))
    assert len(msgs) == 1 and "thủ tục nào" in msgs[0]["text"]
    *candidates, last = msgs[0]["buttons"]
    assert last == {"title": "Không phải thủ tục nào ở trên", "payload": "/none_of_these"}
    assert [payload_code(b["payload"], "ask_fee") for b in candidates] == codes[:CANDIDATES]
    with session_scope(catalog) as s:
        for b, code in zip(candidates, codes, strict=False):
            assert b["title"] == s.get(Procedure, code).display_name
    assert not slot_events(events, "procedure_code")
    assert slot_events(events, "candidates")[0]["value"]["codes"] == codes[:CANDIDATES]


def test_knowledge_answer_offers_the_procedures_the_search_is_sure_of(catalog: str) -> None:
    """A general answer stays the answer (no card, no code in the text); procedures the
    search is sure of come as buttons, weak ones do not."""
    with session_scope(catalog) as s:
        procs = [(p.code, p.display_name) for p in
                 s.query(Procedure).order_by(Procedure.code).limit(3)]
    scores = (0.9, CONFIDENT, CONFIDENT - 0.01)
    trk = retrieval_tracker("sổ hộ khẩu còn dùng không", [
        (c, n, sc) for (c, n), sc in zip(procs, scores, strict=True)], "ask_procedure")
    trk.latest_message["retrieval"]["knowledge"] = [
        {"id": "k", "confident": True, "score": 0.8, "text": "Sổ hộ khẩu hết giá trị. Nguồn: …"}]
    msgs, events = run(AnswerProcedure(), trk)
    assert msgs[0]["text"].startswith("Sổ hộ khẩu hết giá trị.")
    assert not any(c in msgs[0]["text"] for c, _ in procs)
    assert [payload_code(b["payload"], "ask_procedure") for b in msgs[0]["buttons"]] == [
        procs[0][0], procs[1][0]]
    assert not slot_events(events, "procedure_code")


def test_a_point_of_a_named_procedure_is_answered_after_the_general_answer(
        catalog: str) -> None:
    """"nộp hồ sơ đăng ký kết hôn online có mất phí không": the general 0-đồng answer, then
    the fee of the procedure the message names, when the search is sure of it."""
    p = find(catalog, "đăng ký kết hôn")
    other = find(catalog, "đăng ký khai tử")
    knowledge = [{"id": "k", "confident": True, "score": 0.8,
                  "text": "Nộp trực tuyến ở Hà Nội: 0 đồng. Nguồn: …"}]

    def ask(top: float, runner_up: float, text: str) -> tuple[list[dict], list[dict]]:
        trk = retrieval_tracker(text, [(p.code, p.display_name, top),
                                       (other.code, other.display_name, runner_up)], "ask_fee")
        trk.latest_message["retrieval"]["knowledge"] = knowledge
        return run(AnswerFee(), trk)

    msgs, events = ask(0.95, 0.6, "nộp hồ sơ đăng ký kết hôn online có mất phí không")
    text = msgs[0]["text"]
    assert text.startswith("Nộp trực tuyến ở Hà Nội: 0 đồng.")
    assert f"mã thủ tục {p.code}" in text and "Phí, lệ phí" in text
    assert slot_events(events, "procedure_code")[0]["value"] == p.code
    # Not sure enough, no clear lead, or only the how-to asked: the general answer alone.
    for top, runner_up, message in ((KNOWLEDGE_WITH_PROCEDURE - 0.01, 0.5, "… có mất phí không"),
                                    (0.95, 0.93, "… có mất phí không"),
                                    (0.95, 0.5, "mất sổ hộ khẩu giờ làm sao")):
        msgs, events = ask(top, runner_up, message)
        assert msgs[0]["text"].startswith("Nộp trực tuyến ở Hà Nội: 0 đồng."), message
        assert f"mã thủ tục {p.code}" not in msgs[0]["text"], (top, runner_up, message)
        assert not slot_events(events, "procedure_code")


def test_a_quoted_answer_comes_with_the_other_related_questions(catalog: str) -> None:
    """The quoted Q&A is not linked twice; the other related ones follow it."""
    p = find(catalog, "đăng ký kết hôn")
    trk = retrieval_tracker("đăng ký kết hôn cần gì", [(p.code, p.display_name, 0.95)],
                            "ask_documents")
    trk.latest_message["retrieval"]["faq"] = [
        {"id": 7, "score": 0.7, "confident": True, "related": True, "quote": "«Trích A»",
         "line": "• Câu hỏi A (Bộ Tư pháp): https://dichvucong.gov.vn/a"},
        {"id": 8, "score": 0.5, "confident": True, "related": True,
         "line": "• Câu hỏi B (Bộ Tư pháp): https://dichvucong.gov.vn/b"}]
    msgs, _ = run(AnswerDocuments(), trk)
    text = msgs[0]["text"]
    assert text.index(p.code) < text.index("«Trích A»") < text.index("Câu hỏi B")
    assert "Câu hỏi A" not in text and "Hỏi đáp chính thức khác" in text


def test_weak_hits_get_the_related_official_questions(catalog: str) -> None:
    """Q&A rows the matcher found related but not sure enough to quote are linked (by
    their question) under the reply; never quoted."""
    trk = retrieval_tracker("thủ tục kia phí bao nhiêu", [], "ask_fee")
    trk.latest_message["retrieval"]["faq"] = [
        {"id": 1, "score": 0.4, "confident": False, "related": True,
         "line": "• Câu hỏi A (Bộ Tư pháp): https://dichvucong.gov.vn/a"},
        {"id": 2, "score": 0.3, "confident": False, "related": False,
         "line": "• Câu hỏi B (Bộ Tư pháp): https://dichvucong.gov.vn/b"}]
    msgs, _ = run(AnswerFee(), trk)
    text = msgs[0]["text"]
    assert "thủ tục nào" in text and "có thể liên quan" in text
    assert "Câu hỏi A" in text and "Câu hỏi B" not in text
    assert "Theo trả lời chính thức" not in text


def payload_code(payload: str, intent: str) -> str:
    """The procedure code of a candidate button's payload `/<intent>{"procedure": code}`."""
    assert payload.startswith(f"/{intent}{{"), payload
    return json.loads(payload[len(intent) + 1:])["procedure"]


# Generic questions that name a kind of procedure several seed procedures share.
# They ask two points (fee and papers): variants whose answers to the points asked are the
# same are answered once (test_variants_with_the_same_answer_are_answered_once), so only
# candidates that differ in what was asked are offered as buttons.
AMBIGUOUS = ("đăng ký xe phí bao nhiêu, cần giấy tờ gì",
             "làm bằng lái phí bao nhiêu, cần giấy tờ gì",
             "hộ chiếu phí bao nhiêu, cần giấy tờ gì", "căn cước phí bao nhiêu, cần giấy tờ gì")


def slot_events(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e.get("event") == "slot" and e.get("name") == name]


def ambiguous_fee_question() -> tuple[str, list[dict]]:
    """The first generic question the fee action answers for its likeliest procedure with
    the close others as buttons (the answer says it is a guess).

    Tried in turn so the tests check the dialogue, not one ranking of the search.
    """
    for text in AMBIGUOUS:
        msgs, _ = run(AnswerFee(), tracker(text, intent="ask_fee"))
        if msgs[0]["text"].startswith(UNSURE) and len(msgs[0]["buttons"]) >= 3:
            return text, msgs[0]["buttons"]
    raise AssertionError(f"none of {AMBIGUOUS} is answered as a guess with the seed catalog")


def test_close_candidates_come_with_a_none_of_these_button_last(catalog: str) -> None:
    """The likeliest answered, the runners-up in ranking order, then the way out."""
    text, buttons = ambiguous_fee_question()
    msgs, events = run(AnswerFee(), tracker(text, intent="ask_fee"))
    assert len(msgs) == 1 and msgs[0]["buttons"] == buttons
    assert [e["name"] for e in events] == ["procedure_code", "candidates"]
    *candidates, last = buttons
    assert 2 <= len(candidates) <= 3
    assert last == {"title": "Không phải thủ tục nào ở trên", "payload": "/none_of_these"}
    assert last == NONE_OF_THESE_BUTTON
    codes = [payload_code(b["payload"], "ask_fee") for b in candidates]
    assert len(set(codes)) == len(codes)
    client = get_client()
    with client.session() as s:
        ranked = [r.code for r in client.rank(s, text)]
        for b, code in zip(candidates, codes, strict=True):
            assert b["title"] == s.get(Procedure, code).display_name
    answered = events[0]["value"]
    assert answered == ranked[0] and f"mã thủ tục {answered}" in msgs[0]["text"]
    assert codes == [c for c in ranked[1:] if c != answered][:len(codes)]  # best first


def test_direct_answer_with_alternatives_has_no_none_of_these_button(catalog: str) -> None:
    """Beside a clear answer the runners-up are a bonus, not a question to escape from."""
    client = get_client()
    with session_scope(catalog) as s:
        names = [p.short_name or p.name for p in s.query(Procedure).order_by(Procedure.code)]
    for name in names:  # a question that gets a clear answer plus runners-up
        with client.session() as s:
            res = client.resolve(s, [], f"{name} phí bao nhiêu", None)
            if res.procedure is not None and res.clear and res.alternatives:
                break
    else:
        pytest.skip("no seed procedure has a runner-up")
    msgs, events = run(AnswerFee(), tracker(f"{name} phí bao nhiêu", intent="ask_fee"))
    assert events and events[0]["name"] == "procedure_code"
    assert not msgs[0]["text"].startswith(UNSURE)
    assert msgs[0]["buttons"]
    assert NONE_OF_THESE_BUTTON not in msgs[0]["buttons"]
    assert slot_events(events, "candidates")[0]["value"] is None


def test_none_of_these_clears_the_procedure_and_asks_to_rephrase(
        catalog: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTAL_URL", "https://dichvucong.example.vn/")
    p = find(catalog, "đăng ký kết hôn")
    msgs, events = run(NoneOfThese(), tracker(
        "/none_of_these", slots={"procedure_code": p.code}, intent="none_of_these"))
    assert events == [{"event": "slot", "name": "procedure_code", "value": None,
                       "timestamp": None},
                      {"event": "slot", "name": "candidates", "value": None, "timestamp": None}]
    assert len(msgs) == 1
    text = msgs[0]["text"]
    assert "mô tả lại" in text and "giấy tờ gì" in text
    assert "https://dichvucong.example.vn" in text and "Gặp cán bộ" in text
    assert p.code not in text
    assert msgs[0]["buttons"] == [{"title": "Gặp cán bộ", "payload": "/request_human"}]


def test_candidate_button_payload_answers_that_procedure_and_remembers_it(
        catalog: str) -> None:
    """Clicking a candidate: the payload's code wins over the slot and becomes the slot."""
    _, buttons = ambiguous_fee_question()
    payload = buttons[1]["payload"]  # not the top-ranked one: the choice itself must count
    chosen = payload_code(payload, "ask_fee")
    older = find(catalog, "đăng ký kết hôn")
    # What Rasa makes of the payload `/ask_fee{"procedure": "<code>"}`.
    msgs, events = run(AnswerFee(), tracker(payload, [
        {"entity": "procedure", "value": chosen, "start": 8, "end": len(payload) - 1}],
        slots={"procedure_code": older.code}, intent="ask_fee"))
    text = msgs[0]["text"]
    assert chosen in text and older.code not in text and "Phí, lệ phí" in text
    assert not msgs[0]["buttons"]
    assert slot_events(events, "procedure_code") == [
        {"event": "slot", "name": "procedure_code", "value": chosen, "timestamp": None}]


@pytest.mark.parametrize(("action", "text", "needle"), [
    (AnswerFee(), "phí bao nhiêu?", "Phí, lệ phí"),
    (AnswerDocuments(), "cần giấy tờ gì", "Hồ sơ cần chuẩn bị"),
    (AnswerProcessingTime(), "mat bao lau", "Thời hạn giải quyết"),
])
def test_follow_up_without_a_procedure_stays_on_the_chosen_one(
        catalog: str, action, text: str, needle: str) -> None:
    _, buttons = ambiguous_fee_question()
    chosen = payload_code(buttons[1]["payload"], "ask_fee")
    msgs, events = run(action, tracker(text, slots={"procedure_code": chosen},
                                       intent=action.intent))
    assert chosen in msgs[0]["text"] and needle in msgs[0]["text"]
    assert events[0]["value"] == chosen


def test_follow_up_after_none_of_these_asks_which_procedure(catalog: str) -> None:
    """With the slot cleared, "phí bao nhiêu?" asks which procedure instead of guessing."""
    slots = {"procedure_code": find(catalog, "đăng ký kết hôn").code}
    _, events = run(NoneOfThese(), tracker("/none_of_these", slots=slots,
                                           intent="none_of_these"))
    slots.update({e["name"]: e["value"] for e in events if e["event"] == "slot"})
    msgs, events = run(AnswerFee(), tracker("phí bao nhiêu?", slots=slots, intent="ask_fee"))
    assert "thủ tục nào" in msgs[0]["text"] and events == []


def test_nothing_matches_says_so(catalog: str) -> None:
    words = "xin visa du hành sao hỏa"
    msgs, events = run(AnswerDocuments(), tracker(words, [
        {"entity": "procedure", "value": words, "text": words}]))
    assert "chưa tìm thấy" in msgs[0]["text"] and "sao hỏa" in msgs[0]["text"]
    assert not msgs[0]["buttons"] and events == []


def test_no_procedure_at_all_asks_which(catalog: str) -> None:
    msgs, _ = run(AnswerProcedure(), tracker("thủ tục thế nào", intent="ask_procedure"))
    assert "thủ tục nào" in msgs[0]["text"]


def test_procedure_answer_has_steps_and_link(catalog: str) -> None:
    p = find(catalog, "đăng ký khai sinh")
    msgs, _ = run(AnswerProcedure(), tracker("làm thế nào", [
        {"entity": "procedure", "value": p.code}], intent="ask_procedure"))
    text = msgs[0]["text"]
    assert p.steps and p.steps[0].text in text
    assert p.url in text


def test_online_answer_reflects_the_channels(catalog: str) -> None:
    p = find(catalog, "đăng ký khai sinh")
    online = [c for c in p.channels if c.channel == "online"]
    msgs, _ = run(AnswerOnline(), tracker("làm online được không", [
        {"entity": "procedure", "value": p.code}], intent="ask_online"))
    text = msgs[0]["text"]
    if online:
        assert text.count("Có, thủ tục này nộp trực tuyến được") == 1
        with session_scope(catalog) as s:
            d = FeeBook.load().decide(s.get(Procedure, p.code), "online", vietnam_today(), "01")
        assert d.amount is not None
        assert f"Lệ phí khi nộp trực tuyến: {money(d.amount)}" in text, text
    else:
        assert "chưa có kênh nộp trực tuyến" in text


def test_missing_facts_are_said_missing_not_invented(catalog: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with session_scope(catalog) as s:
        upsert_records(s, [{"code": "9.000001", "name": "Thủ tục thử thiếu dữ liệu",
                            "channels": [{"channel": "in_person"}]}], source="test")
    for action, needle in ((AnswerFee(), "chưa có thông tin"),
                           (AnswerProcessingTime(), "chưa có thông tin"),
                           (AnswerDocuments(), "chưa có thông tin"),
                           (AnswerOnline(), "chưa có kênh nộp trực tuyến")):
        msgs, _ = run(action, tracker("?", [{"entity": "procedure", "value": "9.000001"}]))
        assert needle in msgs[0]["text"], action.name()
        assert "0 đồng" not in msgs[0]["text"]


def test_duration_without_unit_is_not_guessed() -> None:
    from bot.catalog.models import Channel

    assert duration(Channel(channel="online", time_value=3.0, time_unit=None)) == \
        "3 (danh mục không ghi rõ đơn vị thời gian)"
    assert duration(Channel(channel="online", time_value=0.5, time_unit="ngày")) == "0.5 ngày"
    assert "chưa có thông tin" in duration(Channel(channel="online"))
    assert money(None) == "chưa có thông tin trong danh mục"
    assert money(0) == "0 đồng (miễn phí)" and money(1500000) == "1.500.000 đồng"


def deny_tracker(bot_buttons: list[dict] | None, slots: dict | None = None) -> Tracker:
    events = [{"event": "user", "text": "đăng ký xe hết bao nhiêu tiền"},
              {"event": "bot", "text": "Bạn đang hỏi về thủ tục nào dưới đây?",
               "data": {"buttons": bot_buttons or []}},
              {"event": "user", "text": "không phải"}]
    return Tracker(sender_id="test", slots=slots or {}, latest_message={
        "text": "không phải", "intent": {"name": "deny", "confidence": 0.99}, "entities": []},
        events=events, paused=False, followup_action=None, active_loop={},
        latest_action_name="action_listen")


def test_typed_no_after_candidates_rejects_them(catalog: str) -> None:
    _, buttons = ambiguous_fee_question()
    assert NONE_OF_THESE_BUTTON in buttons
    msgs, events = run(HandleDeny(), deny_tracker(buttons, {"procedure_code": "1.013082"}))
    assert "mô tả lại" in msgs[0]["text"]
    assert {"event": "slot", "name": "procedure_code", "value": None,
            "timestamp": None} in events


def test_typed_no_elsewhere_gets_the_usual_reply(catalog: str) -> None:
    msgs, events = run(HandleDeny(), deny_tracker(None, {"procedure_code": "1.013082"}))
    assert msgs[0]["response"] == "utter_deny" and events == []


def test_every_point_asked_is_answered_in_one_reply(catalog: str) -> None:
    p = find(catalog, "đăng ký kết hôn")
    msgs, _ = run(AnswerProcedure(), tracker(
        "đăng ký kết hôn thì mấy ngày có kết quả, lệ phí hết bao nhiêu", intent="ask_procedure"))
    text = msgs[0]["text"]
    assert p.code in text
    assert "Thời hạn giải quyết:" in text and "Phí, lệ phí" in text
    assert "Các bước thực hiện" not in text  # not asked


def test_a_point_the_record_lacks_is_said_plainly_not_replaced(catalog: str) -> None:
    """A legal deadline is not the processing time: without one in the record, say so."""
    p = find(catalog, "đăng ký kết hôn")
    msgs, _ = run(AnswerProcessingTime(), tracker(
        "hạn chót phải đăng ký là bao lâu sau khi cưới", slots={"procedure_code": p.code},
        intent="ask_processing_time"))
    text = msgs[0]["text"]
    assert "Thời hạn phải làm:" in text
    assert "Thời hạn giải quyết:" not in text
    assert "không ghi rõ" in text or "Theo danh mục thủ tục" in text


def test_yes_no_question_gets_yes_or_no_first(catalog: str) -> None:
    p = find(catalog, "cấp phiếu lý lịch tư pháp")
    msgs, _ = run(AnswerOnline(), tracker(
        "có nộp online được không", slots={"procedure_code": p.code}, intent="ask_online"))
    online = any(ch.channel == "online" for ch in p.channels)
    answer = "Nộp trực tuyến:\nCó, " if online else "Nộp trực tuyến:\nKhông."
    assert answer in msgs[0]["text"]


def _pending_after_buttons() -> tuple[dict, list[dict]]:
    text, buttons = ambiguous_fee_question()
    _, events = run(AnswerFee(), tracker(text, intent="ask_fee"))
    (pending,) = [e["value"] for e in slot_events(events, "candidates")]
    return pending, buttons


def test_typed_follow_up_after_buttons_keeps_the_candidates(catalog: str) -> None:
    """"nộp trực tuyến thì bao nhiêu" instead of a button: the most likely candidate is
    answered (fee and online), the others are still offered."""
    pending, buttons = _pending_after_buttons()
    msgs, events = run(AnswerFee(), tracker("nộp trực tuyến thì bao nhiêu",
                                            slots={"candidates": pending}, intent="ask_fee"))
    text = msgs[0]["text"]
    assert pending["codes"][0] in text
    assert "Phí, lệ phí" in text and "Nộp trực tuyến:" in text
    offered = [payload_code(b["payload"], "ask_fee") for b in msgs[0]["buttons"]]
    assert offered == pending["codes"][1:]
    assert slot_events(events, "procedure_code")[0]["value"] == pending["codes"][0]


def test_typed_follow_up_naming_a_candidate_picks_it(catalog: str) -> None:
    pending, buttons = _pending_after_buttons()
    second = buttons[1]
    msgs, events = run(AnswerFee(), tracker(f"{second['title']} thì sao",
                                            slots={"candidates": pending}, intent="ask_fee"))
    chosen = payload_code(second["payload"], "ask_fee")
    assert slot_events(events, "procedure_code")[0]["value"] == chosen
    assert chosen in msgs[0]["text"]


def test_a_new_procedure_in_a_follow_up_switches(catalog: str) -> None:
    pending, _ = _pending_after_buttons()
    other = find(catalog, "đăng ký kết hôn")
    msgs, events = run(AnswerFee(), tracker("thế còn đăng ký kết hôn phí bao nhiêu",
                                            slots={"candidates": pending}, intent="ask_fee"))
    assert slot_events(events, "procedure_code")[0]["value"] == other.code
    assert other.code in msgs[0]["text"]


def test_variants_with_the_same_answer_are_answered_once(catalog: str) -> None:
    """Provincial and ministry variants with the same papers: one answer, the difference
    named, no question with buttons."""
    base = {"name": "Cấp giấy phép nuôi thử nghiệm cá cảnh nước ngọt", "field": "Thủy sản",
            "documents": [{"name": "Đơn đề nghị cấp phép nuôi thử nghiệm"},
                          {"name": "Bản thuyết minh mô hình nuôi"}]}
    with session_scope(catalog) as s:
        upsert_records(s, [
            {**base, "code": "9.990001", "level": "Cấp Tỉnh", "agency": "Sở Nông nghiệp"},
            {**base, "code": "9.990002", "level": "Cấp Bộ", "agency": "Cục Thủy sản"},
        ], source="test")
    msgs, _ = run(AnswerDocuments(), tracker(
        "nuôi thử nghiệm cá cảnh nước ngọt cần giấy tờ gì", intent="ask_documents"))
    text = msgs[0]["text"]
    assert "Đơn đề nghị cấp phép nuôi thử nghiệm" in text
    assert "9.990001" in text and "9.990002" in text
    assert "giống nhau" in text
    assert NONE_OF_THESE_BUTTON not in msgs[0]["buttons"]
