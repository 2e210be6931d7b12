"""Situations that can exempt a citizen from a fee, as tags shared by rules and dialogue.

An exemption in a legal text ("Miễn lệ phí cho người thuộc hộ nghèo; người khuyết tật")
and a citizen's declaration ("nhà em thuộc hộ nghèo", "tôi là thương binh") have to meet
on the same machine-readable tags, so one function reads both: `situations_in_text`.
Override files name exemptions by these tags (bot/fees/overrides.py validates them
against SITUATIONS) and answers name them by their label.

Matching is on `bot.text.fold`ed text, whole words, so marks are optional. It does not
read negation: "không thuộc hộ nghèo" still gives ho_ngheo, because the same words in a
legal text ("không thu lệ phí đối với hộ nghèo") are an exemption. The dialogue should
confirm a declared situation before applying an exemption.
"""

from __future__ import annotations

import re

from bot.text import fold

# Tag -> label used in answers ("Miễn lệ phí cho {label}").
SITUATIONS: dict[str, str] = {
    "ho_ngheo": "người thuộc hộ nghèo",
    "ho_can_ngheo": "người thuộc hộ cận nghèo",
    "nguoi_co_cong": "người có công với cách mạng và thân nhân",
    "khuyet_tat": "người khuyết tật",
    "tre_em": "trẻ em (dưới 16 tuổi)",
    "nguoi_cao_tuoi": "người cao tuổi (từ đủ 60 tuổi)",
    "dan_toc_thieu_so": "người dân tộc thiểu số, người ở vùng đặc biệt khó khăn",
}

# Luật Trẻ em 2016: trẻ em là người dưới 16 tuổi. Luật Người cao tuổi 2009: từ đủ 60 tuổi.
CHILD_UNDER = 16
ELDERLY_FROM = 60

# Patterns on folded text in which every run of characters other than letters, digits
# and . , ; is one space ("kinh tế - xã hội" -> "kinh te xa hoi"): the punctuation kept
# stops a pattern from joining words of two list items.
_PATTERNS: dict[str, tuple[str, ...]] = {
    # "hộ cận nghèo" folds to "ho can ngheo": "ho ngheo" needs the two words side by side.
    "ho_ngheo": (r"\b(?:ho|nguoi|gia dinh|nha) ngheo\b",),
    "ho_can_ngheo": (r"\bcan ngheo\b",),
    "nguoi_co_cong": (
        # "người có công việc", "có công ăn việc làm" are not about merit.
        r"\b(?:nguoi|gia dinh) co cong\b"
        r"(?! (?:viec|an|trinh|ty|nghe|cu|thuc|suat|tac|chuc)\b)",
        r"\bco cong voi (?:cach mang|nuoc|dat nuoc|to quoc)\b",
        r"\bthuong binh\b", r"\bbenh binh\b", r"\bliet (?:si|sy)\b",
        r"\bme viet nam anh hung\b", r"\banh hung luc luong vu trang\b",
        r"\bgia dinh chinh sach\b", r"\bnhiem chat doc hoa hoc\b",
    ),
    "khuyet_tat": (r"\bkhuyet tat\b", r"\btan tat\b"),
    "tre_em": (r"\btre em\b", r"\btre so sinh\b", r"\btre nho\b",
               r"\b(?:duoi|chua du|chua den) \d{1,3} thang tuoi\b"),
    "nguoi_cao_tuoi": (r"\bcao tuoi\b", r"\blon tuoi\b",
                       # "người già", not "người gia hạn", "(người) gia đình"
                       r"\bnguoi gia\b(?! (?:dinh|han|nhap|tang|cong|tri|su)\b)"),
    "dan_toc_thieu_so": (
        r"\bdan toc thieu so\b", r"\bdong bao dan toc\b", r"\bnguoi dan toc\b(?! kinh\b)",
        # "vùng có điều kiện kinh tế - xã hội đặc biệt khó khăn", "xã đặc biệt khó khăn";
        # not "hoàn cảnh đặc biệt khó khăn", which is a household's, not an area's.
        r"\bkinh te xa hoi dac biet kho khan\b",
        r"\b(?:vung|xa|thon|dia ban|khu vuc)\b[^.,;]{0,40}?\bdac biet kho khan\b",
    ),
}
_COMPILED: dict[str, tuple[re.Pattern[str], ...]] = {
    tag: tuple(re.compile(p) for p in patterns) for tag, patterns in _PATTERNS.items()
}

# Ages: "dưới 6 tuổi", "con tôi 5 tuổi", "từ đủ 60 tuổi", "bà tôi 75 tuổi".
_AGE = re.compile(r"\b(?:(duoi|chua du|chua den|tren|hon|tu du|tu|du) )?(\d{1,3}) tuoi\b")
_CHILD_CONTEXT = re.compile(r"\b(?:con|be|chau|tre)(?: [a-z]+){0,2}$")


def _age_tag(match: re.Match[str], before: str) -> str | None:
    """The tag an age names: under 16 a child, from 60 an elderly person, else none.

    A bare "N tuổi" counts as a child only within three words after "con", "bé", "cháu"
    or "trẻ" ("con tôi 5 tuổi", "bé nhà em 3 tuổi"): in a legal text "từ đủ 14 tuổi" is a
    threshold, not a child.
    """
    qualifier, number = match.group(1), int(match.group(2))
    if qualifier in ("duoi", "chua du", "chua den"):
        return "tre_em" if number <= CHILD_UNDER else None
    if number >= ELDERLY_FROM:
        return "nguoi_cao_tuoi"
    if qualifier is None and number < CHILD_UNDER and _CHILD_CONTEXT.search(before):
        return "tre_em"
    return None


def _searchable(text: str) -> str:
    return re.sub(r"[^0-9a-z.,;]+", " ", fold(text))


def situations_in_text(text: str) -> list[str]:
    """Tags of the situations `text` names, in order of first mention, each once.

    `text` may be a legal provision or a citizen's message, with or without marks.
    """
    folded = _searchable(text)
    first: dict[str, int] = {}

    def seen(tag: str, at: int) -> None:
        if at < first.get(tag, len(folded) + 1):
            first[tag] = at

    for tag, patterns in _COMPILED.items():
        for pattern in patterns:
            found = pattern.search(folded)
            if found:
                seen(tag, found.start())
    for match in _AGE.finditer(folded):
        tag = _age_tag(match, folded[:match.start()].rstrip())
        if tag:
            seen(tag, match.start())
    return sorted(first, key=first.__getitem__)

