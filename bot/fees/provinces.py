"""Vietnam's 34 provincial-level units (from 1 July 2025) and the ways citizens name them.

A People's Council sets many fees, so the assistant must know which province a citizen
means, from a slot or override value ("01", "Hà Nội", "tp hcm") or from a free message
("nhà em ở Bình Dương cũ"). Citizens type without diacritics, use short forms and still
name the 63 provinces of before the 2025 mergers, so the data (`data/provinces.yaml`)
lists aliases and former names and every comparison is made on `bot.text.fold`ed words.

Folding also merges words that only their marks tell apart ("huế" and the given name
"Huệ", "cần thơ" and "cần thợ"). Where the citizen did type marks, they must agree with
the name's own (`_compatible`); unmarked text is taken as it comes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.text import fold, normalize, strip_accents
from bot.yamlfile import read_yaml

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = ROOT / "data" / "provinces.yaml"
ENTRY_KEYS = ("code", "name", "short", "aliases", "former")
CODE = re.compile(r"^\d{2}$")

# Words that only say what kind of unit follows ("Thành phố Hà Nội", "tp. HCM", "tỉnh Huế"),
# as folded tokens; stripped from a looked-up value and from the names themselves.
PREFIXES: tuple[tuple[str, ...], ...] = (
    ("thanh", "pho"), ("tp",), ("tinh",), ("thu", "do"),
)
# "Bình Dương cũ": a citizen marking a former province as such.
SUFFIXES: tuple[tuple[str, ...], ...] = (("cu",),)

# A place name right after one of these names a street, ward or district, not a province:
# "phố Huế" and "đường Hà Nội" are streets, "xã Hòa Bình" is a commune in many provinces.
# Written with marks so that "dương" (Bình Dương) is not taken for "đường".
LOWER_LEVEL = ("xã", "phường", "quận", "huyện", "thị trấn", "đường", "phố", "thôn", "ấp",
               "ngõ", "hẻm")
# Phrases that contain a province name but do not mean the province (folded). They are
# matched like names, longest first, and skipped.
NOT_A_PROVINCE = (
    "thai binh duong",          # the Pacific Ocean, not Thái Bình + Bình Dương
    "tham gia lai",             # "tham gia lại" typed without marks, not Gia Lai
    "tu tuong ho chi minh", "chu tich ho chi minh", "tncs ho chi minh", "lang ho chi minh",
)

_WORD = re.compile(r"[0-9a-z]+")


class ProvinceError(ValueError):
    """The provinces file cannot be used; the message names the file and every bad entry."""


@dataclass(frozen=True)
class Province:
    """One provincial-level unit.

    `code` is the two-digit code of Quyết định 19/2025/QĐ-TTg (kept as a string: "01");
    `name` the official name for legal wording, `short` the name used in answers;
    `aliases` and `former` only serve recognition (see `find_province`).
    """

    code: str
    name: str
    short: str
    aliases: tuple[str, ...]
    former: tuple[str, ...]


@dataclass(frozen=True)
class _Token:
    key: str      # folded word: what is compared
    written: str  # the same word as written (NFC, lower case), for the marks check
    start: int
    end: int


def _tokens(text: str) -> list[_Token]:
    """Folded words of `text`, each with its written form and offsets."""
    written = normalize(text).lower()
    folded = fold(written)
    if len(folded) != len(written):  # an exotic character changed length: no marks check
        written = folded
    return [_Token(m.group(0), written[m.start():m.end()], m.start(), m.end())
            for m in _WORD.finditer(folded)]


def _plain(ch: str) -> bool:
    return strip_accents(ch) == ch


def _compatible(written: str, form: str) -> bool:
    """Whether `written` (folding to the same key as `form`) can mean `form`.

    Every mark the citizen typed must be the form's: "huệ" is not "huế", while "hue" and
    "ha nội" stay acceptable. A form written without any mark in the data ("hcm",
    "ha noi") is a spelling of its own and accepts any marks.
    """
    if len(written) != len(form) or all(_plain(c) for c in form):
        return True
    return all(w == f or _plain(w) for w, f in zip(written, form, strict=True))


def _strip(tokens: list[_Token]) -> list[_Token]:
    """`tokens` without a leading unit word ("tỉnh", "tp") and a trailing "cũ"."""
    for prefix in PREFIXES:
        if len(tokens) > len(prefix) and tuple(t.key for t in tokens[:len(prefix)]) == prefix:
            tokens = tokens[len(prefix):]
            break
    for suffix in SUFFIXES:
        if len(tokens) > len(suffix) and tuple(t.key for t in tokens[-len(suffix):]) == suffix:
            tokens = tokens[:-len(suffix)]
            break
    return tokens


def _key(tokens: list[_Token]) -> str:
    return " ".join(t.key for t in tokens)


def _written(tokens: list[_Token]) -> str:
    return " ".join(t.written for t in tokens)


@dataclass(frozen=True)
class _Index:
    by_code: dict[str, Province]
    # folded name -> (its province, the forms as written in the data, for the marks check)
    names: dict[str, tuple[Province, tuple[str, ...]]]
    blocked: frozenset[str]
    longest: int  # words in the longest name or blocked phrase


def _string_list(value: Any, field: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{field} phải là danh sách tên (chuỗi không rỗng), không phải {value!r}")
        return ()
    return tuple(v.strip() for v in value)


def _entry(raw: Any, where: str, problems: list[str]) -> Province | None:
    """The Province of one entry, or None after adding its problems (prefixed by `where`)."""
    if not isinstance(raw, dict):
        problems.append(f"{where}: cần các khóa {', '.join(ENTRY_KEYS)}, không phải {raw!r}")
        return None
    own: list[str] = []
    unknown = sorted(set(map(str, raw)) - set(ENTRY_KEYS))
    if unknown:
        own.append(f"khóa không dùng được: {', '.join(unknown)}")
    code = raw.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        own.append(f"code {code!r} phải đặt trong ngoặc kép, ví dụ \"01\" "
                   "(YAML đọc 01 không có ngoặc thành số 1)")
    elif not isinstance(code, str) or not CODE.match(code):
        own.append(f"code {code!r} phải là mã 2 chữ số trong ngoặc kép, ví dụ \"01\"")
    texts = {}
    for field in ("name", "short"):
        value = raw.get(field)
        if not isinstance(value, str) or not value.strip():
            own.append(f"{field} phải là tên (chuỗi không rỗng), không phải {value!r}")
        else:
            texts[field] = value.strip()
    aliases = _string_list(raw.get("aliases"), "aliases", own)
    former = _string_list(raw.get("former"), "former", own)
    if own:
        problems.extend(f"{where}: {p}" for p in own)
        return None
    return Province(code=code, name=texts["name"], short=texts["short"], aliases=aliases,
                    former=former)


def _index(path: Path) -> _Index:
    """Read and validate the whole file; every problem is reported at once."""
    data = read_yaml(path, ProvinceError)
    entries = data.get("provinces") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ProvinceError(f"{path}: cần khóa provinces với danh sách các tỉnh, thành phố")

    problems: list[str] = []
    by_code: dict[str, Province] = {}
    names: dict[str, tuple[Province, tuple[str, ...]]] = {}
    for n, raw in enumerate(entries, 1):
        label = (raw.get("short") or raw.get("code")) if isinstance(raw, dict) else None
        where = f"mục {n}" + (f" ({label})" if label else "")
        province = _entry(raw, where, problems)
        if province is None:
            continue
        if province.code in by_code:
            problems.append(f"{where}: mã {province.code} đã dùng cho "
                            f"{by_code[province.code].short}")
            continue
        by_code[province.code] = province
        for value in (province.name, province.short, *province.aliases, *province.former):
            tokens = _tokens(value)
            for form in (tokens, _strip(tokens)):
                key = _key(form)
                if not key:
                    continue
                other, forms = names.get(key, (province, ()))
                if other.code != province.code:
                    problems.append(f"{where}: tên \"{value}\" trùng với tên của {other.short} "
                                    f"({other.code}) khi bỏ dấu; mỗi tên chỉ thuộc một tỉnh")
                    break
                names[key] = (province, (*forms, _written(form)))
    if problems:
        raise ProvinceError(f"{path}: " + problems[0] if len(problems) == 1 else
                            f"{path}:\n" + "\n".join(f"  - {p}" for p in problems))
    longest = max(len(k.split()) for k in (*names, *NOT_A_PROVINCE))
    return _Index(by_code, names, frozenset(NOT_A_PROVINCE), longest)


@lru_cache(maxsize=8)
def _cached_index(path: Path) -> _Index:
    # Errors are not cached (lru_cache keeps only returned values): a fixed file loads.
    return _index(path)


def _default_index() -> _Index:
    return _cached_index(DEFAULT_PATH)


def load_provinces(path: Path | None = None) -> dict[str, Province]:
    """The provinces of `path` (default `data/provinces.yaml`) by code ("01").

    The file is read once per path and validated as a whole: a malformed file raises
    ProvinceError naming the file and each bad entry, and nothing of it is used. The
    returned dict is the caller's own copy.
    """
    return dict(_cached_index((path or DEFAULT_PATH).resolve()).by_code)


def _lookup(index: _Index, tokens: list[_Token]) -> Province | None:
    entry = index.names.get(_key(tokens))
    if entry is None:
        return None
    province, forms = entry
    written = _written(tokens)
    return province if any(_compatible(written, f) for f in forms) else None


def find_province(value: str) -> Province | None:
    """The province a whole value names, or None.

    Accepts the code ("01", "1": YAML turns an unquoted 01 into 1), the official or short
    name, an alias or a former province name, in any case, with or without diacritics,
    with extra spaces or punctuation and with a unit word ("thành phố", "tp.", "tỉnh")
    or a trailing "cũ". The whole value must be a name: use `province_in_text` for a
    sentence.
    """
    index = _default_index()
    tokens = _tokens(value)
    if not tokens:
        return None
    digits = value.strip()
    if digits.isascii() and digits.isdigit():
        number = int(digits)
        return index.by_code.get(f"{number:02d}") if number < 100 else None
    return _lookup(index, tokens) or _lookup(index, _strip(tokens))


_LOWER_LEVEL_TOKENS = tuple((level, _tokens(level)) for level in LOWER_LEVEL)


def _names_lower_level(tokens: list[_Token], i: int, text: str) -> bool:
    """Whether the words just before `tokens[i]` say it is a street, ward or district."""
    for level, words in _LOWER_LEVEL_TOKENS:
        start = i - len(words)
        if start < 0:
            continue
        before = tokens[start:i]
        if _key(before) != _key(words) or not _compatible(_written(before), _written(words)):
            continue
        # "thành phố Huế" names the city itself, "phố Huế" a street.
        if level == "phố" and start > 0 and tokens[start - 1].key == "thanh":
            continue
        # Punctuation in between ("ở xa, Hà Nội") separates the words.
        if text[before[-1].end:tokens[i].start].strip():
            continue
        return True
    return False


def province_in_text(text: str) -> Province | None:
    """The province a citizen's message names, the first one if it names several.

    Whole words only, on folded text, the longest name first at each position ("Bà Rịa
    - Vũng Tàu" before "Vũng Tàu"), so short aliases ("hn", "sg") never match inside a
    word. Codes are not recognised here (numbers in a message are rarely a province),
    nor names that follow a street or ward word ("phố Huế"), nor the phrases in
    NOT_A_PROVINCE.
    """
    index = _default_index()
    tokens = _tokens(text)
    written = normalize(text).lower()
    i = 0
    while i < len(tokens):
        skip = 0
        for size in range(min(index.longest, len(tokens) - i), 0, -1):
            window = tokens[i:i + size]
            key = _key(window)
            if key in index.blocked:
                skip = size
                break
            province = _lookup(index, window)
            if province is not None and not _names_lower_level(tokens, i, written):
                return province
        i += skip or 1
    return None
