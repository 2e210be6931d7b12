"""The portal's exported procedure lists (`danh-sach-tthc-*.xlsx`).

Each workbook has a title block, then a header row ("Mã số", "Tên", "Cơ quan ban hành",
"Cơ quan thực hiện", "Lĩnh vực") and one procedure per row. The lists know only names,
fields and agencies, so their records are partial: they add procedures the catalog lacks
and fill empty fields, and never blank out documents or fees another source provided.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.catalog.seed import CatalogError
from bot.text import fold, nfc

SOURCE = "dvcqg-list"
CODE = re.compile(r"^\d+\.\d{3,}$")
# folded header text → canonical record key
HEADERS = {
    "ma so": "code", "ma thu tuc": "code", "ten": "name", "ten thu tuc": "name",
    "co quan thuc hien": "agency", "linh vuc": "field", "cap thuc hien": "level",
}


def looks_like(path: Path) -> bool:
    """An Excel workbook (a zip with an OOXML workbook part)."""
    if path.suffix.lower() not in {".xlsx", ".xlsm"}:
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return "xl/workbook.xml" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _cell(value: Any) -> str | None:
    """A cell as clean text: NFC, non-breaking spaces and line breaks folded."""
    if value is None:
        return None
    text = nfc(str(value)).replace("\xa0", " ")
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    return "; ".join(parts) or None


def _header(row: tuple[Any, ...]) -> dict[int, str] | None:
    """Column index → record key, when this row is the table header."""
    cols = {i: HEADERS[fold(str(v)).strip()] for i, v in enumerate(row)
            if v is not None and fold(str(v)).strip() in HEADERS}
    return cols if {"code", "name"} <= set(cols.values()) else None


def read_rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | CatalogError]]:
    """(label, partial record or the reason the row was rejected) for every procedure row."""
    from openpyxl import load_workbook  # imported late: only operators importing need it

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise CatalogError(f"{path.name}: không đọc được tệp Excel ({exc})") from exc
    try:
        found = False
        for ws in wb.worksheets:
            cols: dict[int, str] | None = None
            for n, row in enumerate(ws.iter_rows(values_only=True), start=1):
                if cols is None:
                    cols = _header(row)
                    continue
                found = True
                if all(v is None or not str(v).strip() for v in row):
                    continue
                label = f"{ws.title}!dòng {n}"
                code_col = next(i for i, key in cols.items() if key == "code")
                if code_col < len(row) and isinstance(row[code_col], (int, float)):
                    # 1.000370 stored as a number reads back as "1.00037": refuse to guess.
                    yield label, CatalogError(
                        f"mã thủ tục {row[code_col]!r} là ô kiểu số; cần định dạng văn bản")
                    continue
                rec = {key: _cell(row[i]) if i < len(row) else None for i, key in cols.items()}
                code = (rec.get("code") or "").replace(" ", "")
                if not CODE.match(code):
                    yield label, CatalogError(f"mã thủ tục không hợp lệ: {rec.get('code')!r}")
                    continue
                rec["code"] = code
                yield label, {k: v for k, v in rec.items() if v is not None}
        if not found:
            raise CatalogError(
                f"{path.name}: không thấy bảng danh sách thủ tục (cần cột \"Mã số\" và \"Tên\")")
    finally:
        wb.close()
