"""Receipt codes (mã hồ sơ): find them in free text, normalize them, mask them for logs.

Citizens copy codes from paper receipts and SMS: in lower case, with spaces around the
dashes, with an en dash from a phone keyboard. Patterns are written for the canonical
form (upper case, "." and "-" without spaces); `_tolerant` widens a pattern so every
separator may carry spaces or be a dash look-alike, and `normalize` maps what matched back
to the canonical code the status sources store. Patterns live in a YAML file
(data/status/receipt_codes.yaml, or RECEIPT_CODE_PATTERNS) so a province with another code
shape adds one without retraining the model.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.yamlfile import read_yaml

log = logging.getLogger(__name__)

DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2212_"
_SEP_DASH = rf"(?:\s*[{re.escape(DASHES)}]\s*|\s+)"
_SEP_DOT = r"\s*\.\s*"
_NOT_BEFORE = r"(?<![0-9A-Za-z.])"
# Not followed by more of a code ("…-0045-99", "….0045.1"), but "…-0045 - cảm ơn" is fine.
_NOT_AFTER = rf"(?![0-9A-Za-z]|[.{re.escape(DASHES)}][0-9A-Za-z])"
# Codes a citizen may mistype look like one: digits mixed with dots/dashes, or a long run
# of digits. Used only to tell "a wrong code" from "no code at all" when we asked for one.
# The first branch starts only where a run of letters and digits starts: started inside a
# run it would find nothing its start would not, but rescan the run (quadratic on "aaaa…").
_ATTEMPT_RE = re.compile(
    rf"(?<![0-9A-Za-z])[0-9A-Za-z]+(?:\s*[.{re.escape(DASHES)}]\s*[0-9A-Za-z]+)+|\d{{6,}}")
# `normalize`'s separators, with spaces before them taken only where a run of spaces starts:
# a match inside the run would also match from its start, and trying each position of a
# long run rescanned it. A bare separator may follow spaces the previous match took.
_DASH_SEP_RE = re.compile(rf"(?<!\s)\s*[{re.escape(DASHES)}]\s*|[{re.escape(DASHES)}]\s*")
_DOT_SEP_RE = re.compile(rf"(?<!\s){_SEP_DOT}|\.\s*")

# The generic shape `mask_codes` masks, as one regular expression:
#   {_NOT_BEFORE}[0-9A-Za-z][0-9A-Za-z.\s]*?{_SEP_DASH}\d{6}{_SEP_DASH}\d{3,6}(?!\d)
# Matched as written, each start scanned to the end of its run of letters, digits, dots and
# spaces (seconds on 16 KB of "a a a …"), so `mask_codes` finds the same spans in three linear
# passes: the tails ("-250312-0045"), the starts, and the runs a prefix may cover.
_MASK_TAIL_RE = re.compile(rf"(?<!\s)(?=({_SEP_DASH}\d{{6}}{_SEP_DASH}\d{{3,6}}(?!\d)))")
_MASK_START_RE = re.compile(rf"{_NOT_BEFORE}[0-9A-Za-z]")
_MASK_PREFIX_RE = re.compile(r"[0-9A-Za-z.\s]*")
# Longer than any code as typed ("000 . 00 . 20 . H26 - 250312 - 001234" is 37 characters):
# `CodeMatcher.find` reads windows of twice this size, so that no pattern can make each
# start scan the whole message. The cost is this many steps per character at worst.
MAX_CODE_CHARS = 64
_WINDOW_MARGIN = 8  # room for the look-ahead after a code, which must see real characters


class CodePatternError(ValueError):
    """The patterns file is unusable (message in Vietnamese, names the entry)."""


@dataclass(frozen=True)
class CodePattern:
    """One accepted code shape."""

    name: str
    pattern: str  # as written in the file, for the canonical form
    example: str
    description: str = ""


def _tolerant(pattern: str) -> str:
    """Let every literal "." and "-" of a canonical pattern carry spaces or be a look-alike.

    A dash separating two parts may also be plain spaces ("H26 250312 0045"). Characters
    inside [...] classes and escaped ones other than "\\." are left alone.
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            pair = pattern[i:i + 2]
            out.append(_SEP_DOT if pair == r"\." and not in_class else pair)
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
        elif ch == "[":
            in_class = True
            out.append(ch)
            if pattern[i + 1:i + 2] == "]":  # "[]...]": a literal "]" first in the class
                out.append("]")
                i += 1
        else:
            out.append(_SEP_DASH if ch == "-" else ch)
        i += 1
    return "".join(out)


def normalize(code: str) -> str:
    """The canonical form: upper case, ASCII dashes, no spaces around separators."""
    text = code.strip().upper()
    text = _DASH_SEP_RE.sub("-", text)
    text = _DOT_SEP_RE.sub(".", text)
    return re.sub(r"\s+", "-", text)


class CodeMatcher:
    """Finds receipt codes with a set of patterns (first the earliest, then the longest)."""

    def __init__(self, patterns: list[CodePattern]) -> None:
        if not patterns:
            raise CodePatternError("cần ít nhất một mẫu mã hồ sơ")
        self.patterns = patterns
        alternatives = "|".join(f"(?:{_tolerant(p.pattern)})" for p in patterns)
        self._finder = re.compile(f"{_NOT_BEFORE}(?:{alternatives}){_NOT_AFTER}", re.IGNORECASE)
        self._exact = [re.compile(p.pattern, re.IGNORECASE) for p in patterns]

    @property
    def example(self) -> str:
        return self.patterns[0].example

    def find(self, text: str) -> list[tuple[str, int, int]]:
        """(canonical code, start, end) of every code in `text`, in order."""
        return [(normalize(m.group(0)), m.start(), m.end()) for m in self._matches(text or "")]

    def _matches(self, text: str) -> Iterator[re.Match[str]]:
        """`finditer` of the patterns, reading at most 2 * MAX_CODE_CHARS from each start.

        Patterns come from a file and the tolerant separators admit starts after every
        space, so one start may scan as far as a pattern's repetitions go ("0 . 0 . 0 …"):
        quadratic on the whole message. In windows, what is found is what `finditer` finds
        for every code shorter than MAX_CODE_CHARS - _WINDOW_MARGIN; longer ones are not codes.
        """
        n, size = len(text), MAX_CODE_CHARS
        pos = 0
        while pos < n:
            end = min(n, pos + 2 * size)
            m = self._finder.search(text, pos, end)
            if m is None:
                if end == n:
                    return
                pos += size  # no code starts in the first half; the second is read again
            elif end == n or (m.start() < pos + size and m.end() <= end - _WINDOW_MARGIN):
                yield m
                pos = max(m.end(), m.start() + 1)
            elif m.start() >= pos + size:
                pos = m.start()  # read again in a window that starts with it
            else:
                pos = m.start() + 1  # longer than any code: not one

    def first(self, text: str) -> str | None:
        found = self.find(text)
        return found[0][0] if found else None

    def is_valid(self, code: str) -> bool:
        """Whether a canonical code matches one of the patterns exactly."""
        return any(p.fullmatch(code) for p in self._exact)

    def looks_like_attempt(self, text: str) -> str | None:
        """A code-like fragment of a message that holds no valid code (for the re-ask)."""
        if self.find(text):
            return None
        m = _ATTEMPT_RE.search(text or "")
        if m is None or sum(ch.isdigit() for ch in m.group(0)) < 4:
            return None
        return m.group(0)


def parse_patterns(data: object, source: str) -> list[CodePattern]:
    """Validate the file's content; every problem is reported at once."""
    if not isinstance(data, dict) or not isinstance(data.get("receipt_code_patterns"), list):
        raise CodePatternError(f"{source}: cần khóa 'receipt_code_patterns' là một danh sách")
    errors: list[str] = []
    out: list[CodePattern] = []
    for i, item in enumerate(data["receipt_code_patterns"], start=1):
        where = f"{source}: mẫu thứ {i}"
        if not isinstance(item, dict):
            errors.append(f"{where}: cần các trường name, pattern, example")
            continue
        unknown = set(item) - {"name", "pattern", "example", "description"}
        if unknown:
            errors.append(f"{where}: trường không biết: {', '.join(sorted(unknown))}")
        name, pattern, example = (str(item.get(k) or "").strip()
                                  for k in ("name", "pattern", "example"))
        missing = [k for k, v in (("name", name), ("pattern", pattern), ("example", example))
                   if not v]
        if missing:
            errors.append(f"{where}: thiếu {', '.join(missing)}")
            continue
        try:
            exact = re.compile(pattern, re.IGNORECASE)
            re.compile(_tolerant(pattern), re.IGNORECASE)
        except re.error as exc:
            errors.append(f"{where} ({name}): biểu thức chính quy sai: {exc}")
            continue
        if not exact.fullmatch(normalize(example)):
            errors.append(f"{where} ({name}): ví dụ {example!r} không khớp với chính mẫu này")
            continue
        out.append(CodePattern(name, pattern, normalize(example),
                               str(item.get("description") or "").strip()))
    if errors:
        raise CodePatternError("\n".join(errors))
    if not out:
        raise CodePatternError(f"{source}: cần ít nhất một mẫu mã hồ sơ")
    return out


def load_patterns(path: Path) -> list[CodePattern]:
    """Read and validate a patterns file."""
    return parse_patterns(read_yaml(path, CodePatternError), str(path))


_CACHE: dict[Path, tuple[float, CodeMatcher]] = {}
_LOCK = threading.Lock()


def matcher_for(path: Path) -> CodeMatcher:
    """The matcher of a patterns file, re-read when the file changes.

    A broken edit of a file already in use keeps the last valid patterns (and logs why);
    a file that was never valid raises CodePatternError.
    """
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = -1.0
    with _LOCK:
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            matcher = CodeMatcher(load_patterns(path))
        except CodePatternError as exc:
            if cached is None:
                raise
            log.error("receipt code patterns: keeping the previous ones: %s", exc)
            _CACHE[path] = (mtime, cached[1])
            return cached[1]
        _CACHE[path] = (mtime, matcher)
        return matcher


def mask_code(code: str) -> str:
    """A code as it may appear in a log: only its last 4 characters."""
    code = normalize(code)
    return "***" + code[-4:] if len(code) > 4 else "***"


def mask_codes(text: str) -> str:
    """Mask every code-shaped span of a text (a generic shape: logs need no configuration).

    The spans are those of the expression written out above `_MASK_TAIL_RE`, found in linear
    time: each masks from the first start of a run of letters, digits, dots and spaces up to
    the first tail after it that the run reaches (so "ma ho so H26 250312 0045" is one span).
    """
    tails = [(m.start(), m.end(1)) for m in _MASK_TAIL_RE.finditer(text)]
    if not tails:
        return text
    reverse = text[::-1]
    n = len(text)
    out: list[str] = []
    done = 0  # text[:done] is written (and no later span may start before it)
    for tail, end in tails:
        if tail <= done:
            continue
        # The prefix before a tail is the run of [0-9A-Za-z.\s] that ends at the tail.
        run = _MASK_PREFIX_RE.match(reverse, n - tail, n - done).end() - (n - tail)
        start = _MASK_START_RE.search(text, tail - run, tail)
        if start is None:
            continue
        out.append(text[done:start.start()])
        out.append(mask_code(text[start.start():end]))
        done = end
    out.append(text[done:])
    return "".join(out)
