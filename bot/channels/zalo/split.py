"""Fit bot replies into Zalo's message limits, and a plain-text fallback for buttons.

Zalo's customer-service message API (`POST /v3.0/oa/message/cs`) rejects a text longer than
2,000 characters, so a long answer (a procedure's full list of documents, say) is sent as
several messages. We cut where a reader would pause: between paragraphs first, then between
sentences, then between words; a word is only ever cut when it alone exceeds the limit (a long
URL). Nothing but whitespace is lost.

Button templates are not available in every situation (an OA without the feature, a template
Zalo rejects), so `buttons_as_text` renders the choices as a numbered list and
`choice_from_number` maps the citizen's typed number back to the button's payload.

Sources: the 2,000-character text limit is the figure in the project brief. It was NOT
confirmed against Zalo's own page (developers.zalo.me, "Gửi tin Tư vấn"), which was not among the
stored sources; third-party notes list error -210 "Parameter exceeds allowable limit" as what an
over-long parameter gets (hoangnd25/monorepo, wip/zalo-platform-integration.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "TEXT_LIMIT",
    "CHOOSE_BY_NUMBER",
    "split_text",
    "buttons_as_text",
    "choice_from_number",
]

TEXT_LIMIT = 2000
CHOOSE_BY_NUMBER = "Bạn nhắn số thứ tự để chọn nhé."

# Each pattern matches the separator that *ends* a segment; the separator stays attached to
# the segment before it so that joining segments gives back the original text.
_PARAGRAPH = re.compile(r"\n[ \t\u00a0]*\n\s*")
# ". ", "? ", "! " (any whitespace after), an ellipsis with or without a space, a line break.
# Punctuation is matched only from the first mark of a run: from inside the run it can only
# fail where the run's start failed, and on "....." each start rescanned the run (quadratic).
_SENTENCE = re.compile(r"(?<![.?!])[.?!]+[\"'”’)\]]*\s+|…\s*|\n\s*")
_WORD = re.compile(r"\s+")


def _segments(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Cut `text` after every match of `pattern`; the pieces concatenate back to `text`."""
    pieces: list[str] = []
    start = 0
    for match in pattern.finditer(text):
        if match.end() > start:
            pieces.append(text[start : match.end()])
            start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _hard_cut(text: str, limit: int) -> list[str]:
    """Last resort for a single word longer than the limit."""
    word = text.strip()
    return [word[i : i + limit] for i in range(0, len(word), limit)]


def _split(text: str, limit: int, levels: list[Callable[[str], list[str]]]) -> list[str]:
    stripped = text.strip()
    if not stripped:
        return []
    if len(stripped) <= limit:
        return [stripped]
    if not levels:
        return _hard_cut(stripped, limit)

    cut, finer = levels[0], levels[1:]
    parts: list[str] = []
    current = ""

    def flush() -> None:
        nonlocal current
        if current.strip():
            parts.append(current.strip())
        current = ""

    for segment in cut(stripped):
        if len((current + segment).strip()) <= limit:
            current += segment
            continue
        flush()
        if len(segment.strip()) <= limit:
            current = segment
        else:
            finer_parts = _split(segment, limit, finer)
            parts.extend(finer_parts[:-1])
            # The tail of a long segment may share a part with what follows it.
            current = finer_parts[-1] + segment[len(segment.rstrip()) :]
    flush()
    return parts


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split `text` into stripped, non-empty parts of at most `limit` characters.

    Greedy: each part takes as many whole paragraphs as fit; a paragraph that alone is too long
    is packed sentence by sentence, a sentence that is too long word by word, and only a word
    longer than `limit` is cut inside; the tail of such a long piece may share its part with
    the text that follows. Parts keep all non-whitespace characters, in order.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    levels: list[Callable[[str], list[str]]] = [
        lambda t: _segments(t, _PARAGRAPH),
        lambda t: _segments(t, _SENTENCE),
        lambda t: _segments(t, _WORD),
    ]
    return _split(text, limit, levels)


def _title(button: dict) -> str:
    return str(button.get("title") or button.get("payload") or "").strip()


def buttons_as_text(buttons: list[dict]) -> str:
    """Render buttons as "1. <title>" lines plus an instruction to reply with the number.

    Used when a button template cannot be sent; the citizen answers "2" and
    `choice_from_number` turns that back into the second button's payload.
    """
    if not buttons:
        return ""
    lines = [f"{i}. {_title(button)}" for i, button in enumerate(buttons, start=1)]
    lines.append(CHOOSE_BY_NUMBER)
    return "\n".join(lines)


# "2", " 2. ", "2)", "số 2", "Số 2.", "#2". The tail is written "(?:\s*[.)])?\s*$", not
# "\s*[.)]?\s*$": two adjacent "\s*" split a run of spaces every possible way before failing,
# quadratic on "2" followed by many spaces and a letter.
_NUMBER_REPLY = re.compile(r"^\s*(?:s[ốô]\s*|#\s*)?(\d{1,3})(?:\s*[.)])?\s*$", re.IGNORECASE)


def choice_from_number(text: str, buttons: list[dict]) -> str | None:
    """The payload of the button the citizen picked by number, or None if `text` is not a pick.

    Only a bare number (optionally "số N", a trailing "." or ")") counts: "2 hồ sơ" is a
    sentence, not a choice. A button without a payload answers with its title, as a tapped
    `oa.query.show` button would.
    """
    match = _NUMBER_REPLY.match(text or "")
    if not match:
        return None
    index = int(match.group(1))
    if not 1 <= index <= len(buttons):
        return None
    button = buttons[index - 1]
    payload = button.get("payload")
    return str(payload) if payload not in (None, "") else _title(button) or None
