"""Regular expressions on citizen input run in linear time (issue 18, item 3).

Every function that applies a regular expression to outside input (chat text, a request
path, a Zalo message) is run on 16 KB adversarial strings: long runs of spaces after a digit,
"a a a …", "0 . 0 . …", digits and dashes alternating. The old patterns backtracked over
optional separators or restarted at every position and scanned to the end: seconds per call,
hundreds to tens of thousands of times a linear scan of the same string.

Time is measured as a ratio to a linear reference (`len(re.findall(r"\\w+", s))`, timed
the same way, best of 3), so machine load affects both sides. On the fixed code the worst
ratios measured 20-40 (the masks on "aaaa", where the reference is one C-speed match, and
`CodeMatcher.find` on "0 . 0 . …", which reads up to 2 * MAX_CODE_CHARS from each start);
`MAX_RATIO` = 200 leaves a margin of 5 or more for a loaded machine. The old code measured
1,700 (the finder) to 78,000 (the segmenter's protected spans) on its worst strings: seconds
per call, so it fails by a wide margin.

The second half checks that the rewritten patterns find exactly what the old ones found,
on a seeded corpus of short code-like strings (where the old, quadratic patterns are cheap).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from bot.channels.zalo.channel import ZaloChannel, _answer, too_long_reply
from bot.channels.zalo.events import parse_event
from bot.channels.zalo.split import _NUMBER_REPLY, _SENTENCE, choice_from_number, split_text
from bot.config import ROOT, Settings
from bot.gateway.app import LOG_TEXT_CHARS, MaskingAccessLogger, for_log, path_for_log
from bot.nlu.segment import _PROTECTED_RE, protected_spans
from bot.status.codes import (
    _ATTEMPT_RE,
    _SEP_DASH,
    DASHES,
    CodeMatcher,
    load_patterns,
    mask_code,
    mask_codes,
    normalize,
)
from bot.text import mask_pii

SIZE = 16 * 1024
MAX_RATIO = 200
SHIPPED = ROOT / "data" / "status" / "receipt_codes.yaml"
BUTTONS = [{"title": "Một", "payload": "/one"}, {"title": "Hai", "payload": "/two"}]


def _fill(unit: str, head: str = "", tail: str = "") -> str:
    """`head` + `unit` repeated + `tail`, exactly SIZE characters."""
    body = unit * (SIZE // len(unit) + 1)
    return head + body[: SIZE - len(head) - len(tail)] + tail


ADVERSARIAL = {
    "a a a": _fill("a "),
    "a%20a%20": _fill("a%20"),
    "2 + spaces + x": _fill(" ", "2", "x"),
    "2 + spaces": _fill(" ", "2"),
    "0.0.0": _fill("0."),
    "0 . 0 . 0": _fill("0 . "),
    "H1 . 0 . 0": _fill(" . 0", "H1"),
    "1-1-1": _fill("1-"),
    "1 - 1 - 1": _fill("1 - "),
    "digit, 30 spaces": _fill("1" + " " * 30),
    "aaaa": _fill("a"),
    "1111": _fill("1"),
    "....": _fill("."),
    "!!!!": _fill("!"),
    "123456 123456": _fill("123456 "),
    "123456 - 123456": _fill("123456 - "),
    "H26 H26": _fill("H26 "),
    "a@a@": _fill("a@"),
    "a.a a.a": _fill("a.a "),
    "newline, spaces": _fill("\n" + " " * 50),
    "số + spaces": _fill(" ", "số 2", "x"),
    # the shapes of personal numbers (bot.text.mask_pii, issue 18 item 9)
    "12 12 12": _fill("12 "),
    "123 123 123": _fill("123 "),
    "0912 345 678, ": _fill("0912 345 678, "),
    "+1 +1 +1": _fill("+1 "),
    "(+84) (+84)": _fill("(+84) "),
    "84 84 84": _fill("84 "),
    "a.a@a.a@": _fill("a.a@"),
    "a…a@a.b": _fill("a", tail="@a.b"),
}
assert all(len(s) == SIZE for s in ADVERSARIAL.values())

_WORD = re.compile(r"\w+")


def _reference(text: str) -> int:
    """The linear scan every ratio is relative to."""
    return len(_WORD.findall(text))


def _once(f: Callable[[str], object], text: str) -> float:
    start = time.perf_counter()
    f(text)
    return time.perf_counter() - start


def _best(f: Callable[[str], object], text: str, runs: int = 3) -> float:
    return min(_once(f, text) for _ in range(runs))


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _access_logger() -> tuple[MaskingAccessLogger, _Records]:
    logger = logging.getLogger("tests.regex_linear.access")
    logger.handlers[:] = []
    records = _Records()
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return MaskingAccessLogger(logger, ""), records


def _log_request(path: str) -> str:
    """What the gateway's access logger writes for an unauthenticated GET of `path`."""
    access, records = _access_logger()
    request = SimpleNamespace(remote="203.0.113.9", method="GET", path=path,
                              get=lambda key, default=None: default)
    access.log(request, SimpleNamespace(status=404), 0.001)  # type: ignore[arg-type]
    return records.messages[-1]


_MATCHER = CodeMatcher(load_patterns(SHIPPED))

FUNCTIONS: dict[str, Callable[[str], object]] = {
    "bot.text.mask_pii": mask_pii,
    "bot.status.codes.mask_codes": mask_codes,
    "bot.status.codes.normalize": normalize,
    "CodeMatcher.find": _MATCHER.find,
    "CodeMatcher.looks_like_attempt": _MATCHER.looks_like_attempt,
    "bot.nlu.segment.protected_spans": lambda s: list(protected_spans(s)),
    "bot.channels.zalo.split.split_text": split_text,
    "bot.channels.zalo.split.choice_from_number": lambda s: choice_from_number(s, BUTTONS),
    "bot.gateway.app.for_log": for_log,
    "MaskingAccessLogger.log": lambda s: _log_request("/" + s),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_each_regex_on_outside_input_is_linear(name: str) -> None:
    f = FUNCTIONS[name]
    for label, text in ADVERSARIAL.items():
        reference = _best(_reference, text)
        limit = MAX_RATIO * reference
        took = _once(f, text)
        if took > limit:  # perhaps a hiccup of the machine: measure again
            # A stall can be long (a fresh-clone CI run saw one call take 1.5 s while the
            # session model trained on both cores); a quadratic pattern is as slow the
            # second time, and then is not run five times more.
            took = min(took, _once(f, text))
            if took < 20 * limit:
                took = min(took, _best(f, text, 5))
                reference = min(reference, _best(_reference, text, 5))
                limit = MAX_RATIO * reference
        assert took <= limit, (
            f"{name} on 16 KB of {label!r}: {took * 1000:.1f} ms, "
            f"{took / reference:.0f}x the linear reference ({reference * 1000:.2f} ms)"
        )


# --------------------------------------------------------------------------- the access log


def test_logged_paths_are_capped_and_masked() -> None:
    line = _log_request("/" + "a%20" * 2048)
    path = line.split('"GET ', 1)[1].split('" ', 1)[0]
    assert len(path) <= LOG_TEXT_CHARS + 1 and path.endswith("…")
    # A citizen ID across the cut is dropped whole, not logged in part.
    logged = path_for_log("/" + "x/" * 125 + "001203004567")
    assert "00120" not in logged and logged.endswith("…")
    # Masked spans before the cut are masked as they are in a short path.
    long = "/tra-cuu/000.00.20.H26-250312-0045/cccd/001203004567/" + "trang/" * 60
    logged = path_for_log(long)
    assert "***0045" in logged and "001******567" in logged and "250312" not in logged
    assert path_for_log("/api/v1/chat") == for_log("/api/v1/chat") == "/api/v1/chat"


# --------------------------------------------------------------------------- Zalo text size


def test_zalo_text_over_max_message_bytes_gets_the_chat_api_refusal() -> None:
    limit = 100
    assert too_long_reply("a" * limit, limit) is None
    assert too_long_reply("ệ" * 33, limit) is None  # 99 bytes
    refusal = too_long_reply("ệ" * 34, limit)  # 102 bytes
    assert refusal is not None and "quá dài" in refusal and str(limit) in refusal
    assert too_long_reply("\ud800" * 10, limit) is None  # lone surrogates: no crash

    def no_rasa() -> None:
        raise AssertionError("an over-long text must not reach the assistant")

    channel = ZaloChannel(settings=Settings(max_message_bytes=limit), client=None,  # type: ignore[arg-type]
                          rasa=no_rasa)  # type: ignore[arg-type]
    event = parse_event({"event_name": "user_send_text", "sender": {"id": "u-long"},
                         "message": {"msg_id": "m-1", "text": "2" + " " * 65000 + "x"}})
    assert event.kind == "text"
    replies = asyncio.run(_answer(channel, event, inbox_id=1))
    assert replies == [("text", {"text": too_long_reply(event.text or "", limit)})]


# --------------------------------------------------------------------------- same results

# The patterns as they were before they were made linear: the reference for the rewrites.
_OLD_GENERIC_MASK = re.compile(
    rf"(?<![0-9A-Za-z.])[0-9A-Za-z][0-9A-Za-z.\s]*?{_SEP_DASH}\d{{6}}{_SEP_DASH}\d{{3,6}}(?!\d)")
_OLD_ATTEMPT = re.compile(
    rf"[0-9A-Za-z]+(?:\s*[.{re.escape(DASHES)}]\s*[0-9A-Za-z]+)+|\d{{6,}}")
_OLD_SENTENCE = re.compile(r"[.?!]+[\"'”’)\]]*\s+|…\s*|\n\s*")
_OLD_NUMBER_REPLY = re.compile(r"^\s*(?:s[ốô]\s*|#\s*)?(\d{1,3})\s*[.)]?\s*$", re.IGNORECASE)


def _old_normalize(code: str) -> str:
    text = code.strip().upper()
    text = re.sub(rf"\s*[{re.escape(DASHES)}]\s*", "-", text)
    text = re.sub(r"\s*\.\s*", ".", text)
    return re.sub(r"\s+", "-", text)


_PIECES = [*"aAHx0123456789.-–_ \n\t@/+#)!?…ạđ", "  ", " - ", " . ", "000.", "H26", "250312",
           "0045", "số ", "001203004567", "0912345678", "+84", "https://", "a@b.vn",
           "000.00.20.H26-250312-0045", "g22.15 - 250301 - 0007", "H26 250312 0045"]


def _corpus(seed: int, count: int, pieces: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, pieces)))
            for _ in range(count)]


def test_rewritten_patterns_find_what_the_old_ones_found() -> None:
    for text in _corpus(18, 3000, 24):
        assert mask_codes(text) == _OLD_GENERIC_MASK.sub(lambda m: mask_code(m.group(0)),
                                                         text), text
        assert normalize(text) == _old_normalize(text), text
        assert ([m.span() for m in protected_spans(text)]
                == [m.span() for m in _PROTECTED_RE.finditer(text)]), text
        assert ([m.span() for m in _SENTENCE.finditer(text)]
                == [m.span() for m in _OLD_SENTENCE.finditer(text)]), text
        found = [(normalize(m.group(0)), m.start(), m.end())
                 for m in _MATCHER._finder.finditer(text)]
        assert _MATCHER.find(text) == found, text
        old, new = _OLD_ATTEMPT.search(text), _ATTEMPT_RE.search(text)
        assert (old and old.span()) == (new and new.span()), text
    for text in [*_corpus(19, 3000, 6), "2", " 2. ", "2)", "số 2", "Số 2.", "#2", "2 hồ sơ"]:
        old_m, new_m = _OLD_NUMBER_REPLY.match(text), _NUMBER_REPLY.match(text)
        assert (old_m and (old_m.span(), old_m.group(1))) == (
            new_m and (new_m.span(), new_m.group(1))), text


def test_codes_in_long_messages_are_found_as_before() -> None:
    """Past 2 * MAX_CODE_CHARS `find` reads windows: real codes are found all the same."""
    filler = ("Tôi đã nộp hồ sơ đăng ký khai sinh cho con ở xã, cán bộ hẹn 05 ngày làm việc. "
              "Số điện thoại 0912 345 678, mã 0 . 0 . 1 - 2 chưa rõ. ")
    for text in _corpus(20, 100, 200):
        text = (filler * 4 + text + filler * 3 + "000.00.20.H26 - 250312 - 0045." + filler
                + "mã 000 . 00 . 20 . H26  -  250312  -  001234 ạ" + filler)
        found = [(normalize(m.group(0)), m.start(), m.end())
                 for m in _MATCHER._finder.finditer(text)]
        assert _MATCHER.find(text) == found
        assert found[-1][0] == "000.00.20.H26-250312-001234"
