"""A province's own fee rules, from YAML files in `data/fees/` (one file per jurisdiction).

A People's Council sets the fees within its competence (Hà Nội: 0 đồng for online public
services, July 2023). Those rules are local data an operator edits, so they live in
reviewable files rather than in the imported catalog, and every file is validated as a
whole on load: all problems are reported at once, by file, rule and field, in Vietnamese,
and nothing of a malformed file is used. The checks are written out here rather than
delegated to a schema library because the messages are the product (an operator must
see "quy định #2 (id …): channel 'web' không hợp lệ"), and the rules are few.

File format (see README, "Phí, lệ phí"):

    jurisdiction: "01"            # province code or name
    authority: Hội đồng nhân dân thành phố Hà Nội
    fees:
      - id: dvc-truc-tuyen-0-dong
        applies_to: council_set    # or  procedures: ["1.001612", …]
        channel: online            # online | in_person | post | any
        amount: 0                  # đồng; or  percent: 50  (share of the national amount)
        valid_from:                # YYYY-MM-DD; blank = not stated by the source
        valid_to:
        legal_basis: {number:, article:, title: "…"}
        note: "…"
      - id: …
        kind: exemption            # default: local
        exempt: {tags: [ho_ngheo], text: "…"}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from bot.fees.provinces import find_province
from bot.fees.rules import RULE_CHANNELS, Rule
from bot.fees.situations import SITUATIONS
from bot.yamlfile import iso_day, parse_yaml, read_yaml

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES_DIR = ROOT / "data" / "fees"
RULE_KEYS = {"id", "kind", "applies_to", "procedures", "channel", "amount", "percent",
             "valid_from", "valid_to", "legal_basis", "exempt", "note"}
# Not "rules": Rasa reads every YAML file under data/ and takes a top-level "rules" for its own.
FILE_KEYS = {"jurisdiction", "authority", "fees"}
BASIS_KEYS = {"number", "article", "title"}
CODE = re.compile(r"^\d+\.\d{6}$")


class OverrideError(ValueError):
    """One or more override files cannot be used; the message lists every problem."""


def _date(value: Any, where: str, problems: list[str]) -> date | None:
    try:
        return iso_day(value)
    except ValueError:
        problems.append(f"{where}: ngày {value!r} không hợp lệ (dạng YYYY-MM-DD, ví dụ 2026-01-01)")
        return None


def _text(value: Any, where: str, problems: list[str]) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value).strip() or None
    problems.append(f"{where}: cần một chuỗi, không phải {type(value).__name__}")
    return None


def _rules(raw: Any, n: int, jurisdiction: str, source: str, problems: list[str],
           seen_ids: set[str]) -> list[Rule]:
    """One rule entry as Rules (one per listed procedure), or [] after recording problems."""
    if not isinstance(raw, dict):
        problems.append(f"quy định #{n}: cần một mục có các khóa id, channel, amount…")
        return []
    rid = raw.get("id")
    where = f"quy định #{n}" + (f" ({rid})" if rid else "")
    before = len(problems)
    unknown = sorted(set(map(str, raw)) - RULE_KEYS)
    if unknown:
        problems.append(f"{where}: khóa không dùng được: {', '.join(unknown)} "
                        f"(chỉ dùng: {', '.join(sorted(RULE_KEYS))})")
    if not isinstance(rid, str) or not rid.strip():
        problems.append(f"{where}: thiếu id (một tên ngắn, duy nhất trong tệp)")
    elif rid in seen_ids:
        problems.append(f"{where}: id {rid!r} bị trùng")
    else:
        seen_ids.add(rid)
    kind = raw.get("kind", "local")
    if kind not in ("local", "exemption"):
        problems.append(f"{where}: kind {kind!r} không hợp lệ (local hoặc exemption)")
    channel = raw.get("channel")
    if channel not in RULE_CHANNELS:
        problems.append(f"{where}: channel {channel!r} không hợp lệ — chọn một trong "
                        f"{', '.join(RULE_CHANNELS)}")
    applies, codes = raw.get("applies_to"), raw.get("procedures")
    if (applies is None) == (codes is None):
        problems.append(f"{where}: cần đúng một trong applies_to: council_set hoặc "
                        "procedures: [mã thủ tục, …]")
    elif applies is not None and applies != "council_set":
        problems.append(f"{where}: applies_to {applies!r} không hợp lệ (chỉ có council_set)")
    elif codes is not None and (not isinstance(codes, list) or not codes or not all(
            isinstance(c, str) and CODE.match(c) for c in codes)):
        problems.append(f"{where}: procedures cần là danh sách mã thủ tục dạng chuỗi, "
                        "ví dụ [\"1.001612\"]")
    amount, percent = raw.get("amount"), raw.get("percent")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int)
                               or amount < 0):
        problems.append(f"{where}: amount {amount!r} phải là số nguyên đồng ≥ 0")
    if percent is not None and (isinstance(percent, bool) or not isinstance(percent, (int, float))
                                or not 0 <= percent <= 100):
        problems.append(f"{where}: percent {percent!r} phải là số từ 0 đến 100")
    if amount is not None and percent is not None:
        problems.append(f"{where}: chỉ ghi một trong amount và percent")
    if kind == "local" and amount is None and percent is None:
        problems.append(f"{where}: quy định địa phương cần amount (đồng) hoặc percent")
    tags: tuple[str, ...] = ()
    exempt_text = None
    exempt = raw.get("exempt")
    if kind == "exemption":
        if not isinstance(exempt, dict) or not exempt.get("tags"):
            problems.append(f"{where}: quy định miễn giảm cần exempt: {{tags: [...], text: ...}}")
        else:
            raw_tags = exempt.get("tags")
            bad = [t for t in raw_tags if t not in SITUATIONS] if isinstance(raw_tags, list) \
                else [raw_tags]
            if bad:
                problems.append(f"{where}: nhóm miễn giảm không biết: {bad} (dùng: "
                                f"{', '.join(SITUATIONS)})")
            else:
                tags = tuple(raw_tags)
            exempt_text = _text(exempt.get("text"), f"{where}: exempt.text", problems)
    elif exempt is not None:
        problems.append(f"{where}: exempt chỉ dùng với kind: exemption")
    valid_from = _date(raw.get("valid_from"), f"{where}: valid_from", problems)
    valid_to = _date(raw.get("valid_to"), f"{where}: valid_to", problems)
    if valid_from and valid_to and valid_from > valid_to:
        problems.append(f"{where}: valid_from {valid_from} sau valid_to {valid_to}")
    basis = raw.get("legal_basis") or {}
    number = article = title = None
    if not isinstance(basis, dict):
        problems.append(f"{where}: legal_basis cần các khóa number, article, title")
    else:
        extra = sorted(set(map(str, basis)) - BASIS_KEYS)
        if extra:
            problems.append(f"{where}: legal_basis có khóa không dùng được: {', '.join(extra)}")
        number = _text(basis.get("number"), f"{where}: legal_basis.number", problems)
        article = _text(basis.get("article"), f"{where}: legal_basis.article", problems)
        title = _text(basis.get("title"), f"{where}: legal_basis.title", problems)
    note = _text(raw.get("note"), f"{where}: note", problems)
    if len(problems) > before:
        return []
    common = dict(kind=kind, channel=channel, amount=amount, percent=percent,
                  jurisdiction=jurisdiction, valid_from=valid_from, valid_to=valid_to,
                  exempt_tags=tags, exempt_text=exempt_text, legal_basis=number,
                  article=article, title=title, source=source, note=note, rule_id=rid)
    # One rule per listed code keeps the resolver's filter simple; they share the id.
    return [Rule(procedure_code=c, **common) for c in (codes or [None])]


def load_file(path: Path) -> tuple[str, list[Rule]]:
    """(province code, rules) of one override file, or OverrideError listing its problems."""
    return _validated(path.name, read_yaml(path, OverrideError, path.name))


def load_text(name: str, text: str) -> tuple[str, list[Rule]]:
    """`load_file` for an override kept in the database (edited in the console) under `name`."""
    return _validated(name, parse_yaml(text, OverrideError, name))


def _validated(name: str, data: Any) -> tuple[str, list[Rule]]:
    """(province code, rules) of one parsed override document, or OverrideError."""
    if not isinstance(data, dict):
        raise OverrideError(f"{name}: cần các khóa jurisdiction, authority, fees")
    problems: list[str] = []
    unknown = sorted(set(map(str, data)) - FILE_KEYS)
    if unknown:
        problems.append(f"khóa không dùng được: {', '.join(unknown)}")
    jur = data.get("jurisdiction")
    province = find_province(str(jur)) if isinstance(jur, (str, int)) else None
    if province is None:
        problems.append(f"jurisdiction {jur!r}: không phải mã hay tên tỉnh, thành phố "
                        "(ví dụ \"01\" hoặc \"Hà Nội\")")
    rules_raw = data.get("fees")
    if not isinstance(rules_raw, list) or not rules_raw:
        problems.append("fees: cần một danh sách quy định (ít nhất một)")
        rules_raw = []
    code = province.code if province else "?"
    rules: list[Rule] = []
    seen: set[str] = set()
    for n, raw in enumerate(rules_raw, 1):
        rules.extend(_rules(raw, n, code, f"override:{name}", problems, seen))
    if problems:
        raise OverrideError(f"{name}: " + "; ".join(problems) if len(problems) == 1 else
                            f"{name}:\n" + "\n".join(f"  - {p}" for p in problems))
    return code, rules


def override_files(folder: Path) -> list[Path]:
    """The override files shipped in `folder` (`*.yaml`, hidden files excepted)."""
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob("*.yaml")) if not p.name.startswith(".")]


Source = Path | str  # a shipped file, or the text of an edit stored in the database


def override_sources(folder: Path, stored: Mapping[str, str] | None = None) -> dict[str, Source]:
    """Every override by file name, in name order: the shipped files of `folder`, where
    `stored` (name → text) replaces a file of the same name or adds one."""
    sources: dict[str, Source] = {p.name: p for p in override_files(folder)}
    sources.update(stored or {})
    return dict(sorted(sources.items()))


def load_source(name: str, source: Source) -> tuple[str, list[Rule]]:
    """`load_file` or `load_text`, whichever `source` is."""
    return load_file(source) if isinstance(source, Path) else load_text(name, source)


def load_overrides(folder: Path = OVERRIDES_DIR,
                   stored: Mapping[str, str] | None = None) -> dict[str, list[Rule]]:
    """Every override by province code: the `*.yaml` files of `folder`, where `stored`
    (name → text: the console's edits, kept in the database) replaces a file of the same
    name or adds one. OverrideError lists all problems.

    A missing folder means no shipped files. Two files for the same province are refused:
    which one wins would depend on file names.
    """
    out: dict[str, list[Rule]] = {}
    owner: dict[str, str] = {}
    errors: list[str] = []
    for name, source in override_sources(folder, stored).items():
        try:
            code, rules = load_source(name, source)
        except OverrideError as exc:
            errors.append(str(exc))
            continue
        if code in owner:
            errors.append(f"{name}: tỉnh {code} đã có tệp {owner[code]} (mỗi tỉnh một tệp)")
            continue
        owner[code] = name
        out[code] = rules
    if errors:
        raise OverrideError("\n".join(errors))
    return out
