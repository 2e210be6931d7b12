"""How much of an import the parsers understood, measured on canonical records.

A share over all records mixes two things: the source saying nothing (many procedures have
no fee table) and the parser failing. So each headline measure is also given over the
records whose source text (kept in `raw`) does contain that information; those "where the
source has it" shares are the ones that reveal a parsing regression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

# A crawl channel row: the label glued to its time cell (see crawl._ROW).
_CRAWL_ROW = re.compile(r"(?:Trực tuyến|Trực tiếp|Dịch vụ bưu chính|Qua bưu chính)[^\s:;,.)\-]")
_CRAWL_TIME = re.compile(r"(?:Trực tuyến|Trực tiếp|Dịch vụ bưu chính|Qua bưu chính)0*[1-9]")
_CRAWL_FEE = re.compile(r"Miễn phí|\d\s*(?:Việt Nam Đồng|VNĐ|USD|Đồng)")
_CRAWL_DOC_ROW = re.compile(r"Tên giấy tờ.*\d+ bản (?:chính|sao)", re.DOTALL)

Record = dict[str, Any]

# (key, label, record → has the parsed value)
MEASURES: list[tuple[str, str, Callable[[Record], bool]]] = [
    ("channel", "có ≥1 cách thức nộp", lambda r: bool(r.get("channels"))),
    ("time", "có thời hạn đã đọc được",
     lambda r: any(c.get("time_value") is not None for c in r.get("channels") or [])),
    ("fee", "có phí đã xác định (số tiền hoặc miễn phí)",
     lambda r: any(c.get("fee") is not None for c in r.get("channels") or [])),
    ("document", "có ≥1 giấy tờ", lambda r: bool(r.get("documents"))),
    ("step", "có ≥1 bước", lambda r: bool(r.get("steps"))),
    ("legal_basis", "có ≥1 căn cứ pháp lý", lambda r: bool(r.get("legal_basis"))),
]


def _raw(record: Record) -> dict[str, Any]:
    raw = record.get("raw")
    return raw if isinstance(raw, dict) else {}


def _has_rows(record: Record, crawl_key: str, crawl_row: re.Pattern[str], table: str,
              column: str) -> bool:
    """The source has a table with a row: a flattened crawl string or a defence table."""
    raw = _raw(record)
    crawl = raw.get(crawl_key)
    if isinstance(crawl, str) and crawl_row.search(crawl):
        return True
    return any(row.get(column) for row in _rows(raw, table))


def source_has_channel(record: Record) -> bool:
    """The source has a channel table with at least one row."""
    return _has_rows(record, "cach_thuc_thuc_hien", _CRAWL_ROW, "hinh_thuc_nop", "hinh_thuc")


def source_has_time(record: Record) -> bool:
    """Some channel row's time cell starts with a positive number ("5 Ngày", "1", "0.5 Giờ");
    "0 Giờ" is a placeholder (see cells.parse_time)."""
    raw = _raw(record)
    crawl = raw.get("cach_thuc_thuc_hien")
    if isinstance(crawl, str) and _CRAWL_TIME.search(crawl):
        return True
    return any(re.match(r"\s*(?:0*[1-9]|0+[.,]\d*[1-9])", str(row.get("thoi_han_giai_quyet") or ""))
               for row in _rows(raw, "hinh_thuc_nop"))


def source_has_fee(record: Record) -> bool:
    """Some channel row's fee cell states a fee: "Miễn phí", an amount, "Phí : 0 Đồng"."""
    raw = _raw(record)
    crawl = raw.get("cach_thuc_thuc_hien")
    if isinstance(crawl, str) and _CRAWL_FEE.search(crawl):
        return True
    return any(re.search(r"\d|miễn|không", str(row.get("phi_le_phi") or ""), re.IGNORECASE)
               for row in _rows(raw, "hinh_thuc_nop"))


def _rows(raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
    rows = raw.get(key)
    return [x for x in rows if isinstance(x, dict)] if isinstance(rows, list) else []


def source_has_document(record: Record) -> bool:
    """The source has a document table with at least one row."""
    return _has_rows(record, "thanh_phan_ho_so", _CRAWL_DOC_ROW, "thanh_phan_ho_so",
                     "ten_giay_to")


SOURCE_HAS: dict[str, Callable[[Record], bool]] = {
    "channel": source_has_channel, "time": source_has_time,
    "fee": source_has_fee, "document": source_has_document,
}


def coverage(records: Iterable[Record]) -> dict[str, Any]:
    """Counts and shares of parsed information, overall and where the source has it.

    Returns {"total": n, "<measure>": {"count", "share"}, ...,
    "where_source_has": {"<measure>": {"count", "of", "share"}}} for the measures in
    MEASURES (channel, time, fee, document, step, legal_basis); the restricted part
    covers channel, time, fee and document. Shares are 0.0 when the denominator is 0.
    """
    recs = list(records)
    total = len(recs)
    result: dict[str, Any] = {"total": total}
    for key, _, has in MEASURES:
        n = sum(1 for r in recs if has(r))
        result[key] = {"count": n, "share": _share(n, total)}
    restricted: dict[str, Any] = {}
    parsed = {key: has for key, _, has in MEASURES}
    for key, source_has in SOURCE_HAS.items():
        base = [r for r in recs if source_has(r)]
        n = sum(1 for r in base if parsed[key](r))
        restricted[key] = {"count": n, "of": len(base), "share": _share(n, len(base))}
    result["where_source_has"] = restricted
    return result


def _share(n: int, of: int) -> float:
    return round(n / of, 4) if of else 0.0


def format_coverage(cov: dict[str, Any]) -> str:
    """A readable multi-line table of `coverage()` output."""
    lines = [f"Tổng số thủ tục: {cov['total']}", "", f"{'Chỉ số':<45}{'Số':>7}{'Tỉ lệ':>9}"]
    for key, label, _ in MEASURES:
        m = cov[key]
        lines.append(f"{label:<45}{m['count']:>7}{m['share']:>9.1%}")
    lines += ["", "Trên các thủ tục mà nguồn có thông tin đó:"]
    labels = {key: label for key, label, _ in MEASURES}
    for key, m in cov["where_source_has"].items():
        lines.append(f"{labels[key]:<45}{m['count']:>7}/{m['of']:<6}{m['share']:>7.1%}")
    return "\n".join(lines)
