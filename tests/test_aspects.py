"""Aspects asked in a message, and the evidence a dialogue act needs (no servers)."""

from __future__ import annotations

import time

import pytest

from bot.aspects import HEADINGS, detect, is_yes_no
from bot.nlu.act_guards import explicit_handover, explicit_status
from bot.nlu.retrieval import decide, settled


@pytest.mark.parametrize(("text", "aspects"), [
    ("xe máy sang tên thì bao nhiêu ngày xong, phí hết bao nhiêu", ("fee", "time")),
    ("lam ho chieu can giay to gi, nop o dau", ("documents", "where")),
    ("hạn chót để đăng ký là bao lâu sau khi sinh", ("deadline",)),
    ("giấy xác nhận tình trạng hôn nhân có giá trị bao lâu", ("validity",)),
    ("điều kiện để được cấp giấy phép kinh doanh là gì", ("conditions",)),
    ("cần mẫu tờ khai đăng ký kết hôn", ("forms",)),
    ("thủ tục này căn cứ vào nghị định nào", ("legal_basis",)),
    ("ai được đi làm thay thủ tục này", ("audience",)),
    ("nop truc tuyen thi bao nhieu", ("fee", "online")),
])
def test_every_aspect_asked_is_found_in_reply_order(text: str, aspects: tuple) -> None:
    asked = detect(text, "ask_procedure")
    assert asked.aspects == aspects
    assert asked.from_cues


def test_the_intent_decides_only_without_a_cue() -> None:
    asked = detect("đăng ký khai sinh", "ask_fee")
    assert asked.aspects == ("fee",) and not asked.from_cues
    assert detect("đăng ký khai sinh", None).aspects == ("steps",)


@pytest.mark.parametrize(("text", "aspects"), [
    ("chứng thực bản sao trên mạng được không", ("online",)),
    ("sao y bản chính bao nhiêu tiền 1 trang", ("fee",)),
    ("xin bản sao trích lục kết hôn online được không", ("online",)),
    ("nộp bản sao hay bản chính", ("documents",)),
    ("bản sao có cần công chứng không", ("documents",)),
    ("làm hộ chiếu cần mang bản chính căn cước không", ("documents",)),
])
def test_a_copy_named_is_not_a_question_about_papers(text: str, aspects: tuple) -> None:
    """"bản sao", "bản chính" name what a procedure issues or certifies; only asking which
    one to bring is a question about the papers."""
    assert detect(text, "ask_procedure").aspects == aspects


def test_a_situation_word_is_not_a_question_about_validity() -> None:
    """"hết hạn" describes the paper; only asking how long it is valid is validity."""
    assert "validity" not in detect("đổi bằng lái xe hết hạn", "ask_procedure").aspects


@pytest.mark.parametrize(("text", "yes_no"), [
    ("có mất phí không", True), ("nộp online được không", True), ("làm được không ạ", True),
    ("phí bao nhiêu", False), ("cần giấy tờ gì", False),
])
def test_yes_no_questions(text: str, yes_no: bool) -> None:
    assert is_yes_no(text) is yes_no


def test_every_aspect_has_a_heading() -> None:
    from bot.aspects import ASPECTS, CUES

    assert set(HEADINGS) == set(ASPECTS) == set(CUES)


@pytest.mark.parametrize("text", [
    "cho tôi gặp cán bộ", "tôi muốn nói chuyện với người thật", "chuyển cho nhân viên giúp",
    "cho xin số tổng đài", "có cán bộ nào trực không", "kết nối với chuyên viên",
])
def test_explicit_handover_requests(text: str) -> None:
    assert explicit_handover(text)


@pytest.mark.parametrize("text", [
    "đăng ký tạm trú cho người thuê trọ", "nhân viên y tế có được miễn lệ phí không",
    "tôi muốn đăng ký cho người nước ngoài", "cán bộ, công chức có được cấp hộ chiếu công vụ",
])
def test_a_person_word_is_not_a_handover_request(text: str) -> None:
    assert not explicit_handover(text)


def test_status_needs_a_code_or_status_words() -> None:
    assert explicit_status("hồ sơ của tôi đến đâu rồi", False)
    assert explicit_status("xem giúp", True)
    assert not explicit_status("Hồ sơ đề nghị cấp giấy phép gồm những giấy tờ gì?", False)


def _found(score: float, aspects: tuple = ("steps",)) -> dict:
    return {"procedures": [{"code": "1.0", "name": "x", "score": score}] if score else [],
            "aspects": list(aspects), "faq": [], "knowledge": []}


def test_a_confident_procedure_wins_over_an_act_without_evidence() -> None:
    text = "đăng ký tạm trú cho người thuê trọ"
    assert decide("request_human", text, [], _found(0.8)) == "ask_procedure"
    assert decide("request_human", "cho tôi gặp cán bộ", [], _found(0.8)) is None
    assert decide("request_human", "ai đó giúp với", [], _found(0.0)) is None


def test_a_province_inside_a_procedure_question_is_context() -> None:
    text = "tôi muốn đăng ký thường trú cho con ở Hà Nội"
    assert decide("inform_province", text, [], _found(0.8)) == "ask_procedure"
    assert decide("inform_province", "tôi ở Hà Nội", [], _found(0.1)) is None


def test_status_without_code_or_words_becomes_the_procedure_question() -> None:
    text = "Hồ sơ đề nghị cấp giấy phép xây dựng gồm những gì?"
    assert decide("check_status", text, [], _found(0.6, ("documents",))) == "ask_documents"
    code = [{"entity": "receipt_code", "value": "H01.22-250110-0045"}]
    assert decide("check_status", "xem giúp mình", code, _found(0.6)) is None


def test_fallback_and_out_of_scope_are_answered_when_the_search_is_sure() -> None:
    assert decide("nlu_fallback", "đổi bằng lái xe hết hạn", [], _found(0.7)) == "ask_procedure"
    assert decide("out_of_scope", "thời tiết hôm nay", [], _found(0.0)) is None
    assert decide("greet", "chào bạn", [], _found(0.9)) is None
    assert decide("ask_fee", "phí bao nhiêu", [], _found(0.9)) is None


def test_a_procedure_label_follows_the_points_the_message_asks() -> None:
    """The model's procedure label stands when the message asks that point or names no
    point; a message that asks only other points gets the label of the first of them."""
    def found(*aspects: str) -> dict:
        return {**_found(0.9, aspects), "aspects_from_cues": True}

    text = "ông bà nuôi cháu muốn đứng tên giám hộ thì phải chuẩn bị hồ sơ ra sao"
    assert decide("ask_procedure", text, [], found("documents")) == "ask_documents"
    assert decide("ask_online", "…", [], found("documents", "online")) is None
    assert decide("ask_processing_time", "…", [], found("fee", "time")) is None
    assert decide("ask_online", "…", [], found("where", "fee")) == "ask_where"
    assert decide("ask_fee", "…", [], {**_found(0.9, ("documents",)),
                                       "aspects_from_cues": False}) is None


@pytest.mark.parametrize(("intent", "text", "entities"), [
    ("thank", "cảm ơn bạn nhiều", []),
    ("greet", "xin chào", []),
    ("check_status", "xem giúp mình", [{"entity": "receipt_code", "value": "H01.22-250110-0045"}]),
    ("request_human", "cho tôi gặp cán bộ", []),
])
def test_settled_acts_are_never_searched(intent: str, text: str, entities: list) -> None:
    """Whatever the search found, `decide` would keep these: searching them is waste."""
    assert settled(intent, text, entities)
    for score in (0.0, 0.99):
        assert decide(intent, text, entities, _found(score)) is None


@pytest.mark.parametrize(("intent", "text"), [
    ("greet", "chào bạn, cho hỏi làm lại căn cước cần gì"),  # a question after a greeting
    ("check_status", "Hồ sơ đề nghị cấp giấy phép xây dựng gồm những gì?"),
    ("request_human", "đăng ký tạm trú cho người thuê trọ"),
    ("out_of_scope", "đổi bằng lái xe hết hạn"),
    ("ask_fee", "phí bao nhiêu"),
])
def test_acts_the_search_may_change_are_searched(intent: str, text: str) -> None:
    assert not settled(intent, text, [])


def test_cue_matching_is_linear_on_long_input() -> None:
    """16 KB of adversarial text costs about what a plain scan of it costs."""
    hostile = ("a " * 8000) + "?"
    start = time.perf_counter()
    detect(hostile, None)
    explicit_handover(hostile)
    explicit_status(hostile, False)
    assert time.perf_counter() - start < 2.0
