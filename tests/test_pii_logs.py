"""No full citizen ID number or phone number in any log of a running stack.

A conversation through the real gateway (REST and the widget's WebSocket), Rasa and the
action server carries a 12-digit citizen ID (CCCD), a mobile number with and without
spaces and with +84, in questions the bot answers and in a hand-over request; then every
log file the stack wrote is scanned for the raw numbers (digits, whatever separators).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bot.stack import Stack

CCCD = "001203004567"
PHONE = "0912345678"
MESSAGES = (
    f"tôi muốn làm lại căn cước, số cccd của tôi là {CCCD}",
    f"số điện thoại của tôi là {PHONE[:4]} {PHONE[4:7]} {PHONE[7:]}, gọi lại giúp tôi",
    f"+84{PHONE[1:]} là số của tôi, cccd {CCCD}, cho tôi gặp cán bộ",
)


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Stack:
    """The session's shared stack, whose services log at INFO (the default): its logs hold
    other modules' conversations too, which must be just as clean."""
    assert shared_stack.settings.log_level == "INFO"
    return shared_stack


def _post(st: Stack, sender: str, text: str) -> int:
    req = urllib.request.Request(
        f"http://{st.settings.bot_host}:{st.settings.bot_port}/api/v1/chat",
        data=json.dumps({"sender": sender, "text": text,
                         "metadata": {"phone": PHONE}}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _digits_only(text: str) -> str:
    return re.sub(r"[\s.\-+]", "", text)


def test_logs_never_hold_a_full_citizen_id_or_phone_number(stack: Stack) -> None:
    for text in MESSAGES:
        assert _post(stack, f"pii-{CCCD}", text) in (200, 429)
    logs = sorted(Path(stack.log_dir).glob("*.log"))
    assert {p.stem for p in logs} >= {"gateway", "rasa", "actions"}
    assert any("chat turn" in p.read_text(errors="replace") for p in logs)  # logs were written
    for path in logs:
        content = path.read_text(errors="replace")
        squeezed = _digits_only(content)
        assert CCCD not in squeezed, f"citizen ID in {path.name}"
        assert PHONE not in squeezed and PHONE[1:] not in squeezed, f"phone in {path.name}"
