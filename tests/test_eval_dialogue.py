"""`bot eval dialogue` without servers of ours: the judging functions on synthetic replies,
the report maths, bad input lines, and the runner against a small fake gateway on loopback
(a real HTTP peer that can answer 429 once, answer late, or fail)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot import eval_dialogue as ed
from bot.aspects import HEADINGS
from tests.loopback import serve

BIRTH, MARRIAGE, PASSPORT, RECORD, LICENCE = (
    "1.001193", "1.000894", "2.002216", "1.004866", "1.002804")


@pytest.fixture(scope="module")
def known() -> ed.KnownReplies:
    return ed.KnownReplies.from_domain()


def domain_text(name: str) -> str:
    return ed._response_texts(ed.ROOT / "domain.yml", name)[0]


def msg(text: str = "", buttons: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    return {"id": "m1", "text": text, "ts": "2026-11-27T10:00:00Z",
            "buttons": [{"title": t, "payload": p} for t, p in buttons or []]}


def button(code: str, intent: str = "ask_fee") -> tuple[str, str]:
    return f"Thủ tục {code}", f"/{intent}" + json.dumps({"procedure": code})


NONE_OF_THESE = ("Không phải thủ tục nào ở trên", "/none_of_these")


def answer(code: str, *sections: str) -> list[dict[str, Any]]:
    """An answer as Rasa's REST channel returns it: split into bubbles at blank lines."""
    parts = [f"Thủ tục Đăng ký gì đó (mã thủ tục {code})."] + list(sections) + [
        "Xem chi tiết trên Cổng Dịch vụ công quốc gia: https://dichvucong.gov.vn/x"]
    return [msg(p) for p in parts]


# --------------------------------------------------------------------------- codes

def test_codes_in_text_and_payloads() -> None:
    text = ("Thủ tục Đăng ký khai sinh (mã thủ tục 1.001193).\nLiên quan: (Mã thủ tục: "
            "2.002216) và lại (mã thủ tục 1.001193); không phải mã 9.999999")
    assert ed.codes_in_text(text) == (BIRTH, PASSPORT)
    # NFD input (a client that decomposes) is read the same
    import unicodedata
    assert ed.codes_in_text(unicodedata.normalize("NFD", text)) == (BIRTH, PASSPORT)
    assert ed.codes_in_payload('/ask_fee{"procedure": "1.013082"}') == ("1.013082",)
    assert ed.codes_in_payload('/any_intent_name {"procedure": "1.001193", "x": 1}') == (BIRTH,)
    assert ed.codes_in_payload('/ask_where{"procedure": ["1.001193", "2.002216"]}') == (
        BIRTH, PASSPORT)
    for payload in ("/none_of_these", "/request_human", "/ask_fee{not json}", "hello",
                    '/ask_fee{"procedure": "abc"}', '/ask_fee["1.001193"]', ""):
        assert ed.codes_in_payload(payload) == (), payload


def test_named_codes_keep_the_order_of_text_then_buttons() -> None:
    messages = [msg("Thủ tục A (mã thủ tục 1.001193)."),
                msg("Nếu bạn hỏi về thủ tục khác…", [button(PASSPORT), button(BIRTH)])]
    named = ed.named_codes(messages)
    assert named.text == (BIRTH,)
    assert named.buttons == ((PASSPORT,), (BIRTH,))
    assert named.all == (BIRTH, PASSPORT)


# --------------------------------------------------------------------------- outcomes

def test_answered_when_the_first_code_of_the_text_is_gold(known) -> None:  # noqa: ANN001
    v = ed.judge(answer(BIRTH), [BIRTH, "1.999999"], [], "khai sinh", known)
    assert (v.outcome, v.kind) == ("answered", "procedure")
    # a gold code named second in the text, after a wrong one, is not an answer
    messages = [msg(f"Thủ tục X (mã thủ tục {PASSPORT}). Xem thêm (mã thủ tục {BIRTH}).")]
    assert ed.judge(messages, [BIRTH], [], "q", known).outcome == "wrong"
    # a gold runner-up button beside a wrong answer: offered
    messages = [msg(f"Thủ tục X (mã thủ tục {PASSPORT}).", [button(BIRTH)])]
    assert ed.judge(messages, [BIRTH], [], "q", known).outcome == "offered"


def test_offered_through_the_fourth_button_but_not_the_fifth(known) -> None:  # noqa: ANN001
    others = [button(c) for c in (MARRIAGE, PASSPORT, RECORD)]
    fourth = [msg("Bạn đang hỏi về thủ tục nào dưới đây?", [*others, button(BIRTH)])]
    v = ed.judge(fourth, [BIRTH], [], "q", known)
    assert v.outcome == "offered" and v.codes == (MARRIAGE, PASSPORT, RECORD, BIRTH)
    fifth = [msg("Bạn đang hỏi về thủ tục nào dưới đây?",
                 [*others, button(LICENCE), button(BIRTH)])]
    assert ed.judge(fifth, [BIRTH], [], "q", known).outcome == "wrong"
    # the buttons of several bubbles count in the order shown; "none of these" is a button
    split = [msg("Bạn chọn giúp mình nhé.", [button(MARRIAGE), button(PASSPORT)]),
             msg("", [NONE_OF_THESE, button(BIRTH, "ask_documents")])]
    assert ed.judge(split, [BIRTH], [], "q", known).outcome == "offered"
    split[1]["buttons"].insert(0, {"title": "x", "payload": "/request_human"})
    assert ed.judge(split, [BIRTH], [], "q", known).outcome == "wrong"


def test_fallback_and_out_of_scope_are_read_from_the_domain(known) -> None:  # noqa: ANN001
    fallback = domain_text("utter_default")
    v = ed.judge([msg(fallback)], [BIRTH], [], "q", known)
    assert (v.outcome, v.kind) == ("fallback", "fallback")
    # split into bubbles at blank lines, or re-wrapped, it is still the fallback
    words = fallback.split(" ")
    half = len(words) // 2
    bubbles = [msg(" ".join(words[:half])), msg(" ".join(words[half:]))]
    assert ed.judge(bubbles, [BIRTH], [], "q", known).outcome == "fallback"
    oos = domain_text("utter_out_of_scope")
    assert ed.judge([msg(oos)], [BIRTH], [], "q", known).outcome == "out_of_scope"
    assert ed.judge([msg("Xin chào! Mình là trợ lý ảo.")], [BIRTH], [], "q",
                    known).outcome == "other"
    assert ed.judge([], [BIRTH], [], "q", known).outcome == "other"


def test_response_templates_with_slots_match_any_fill() -> None:
    known = ed.KnownReplies.from_texts(["Xin lỗi {name}, mình chưa hiểu."], ["Ngoài phạm vi."])
    assert known.kind([msg("Xin lỗi bạn Lan, mình chưa hiểu.")]) == "fallback"
    assert known.kind([msg("Xin lỗi, mình hiểu rồi.")]) is None


def test_handover_replies_are_recognised(known) -> None:  # noqa: ANN001
    """The real texts of bot.handover.texts: in and out of hours, asked for or after
    failures, and the apology when no hand-over could be opened."""
    from bot.handover import texts
    from bot.handover.hours import WorkingHours, parse_hours
    from bot.status.workdays import WorkCalendar

    sunday = datetime(2026, 11, 29, 22, 0)
    replies = [texts.unavailable("18001096")]
    for spec in ("always", "mon-fri 08:00-17:00"):
        hours = WorkingHours(parse_hours(spec), WorkCalendar())
        replies += [texts.opened(hours, sunday, reason, "18001096")
                    for reason in ("requested", "fallback")]
    for text in replies:
        v = ed.judge([msg(text, [("Gặp cán bộ", "/request_human")])], [BIRTH], [], "q", known)
        assert v.outcome == "handover", text
    # the gateway's `handover` field says so whatever the text
    assert ed.judge([msg("…")], [BIRTH], [], "q", known, handover=True).outcome == "handover"


def test_wrong_and_lines_without_gold_procedures(known) -> None:  # noqa: ANN001
    v = ed.judge(answer(PASSPORT), [BIRTH], [], "q", known)
    assert (v.outcome, v.kind, v.codes) == ("wrong", "procedure", (PASSPORT,))
    v = ed.judge(answer(PASSPORT), [], ["11451"], "q", known)
    assert v.outcome is None and v.kind == "procedure" and v.faq_cited is False
    err = ed.error_verdict([BIRTH], ["11451"])
    assert (err.outcome, err.kind, err.faq_cited) == ("error", "error", False)
    assert ed.error_verdict([], ["1"]).outcome is None


# --------------------------------------------------------------------------- Q&A links

@pytest.mark.parametrize(("text", "cited"), [
    ("Trả lời chính thức: https://dichvucong.gov.vn/p/home/dvc-chi-tiet-cau-hoi.html?id=11451"
     "&row_limit=1", True),
    ("Xem: https://dichvucong.gov.vn/p/home/dvc-chi-tiet-cau-hoi.html?id=11451.", True),
    ("https://dichvucong.gov.vn/p/home/dvc-chi-tiet-cau-hoi.html?row_limit=1&id=11451", True),
    ("<a href=\"https://x.vn/q?a=1&amp;id=11451\">", True),
    ("https://dichvucong.gov.vn/p/home/dvc-chi-tiet-cau-hoi.html?id=114512&row_limit=1", False),
    ("https://dichvucong.gov.vn/p/home/dvc-chi-tiet-cau-hoi.html?id=1145", False),
    ("https://x.vn/q?faq_id=11451", False),
    ("câu hỏi số 11451", False),
])
def test_qa_link_matches_the_whole_id(text: str, cited: bool, known) -> None:  # noqa: ANN001
    v = ed.judge([msg(text)], [], ["11451"], "q", known)
    assert v.faq_cited is cited


def test_qa_link_any_of_the_ids_and_behind_a_button(known) -> None:  # noqa: ANN001
    link = "https://dichvucong.gov.vn/p/home/dvc-chi-tiet-cau-hoi.html?id=19477&row_limit=1"
    assert ed.judge([msg(link)], [], ["19476", "19477"], "q", known).faq_cited is True
    with_button = [msg("Xem câu trả lời chính thức", [("Mở", link)])]
    assert ed.judge(with_button, [], ["19477"], "q", known).faq_cited is True
    assert ed.judge([msg(link)], [BIRTH], [], "q", known).faq_cited is None


# --------------------------------------------------------------------------- aspects

def test_aspects_answered_by_their_headings(known) -> None:  # noqa: ANN001
    question = "Đăng ký khai sinh cần giấy tờ gì, lệ phí bao nhiêu?"
    asked = ed.asked_aspects(question)
    assert {"documents", "fee"} <= set(asked)
    both = answer(BIRTH, f"{HEADINGS['documents']}:\n• Tờ khai",
                  f"**{HEADINGS['fee']}**: 8.000 đồng")
    v = ed.judge(both, [BIRTH], [], question, known)
    assert v.asked == asked and set(v.titled) == set(asked)
    # a heading word inside a sentence is not a section; a missing section is not answered
    one = answer(BIRTH, f"{HEADINGS['documents']}:\n• Tờ khai",
                 f"Bạn hỏi thêm: {HEADINGS['fee'].lower()} bao nhiêu, nộp ở đâu.")
    v = ed.judge(one, [BIRTH], [], question, known)
    assert "documents" in v.titled and "fee" not in v.titled
    numbered = answer(BIRTH, f"2. {HEADINGS['fee']}: 8.000 đồng")
    assert ed.aspects_titled(ed.reply_text(numbered), ["fee", "time"]) == ("fee",)
    # no cue in the question: nothing asked (the intent's guess does not count)
    assert ed.asked_aspects("đăng ký khai sinh") == ()


# --------------------------------------------------------------------------- report maths

def question(line: int, codes: tuple[str, ...] = (BIRTH,), faq: tuple[str, ...] = (),
             text: str = "q") -> ed.Question:
    return ed.Question(0, line, text, codes, faq)


def test_summary_counts_and_shares(known) -> None:  # noqa: ANN001
    fee_q = "khai sinh lệ phí bao nhiêu"
    fee_reply = answer(BIRTH, f"{HEADINGS['fee']}: 8.000 đồng")
    cases = [
        (question(1, text=fee_q), fee_reply, 0.1),  # answered, fee titled
        (question(2, text=fee_q), answer(BIRTH), 0.2),  # answered, fee not titled
        (question(3), [msg("Chọn", [button(PASSPORT), button(BIRTH)])], 0.3),  # offered
        (question(4), [msg(domain_text("utter_default"))], 0.4),  # fallback
        (question(5), answer(PASSPORT), 0.5),  # wrong
        (question(6, codes=(), faq=("11451",)), [msg("https://x.vn/?id=11451")], 0.6),
        (question(7, codes=(), faq=("11452",)), [msg("không có")], 0.7),
    ]
    inp = ed.FileInput(Path("x.jsonl"), [q for q, _, _ in cases], bad=[(9, "không phải JSON")],
                       skipped=2, filtered=1, lines=11)
    exchanges = [ed.Exchange(r, latency=t) for _, r, t in cases]
    verdicts = [ed.judge(r, q.codes, q.faq_ids, q.text, known) for q, r, _ in cases]
    q8 = question(8)
    inp.questions.append(q8)
    exchanges.append(ed.Exchange(error="timeout"))
    verdicts.append(ed.error_verdict(q8.codes, q8.faq_ids))

    rep = ed.summarize(inp, exchanges, verdicts)
    assert "questions" not in rep
    rows = ed.summarize(inp, exchanges, verdicts, details=True)["questions"]
    assert [r["outcome"] for r in rows] == [
        "answered", "answered", "offered", "fallback", "wrong", None, None, "error"]
    assert rows[0]["titled"] == ["fee"] and rows[5]["faq_cited"] is True
    assert rows[7]["error"] == "timeout" and rows[0]["latency_ms"] == 100.0
    p = rep["procedure"]
    assert p["n"] == 6
    assert p["answered"] == {"count": 2, "share": round(2 / 6, 4)}
    assert p["offered"]["count"] == 1 and p["answered_or_offered"]["count"] == 3
    assert {k: v["count"] for k, v in p["no_procedure"].items()} == {
        "fallback": 1, "out_of_scope": 0, "handover": 0, "wrong": 1, "other": 0}
    assert p["error"]["count"] == 1
    total = (p["answered"]["count"] + p["offered"]["count"] + p["error"]["count"]
             + sum(v["count"] for v in p["no_procedure"].values()))
    assert total == p["n"]
    assert p["examples"]["wrong"][0]["named"] == [PASSPORT]
    assert p["examples"]["error"][0]["reply"] == "timeout"
    assert rep["qa"]["n"] == 2 and rep["qa"]["cited"] == {"count": 1, "share": 0.5}
    assert rep["qa"]["reply_kinds"] == {"other": 2}
    fee = rep["aspects"]["per_aspect"]["fee"]
    assert fee == {"asked": 2, "in_answers": 2, "answered": 1, "share": 0.5}
    assert rep["aspects"]["all_answered"] == {"n": 2, "count": 1, "share": 0.5}
    assert (rep["sent"], rep["skipped"], rep["filtered"], rep["lines"]) == (8, 2, 1, 11)
    assert rep["bad_lines"] == [{"line": 9, "error": "không phải JSON"}]
    assert rep["errors"] == 1 and rep["error_samples"] == ["timeout"]
    lat = rep["latency_ms"]
    assert lat["n"] == 7 and lat["mean"] == 400.0
    assert lat["p95"] == pytest.approx(670.0)  # linear between the two slowest
    table = ed.format_report({"settings": {"url": "http://x", "concurrency": 4},
                              "files": [rep]})
    assert "answered" in table and "Q&A link cited" in table and "bad line 9" in table
    assert "replies to them: other 2" in table


def test_empty_file_has_no_shares() -> None:
    rep = ed.summarize(ed.FileInput(Path("e.jsonl")), [], [])
    assert rep["procedure"]["n"] == 0 and rep["procedure"]["answered"]["share"] is None
    assert rep["qa"] is None and rep["latency_ms"] == {"n": 0, "mean": None, "p95": None}
    ed.format_report({"settings": {"url": "u", "concurrency": 1}, "files": [rep]})


# --------------------------------------------------------------------------- input

def write_lines(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)
                              for r in rows) + "\n", encoding="utf-8")
    return path


def test_bad_lines_are_reported_with_their_number_and_skipped(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "q.jsonl", [
        {"question": None, "text": "khai sinh cần gì", "procedure_codes": None,
         "procedures": [BIRTH], "id": 1},  # 1
        "{not json",  # 2
        "",  # 3 (blank: not a line)
        ["a list"],  # 4
        {"text": "   ", "procedures": [BIRTH]},  # 5
        {"text": "x", "procedures": BIRTH},  # 6
        {"text": "x", "faq_id": "abc"},  # 7
        {"text": "x", "faq_id": True, "faq_ids": ["²"]},  # 8
        {"text": "Chào bạn", "intent": "greet", "procedures": []},  # 9: skipped
        {"text": "faq only", "faq_id": "15707", "faq_ids": [15707, 15708]},  # 10
        {"text": "lam ho chieu", "intent": "ask_procedure", "procedures": [PASSPORT],
         "diacritics": False},  # 11
    ])
    inp = ed.read_questions(path)
    assert [b[0] for b in inp.bad] == [2, 4, 5, 6, 7, 8]
    assert "JSON" in inp.bad[0][1]
    assert [(q.line, q.codes, q.faq_ids) for q in inp.questions] == [
        (1, (BIRTH,), ()), (10, (), ("15707", "15708")), (11, (PASSPORT,), ())]
    assert inp.skipped == 1 and inp.lines == 10
    only = ed.read_questions(path, intents={"ask_procedure", "greet"})
    assert [q.line for q in only.questions] == [11] and only.filtered == 2 and only.skipped == 1
    first = ed.read_questions(path, limit=3)
    assert first.lines == 3 and [q.line for q in first.questions] == [1]
    with pytest.raises(ed.DialogueEvalError):
        ed.read_questions(tmp_path / "missing.jsonl")


def test_retry_after_values() -> None:
    assert ed.retry_after("2") == 2.0
    assert ed.retry_after("0.5") == 0.5
    assert ed.retry_after(None) == 1.0 and ed.retry_after("soon") == 1.0
    assert ed.retry_after("-5") == 0.0
    assert ed.retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


# --------------------------------------------------------------------------- runner

class FakeGateway:
    """POST /api/v1/chat on loopback: answers by the question's text.

    "rate <x>": 429 (Retry-After: 1) the first time, then an answer; "slow …": answers after
    5 s; "boom …": 500; "fallback …": the domain's fallback; anything naming a code
    answers it (`mã thủ tục`); a "delay" applies to every answer.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.senders: list[str] = []
        self.seen: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        text, sender = body["text"], body["sender"]
        first_time = text not in self.seen
        self.seen.append(text)
        self.senders.append(sender)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if text.startswith("rate") and first_time:
                return web.json_response({"error": {"code": "rate_limited"}}, status=429,
                                         headers={"Retry-After": "1"})
            if text.startswith("slow"):
                await asyncio.sleep(5)
            if text.startswith("boom"):
                return web.json_response({"error": {"code": "x"}}, status=500)
            if text.startswith("fallback"):
                return web.json_response({"messages": [msg(domain_text("utter_default"))]})
            codes = [w for w in text.split() if w[:1].isdigit()]
            reply = answer(codes[0], f"{HEADINGS['fee']}: 8.000 đồng") if codes else [msg("?")]
            return web.json_response({"messages": reply})
        finally:
            self.in_flight -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/chat", self.chat)
        self.runner, port = await serve(app)
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@contextlib.contextmanager
def fake_in_thread(**kwargs: Any) -> Iterator[FakeGateway]:
    """The fake in a thread with a loop of its own, for the synchronous entry points."""
    fake = FakeGateway(**kwargs)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def test_runner_waits_out_a_429_and_times_out_instead_of_stalling() -> None:
    fake = FakeGateway()
    await fake.start()
    try:
        qs = [question(1, text=f"rate {BIRTH}"), question(2, text=f"slow {BIRTH}"),
              question(3, text=f"boom {BIRTH}"), question(4, text=f"ok {BIRTH}")]
        started = time.perf_counter()
        results = await ed.ask_all(fake.url + ed.CHAT_PATH, qs, concurrency=4, timeout=1.5)
        elapsed = time.perf_counter() - started
    finally:
        await fake.stop()
    rate, slow, boom, ok = results
    assert rate.error is None and rate.attempts == 2 and BIRTH in ed.reply_text(rate.messages)
    assert fake.seen.count(f"rate {BIRTH}") == 2
    assert slow.error == "timeout" and slow.latency is None
    assert boom.error == "HTTP 500"
    assert ok.error is None and ok.latency is not None and ok.latency < 1
    assert 1.0 <= elapsed < 4  # the Retry-After was honoured; the slow answer was not awaited


async def test_runner_gives_up_on_persistent_429_and_on_a_dead_port() -> None:
    async def always_429(request: web.Request) -> web.Response:
        return web.json_response({}, status=429, headers={"Retry-After": "0"})

    app = web.Application()
    app.router.add_post("/api/v1/chat", always_429)
    runner, port = await serve(app)
    try:
        [res] = await ed.ask_all(f"http://127.0.0.1:{port}/api/v1/chat", [question(1)],
                                 retries=2)
    finally:
        await runner.cleanup()
    assert res.error == "HTTP 429 after 3 tries" and res.attempts == 3
    [dead] = await ed.ask_all(f"http://127.0.0.1:{port}/api/v1/chat", [question(1)],
                              timeout=2)
    assert dead.error and dead.latency is None


async def test_runner_keeps_concurrency_bounded_and_senders_fresh() -> None:
    fake = FakeGateway(delay=0.05)
    await fake.start()
    try:
        qs = [question(i, text=f"q{i} {BIRTH}") for i in range(1, 11)]
        done = []
        results = await ed.ask_all(fake.url + ed.CHAT_PATH, qs, concurrency=3,
                                   on_done=lambda: done.append(1))
    finally:
        await fake.stop()
    assert all(r.error is None for r in results) and len(done) == 10
    assert fake.max_in_flight == 3
    assert len(set(fake.senders)) == 10  # every question is a new conversation
    # results come back in the questions' order whatever order they finished in
    assert [ed.codes_in_text(ed.reply_text(r.messages)) for r in results] == [(BIRTH,)] * 10


def test_run_eval_end_to_end_on_the_fake(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", [
        {"question": f"{BIRTH} lệ phí bao nhiêu", "procedure_codes": [BIRTH]},
        {"question": f"{PASSPORT} lệ phí", "procedure_codes": [BIRTH]},
        {"question": "fallback please", "procedures": [BIRTH]},
        {"question": f"rate {BIRTH}", "procedures": [BIRTH]},
        "oops",
        {"text": "chào", "procedures": []},
    ])
    b = write_lines(tmp_path / "b.jsonl", [{"text": f"slow {BIRTH}", "procedures": [BIRTH]}])
    opts = ed.EvalOptions(concurrency=2, timeout=1.5, progress=False)
    with fake_in_thread() as fake:
        report = ed.run_eval([a, b], fake.url, opts)
    s = report["settings"]
    assert s["url"].endswith("/api/v1/chat") and s["concurrency"] == 2
    fa, fb = report["files"]
    p = fa["procedure"]
    assert fa["sent"] == 4 and fa["skipped"] == 1 and fa["bad_lines"][0]["line"] == 5
    assert p["answered"]["count"] == 2  # the 429 was waited out, then answered
    assert p["no_procedure"]["wrong"]["count"] == 1
    assert p["no_procedure"]["fallback"]["count"] == 1
    assert fa["aspects"]["per_aspect"]["fee"]["share"] == 1.0
    assert fa["latency_ms"]["n"] == 4
    assert fb["procedure"]["error"]["count"] == 1 and fb["errors"] == 1
    assert len(set(fake.senders)) == len(fake.senders) - 1  # only the 429 retry reused one


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot eval")
    ed.add_parser(parser.add_subparsers(dest="eval_command"))
    return parser


def test_cli_json_and_out_against_a_running_gateway(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from bot.config import Settings

    data = write_lines(tmp_path / "q.jsonl", [
        {"question": f"{BIRTH} cần gì", "procedure_codes": [BIRTH], "intent": "ask_documents"},
        {"question": f"{PASSPORT} cần gì", "procedure_codes": [PASSPORT], "intent": "ask_fee"},
    ])
    out = tmp_path / "report" / "r.json"
    with fake_in_thread() as fake:
        args = make_parser().parse_args([
            "dialogue", str(data), "--url", fake.url, "--json", "--out", str(out),
            "--intent", "ask_documents,greet", "--intent", "affirm", "--no-progress",
            "--concurrency", "2"])
        code = args.func(args, Settings.from_env({}))
        printed = json.loads(capsys.readouterr().out)
        assert code == 0
        assert printed == json.loads(out.read_text(encoding="utf-8"))
        f = printed["files"][0]
        assert f["sent"] == 1 and f["filtered"] == 1
        assert f["procedure"]["answered"]["count"] == 1
        assert printed["settings"]["intents"] == ["affirm", "ask_documents", "greet"]
        args = make_parser().parse_args(["dialogue", str(data), "--url", fake.url,
                                         "--no-progress", "--limit", "1"])
        assert args.func(args, Settings.from_env({})) == 0
        table = capsys.readouterr().out
        assert "q.jsonl: 1 lines, 1 sent" in table and "answered" in table


def test_cli_refuses_what_it_cannot_run(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    from bot.config import Settings

    data = write_lines(tmp_path / "q.jsonl", [{"text": "x", "procedures": [BIRTH]}])
    parser = make_parser()
    args = parser.parse_args(["dialogue", str(tmp_path / "nope.jsonl")])
    assert args.func(args, Settings.from_env({})) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        with contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(["dialogue", str(data), "--url", "http://x", "--start"])
    # --start with no trained model: a clear message, exit 2, nothing started
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite3'}")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    args = parser.parse_args(["dialogue", str(data), "--start", "--no-progress"])
    assert args.func(args, Settings.from_env()) == 2
    assert "bot train" in capsys.readouterr().err
    # nothing listening: every question an error, exit 1, no crash
    from tests.conftest import free_port

    args = parser.parse_args(["dialogue", str(data), "--url",
                              f"http://127.0.0.1:{free_port()}", "--no-progress",
                              "--timeout", "3"])
    assert args.func(args, Settings.from_env({})) == 1
    assert "errors" in capsys.readouterr().out


def test_start_builds_its_own_settings_and_always_stops_the_stack(
        tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """--start: free loopback ports, one replica, no rate limits, the active model; the
    stack is stopped after the run, also when the run is interrupted (Ctrl-C)."""
    import bot.bench.runner
    import bot.catalog.snapshot
    import bot.registry.registry
    import bot.stack
    from bot.config import Settings

    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"x")
    made: list[Any] = []

    class FakeStack:
        def __init__(self, settings: Settings, model: Path, log_dir: Path) -> None:
            self.settings, self.model, self.procs, self.stopped = settings, model, {}, 0
            made.append(self)

        def start(self) -> None:
            pass

        def stop(self) -> None:
            self.stopped += 1

    async def answers(*_args: Any) -> bool:
        return True

    monkeypatch.setattr(bot.stack, "Stack", FakeStack)
    monkeypatch.setattr(bot.registry.registry, "active_model", lambda _s: model)
    monkeypatch.setattr(bot.catalog.snapshot, "prepare_catalog", lambda _s: None)
    monkeypatch.setattr(bot.bench.runner, "wait_answer", answers)
    monkeypatch.setattr(ed, "ROOT", tmp_path)  # the stack's log folder
    for name, value in {"RATE_LIMIT_PER_MINUTE": "30", "RASA_URL": "http://10.0.0.9:5005",
                        "BOT_HOST": "0.0.0.0", "BOT_PORT": "8080"}.items():
        monkeypatch.setenv(name, value)
    data = write_lines(tmp_path / "q.jsonl", [{"text": f"x {BIRTH}", "procedures": [BIRTH]}])
    seen: list[str] = []

    def fake_run(paths: Any, url: str, *_args: Any) -> dict[str, Any]:
        seen.append(url)
        return {"settings": {"url": url, "concurrency": 4}, "files": []}

    monkeypatch.setattr(ed, "run_eval", fake_run)
    args = make_parser().parse_args(["dialogue", str(data), "--start", "--no-progress"])
    assert args.func(args, Settings.from_env()) == 0
    [stack] = made
    s = stack.settings
    assert stack.stopped == 1 and stack.model == model
    assert (s.rate_limit_per_minute, s.rate_limit_address_per_minute) == (0, 0)
    assert s.bot_host == "127.0.0.1" and s.bot_port != 8080
    assert s.rasa_url == f"http://127.0.0.1:{s.rasa_port}" and s.rasa_replicas == 1
    assert seen == [f"http://127.0.0.1:{s.bot_port}"]

    def interrupted(*_args: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(ed, "run_eval", interrupted)
    with pytest.raises(KeyboardInterrupt):
        args.func(args, Settings.from_env())
    assert made[-1].stopped == 1
