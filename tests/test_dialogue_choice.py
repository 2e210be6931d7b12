"""Choosing among close candidates, through the real stack (actions, Rasa, gateway, database).

When the best procedures are close the bot answers the likeliest, says it is a guess, and
offers the others as buttons (up to 3, then "Không phải thủ tục nào ở trên"). A button's
answer must stay in the conversation, so follow-ups ("phí bao nhiêu?") are about the chosen
procedure; "none of these" must forget it. Expected codes are read from the buttons the bot
returned, never hard-coded.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from bot.stack import Stack

pytestmark = pytest.mark.integration

# Generic questions naming a kind of procedure that several seed procedures share ("đăng ký
# xe": first registration, re-issue, transfer). The first that gets candidate buttons is used,
# so the tests check the dialogue rather than one ranking of the search.
# Each asks two points (fee and papers): close variants whose answers to the points asked
# are the same are answered once, so buttons come only for candidates that differ.
AMBIGUOUS = ("đăng ký xe hết bao nhiêu tiền, cần giấy tờ gì",
             "làm bằng lái hết bao nhiêu tiền, cần giấy tờ gì",
             "làm hộ chiếu hết bao nhiêu tiền, cần giấy tờ gì")
NONE_PAYLOAD = "/none_of_these"


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    """The session's shared stack (tests.conftest.shared_stack)."""
    return shared_stack


def chat(st: Stack, sender: str, text: str) -> tuple[str, list[dict[str, str]]]:
    """One turn through the gateway: all bubble texts joined, and all buttons in order."""
    url = f"http://{st.settings.bot_host}:{st.settings.bot_port}/api/v1/chat"
    req = urllib.request.Request(url, data=json.dumps({"sender": sender, "text": text}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        msgs = json.loads(resp.read())["messages"]
    return ("\n".join(m.get("text") or "" for m in msgs),
            [b for m in msgs for b in m.get("buttons") or []])


@pytest.fixture(scope="module")
def ambiguous(stack: Stack) -> str:
    """The first of AMBIGUOUS that the running assistant answers with candidate buttons."""
    for i, question in enumerate(AMBIGUOUS):
        _, buttons = chat(stack, f"it-probe-{i}", question)
        if NONE_PAYLOAD in [b["payload"] for b in buttons]:
            return question
    raise AssertionError(f"none of {AMBIGUOUS} gets candidate buttons")


def ask_ambiguous(st: Stack, sender: str, question: str) -> list[tuple[str, str]]:
    """Send the ambiguous question; return the offered others as (payload, code), checked."""
    text, buttons = chat(st, sender, question)
    assert buttons, f"expected candidate buttons, got: {text}"
    *candidates, last = buttons
    assert 1 <= len(candidates) <= 3, buttons
    assert last["payload"] == NONE_PAYLOAD and last["title"] == "Không phải thủ tục nào ở trên"
    out = []
    for b in candidates:
        intent, _, entities = b["payload"].partition("{")
        assert intent.startswith("/ask_") and b["title"], b
        code = json.loads("{" + entities)["procedure"]
        assert f"mã thủ tục {code}" not in text  # offered, not the one answered
        out.append((b["payload"], code))
    assert len({code for _, code in out}) == len(out)
    return out


def test_chosen_candidate_stays_for_follow_ups(stack: Stack, ambiguous: str) -> None:
    sender = "it-choice"
    candidates = ask_ambiguous(stack, sender, ambiguous)
    payload, chosen = candidates[-1]  # never the one answered: the choice itself must count
    others = [code for _, code in candidates if code != chosen]

    text, _ = chat(stack, sender, payload)
    assert chosen in text

    for follow_up, needle in (("phí bao nhiêu?", "Phí, lệ phí"),
                              ("cần giấy tờ gì", "Hồ sơ cần chuẩn bị"),
                              ("mat bao lau", "Thời hạn giải quyết")):
        text, buttons = chat(stack, sender, follow_up)
        assert chosen in text and needle in text, (follow_up, text)
        assert not any(code in text for code in others), (follow_up, text)
        assert NONE_PAYLOAD not in [b["payload"] for b in buttons]


def test_none_of_these_forgets_the_procedure(stack: Stack, ambiguous: str) -> None:
    sender = "it-none"
    # First a procedure is in the conversation (chosen with a button)...
    payload, earlier = ask_ambiguous(stack, sender, ambiguous)[0]
    text, _ = chat(stack, sender, payload)
    assert earlier in text
    # ...then a new ambiguous question, and none of the offered procedures is the right one.
    candidates = ask_ambiguous(stack, sender, ambiguous)
    text, handoff = chat(stack, sender, NONE_PAYLOAD)
    assert "mô tả lại" in text and "Cổng Dịch vụ công" in text, text
    assert not any(code in text for _, code in candidates)
    assert [b["payload"] for b in handoff] == ["/request_human"]

    text, _ = chat(stack, sender, "phí bao nhiêu?")
    assert earlier not in text and "Phí, lệ phí" not in text, text
    assert "thủ tục nào" in text

    # The offered hand-over button reaches a person.
    text, _ = chat(stack, sender, handoff[0]["payload"])
    assert "chuyển cuộc trò chuyện tới cán bộ" in text


def test_typed_no_after_the_buttons_rejects_them_too(stack: Stack, ambiguous: str) -> None:
    sender = "it-typed-no"
    payload, earlier = ask_ambiguous(stack, sender, ambiguous)[0]
    text, _ = chat(stack, sender, payload)
    assert earlier in text
    ask_ambiguous(stack, sender, ambiguous)
    text, handoff = chat(stack, sender, "không phải")
    assert "mô tả lại" in text, text
    assert [b["payload"] for b in handoff] == ["/request_human"]
    text, _ = chat(stack, sender, "phí bao nhiêu?")
    assert earlier not in text and "thủ tục nào" in text, text
