"""Records of the Ministry of Defence export (`procedures_bqp_207.jsonl.gz`).

Unlike the crawl, this export kept the portal's tables as lists of dicts (`tables`), so
rows need no re-splitting; the cells still need the shared parsers (fee, time, channel)
and a few fixes: the document quantity sits in a "Bản chính: 1\\nBản sao: 0" note, and the
legal basis number column often holds only the first digits ("12") of a number that the
title spells in full ("Quyết định số 12/2021/QĐ-TTg …").
"""

from __future__ import annotations

import re
from typing import Any

from bot.catalog.importers.cells import (
    canonical,
    channel_kind,
    clean,
    code_and_name,
    conditions_text,
    find_number,
    parse_fee,
    parse_time,
)
from bot.catalog.importers.crawl import clean_document_name, parse_steps
from bot.catalog.seed import CatalogError

SOURCE = "dvcqg-bqp"
TABLES = ("hinh_thuc_nop", "thanh_phan_ho_so", "can_cu_phap_ly")


def looks_like(raw: Any) -> bool:
    """A decoded JSON object of this export: it has "metadata" and "tables" dicts."""
    return (isinstance(raw, dict) and isinstance(raw.get("metadata"), dict)
            and isinstance(raw.get("tables"), dict))


def parse_record(raw: Any) -> dict[str, Any]:
    """One export record → the canonical catalog record (see bot.catalog.seed)."""
    if not isinstance(raw, dict):
        raise CatalogError(f"bản ghi phải là một đối tượng JSON, nhận {type(raw).__name__}")
    meta = _dict(raw.get("metadata"))
    content = _dict(raw.get("content"))
    tables = _dict(raw.get("tables"))
    code, name = code_and_name(clean(meta.get("mã_thủ_tục")) or raw.get("thu_tuc_id"),
                               meta.get("tên_thủ_tục"), "thu_tuc_id / metadata.mã_thủ_tục",
                               "metadata.tên_thủ_tục")
    return canonical(
        code, name,
        url=None,
        field=clean(meta.get("lĩnh_vực")),
        level=clean(meta.get("cấp_thực_hiện")),
        agency=clean(content.get("cơ_quan_thực_hiện")),
        authority=clean(content.get("cơ_quan_có_thẩm_quyền")),
        result=clean(content.get("kết_quả_thực_hiện")),
        audience=clean(content.get("đối_tượng_thực_hiện")),
        conditions=conditions_text(content.get("yêu_cầu_điều_kiện_thực_hiện")),
        decision=_decision(meta.get("số_quyết_định")),
        channels=parse_channels(tables.get("hinh_thuc_nop")),
        documents=parse_documents(tables.get("thanh_phan_ho_so")),
        steps=parse_steps(content.get("trình_tự_thực_hiện")),
        legal_basis=parse_legal_basis(tables.get("can_cu_phap_ly")),
        raw=_raw(tables, content),
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _rows(value: Any) -> list[dict[str, Any]]:
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _decision(value: Any) -> str | None:
    """"Quyết định số 6225/QĐ-BQP" / "3980 /QĐ-BQP" → "6225/QĐ-BQP"; else the text."""
    text = clean(value)
    if text is None:
        return None
    return find_number(re.sub(r"\s*/\s*", "/", text)) or text


def parse_channels(rows: Any) -> list[dict[str, Any]]:
    """Rows of `hinh_thuc_nop`, in order; rows with an unknown channel label are skipped."""
    channels = []
    for row in _rows(rows):
        kind = channel_kind(row.get("hinh_thuc"))
        if kind is None:
            continue
        time_text = clean(row.get("thoi_han_giai_quyet"))
        value, unit = parse_time(time_text)
        fee_text = clean(row.get("phi_le_phi"))
        channels.append({
            "channel": kind, "time_value": value, "time_unit": unit, "time_text": time_text,
            "fee": parse_fee(fee_text), "fee_text": fee_text, "note": clean(row.get("mo_ta")),
        })
    return channels


_COUNT = re.compile(r"Bản\s*(chính|sao)\s*:\s*(\d+)", re.IGNORECASE)


def copies_from_note(note: Any) -> str | None:
    """"Bản chính: 1\\nBản sao: 0" → "1 bản chính"; both zero or absent → None."""
    counts = {kind.lower(): int(n) for kind, n in _COUNT.findall(clean(note) or "")}
    parts = [f"{counts[k]} bản {k}" for k in ("chính", "sao") if counts.get(k)]
    return ", ".join(parts) or None


def parse_documents(rows: Any) -> list[dict[str, str | None]]:
    """`thanh_phan_ho_so` rows: name from ten_giay_to (bullets dropped, as in the crawl),
    copies from the ghi_chu note; so_luong holds the form's file name and is not used."""
    docs: list[dict[str, str | None]] = []
    for row in _rows(rows):
        name = clean_document_name(clean(row.get("ten_giay_to")) or "")
        if name:
            docs.append({"name": name,
                         "copies": copies_from_note(row.get("ghi_chu")), "case": None})
    return docs


def parse_legal_basis(rows: Any) -> list[dict[str, str | None]]:
    """`can_cu_phap_ly` rows: title = trich_yeu, number = the fullest number available.

    so_ky_hieu when it is a full number; else the first full number in trich_yeu ("12" +
    "Quyết định số 12/2021/QĐ-TTg…" → "12/2021/QĐ-TTg"); else so_ky_hieu if it has digits
    (a partial number is still what the source says); a title in the number column
    ("BỘ LUẬT HÀNG HẢI VIỆT NAM") gives no number.
    """
    basis: list[dict[str, str | None]] = []
    for row in _rows(rows):
        symbol = clean(row.get("so_ky_hieu"))
        title = clean(row.get("trich_yeu"))
        number = find_number(symbol) or find_number(title)
        if number is None and symbol and re.search(r"\d", symbol):
            number = symbol
        if title is None and symbol and number is None:
            title = symbol
        if number or title:
            basis.append({"number": number,
                          "title": re.sub(r"\s+", " ", title) if title else None})
    return basis


def _raw(tables: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """The source tables and steps text, strings only, empty parts left out."""
    raw: dict[str, Any] = {}
    for key in TABLES:
        rows = [{k: v for k, v in r.items() if isinstance(k, str) and isinstance(v, str)}
                for r in _rows(tables.get(key))]
        if rows:
            raw[key] = rows
    steps = clean(content.get("trình_tự_thực_hiện"))
    if steps:
        raw["trinh_tu_thuc_hien"] = steps
    return raw
