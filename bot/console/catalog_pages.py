"""Console pages for the catalog: search, aliases, fee override files, importing an export."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from aiohttp import web
from sqlalchemy.orm import Session

from bot.catalog.db import session_factory
from bot.catalog.importers.load import import_file
from bot.catalog.seed import CatalogError, ensure_seeded
from bot.console import catalog_admin as ca
from bot.console.accounts import audit
from bot.console.web import (
    PREFIX,
    SETTINGS_KEY,
    USER_KEY,
    NavItem,
    add_nav,
    address,
    db,
    form,
    guarded,
    redirect,
    render,
)

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
UPLOAD_SUFFIXES = (".jsonl.gz", ".jsonl", ".xlsx", ".yaml", ".yml", ".gz")


@guarded("catalog.edit")
async def catalog_page(request: web.Request) -> web.StreamResponse:
    query = request.query.get("q", "").strip()[:200]
    found = await db(request, lambda s: ca.find_procedures(s, query)) if query else []
    folder = request.app[SETTINGS_KEY].fee_overrides_dir
    files = await db(request, lambda s: ca.override_names(s, folder))
    return render(request, "catalog.html", query=query, found=found, files=files,
                  report=None, error=None)


@guarded("catalog.edit")
async def procedure_page(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    row = await db(request, lambda s: ca.get_procedure(s, code))
    if row is None:
        return render(request, "error.html", status=404, message=f"Không có thủ tục mã {code}.")
    return render(request, "procedure.html", proc=row, text="\n".join(row.aliases), error=None)


@guarded("catalog.edit")
async def procedure_save(request: web.Request) -> web.StreamResponse:
    code = request.match_info["code"]
    data = await form(request)
    user = request[USER_KEY]
    try:
        await db(request, lambda s: ca.set_aliases(s, code, data.get("aliases", ""),
                                                   user.username, address(request)))
    except ca.CatalogEditError as exc:
        row = await db(request, lambda s: ca.get_procedure(s, code))
        if row is None:
            return render(request, "error.html", status=404, message=str(exc))
        return render(request, "procedure.html", status=400, proc=row,
                      text=data.get("aliases", ""), error=str(exc))
    raise redirect(f"{PREFIX}/catalog/procedures/{code}", ok="saved")


@guarded("catalog.edit")
async def fees_page(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    folder = request.app[SETTINGS_KEY].fee_overrides_dir
    try:
        text = await db(request, lambda s: ca.override_text(s, folder, name))
    except ca.CatalogEditError as exc:
        return render(request, "error.html", status=404, message=str(exc))
    return render(request, "fees_edit.html", name=name, text=text, error=None, exists=bool(text))


@guarded("catalog.edit")
async def fees_save(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    data = await form(request)
    folder = request.app[SETTINGS_KEY].fee_overrides_dir
    user = request[USER_KEY]
    try:
        await db(request, lambda s: ca.save_override(s, folder, name, data.get("text", ""),
                                                     user.username, address(request)))
    except ca.CatalogEditError as exc:
        return render(request, "fees_edit.html", status=400, name=name,
                      text=data.get("text", ""), error=str(exc), exists=True)
    raise redirect(f"{PREFIX}/catalog/fees/{name}", ok="saved")


async def _receive_upload(request: web.Request) -> tuple[Path, str]:
    """Stream the uploaded file to a temporary file (the app's body limit does not apply to a
    streamed multipart body, so the cap is enforced here)."""
    reader = await request.multipart()
    path, original = None, ""
    async for part in reader:
        if part.name == "file" and part.filename:
            original = Path(part.filename).name
            if not original.lower().endswith(UPLOAD_SUFFIXES):
                raise ca.CatalogEditError(
                    "chỉ nhận tệp xuất của cổng: .jsonl.gz, .jsonl, .xlsx hoặc .yaml")
            fd, tmp = tempfile.mkstemp(prefix="dvc-import-", suffix="-" + original)
            size = 0
            with os.fdopen(fd, "wb") as fh:
                while chunk := await part.read_chunk(1 << 16):
                    size += len(chunk)
                    if size > MAX_UPLOAD_BYTES:
                        fh.close()
                        os.unlink(tmp)
                        raise ca.CatalogEditError("tệp quá lớn (tối đa 200 MB)")
                    fh.write(chunk)
            path = Path(tmp)
    if path is None:
        raise ca.CatalogEditError("chưa chọn tệp")
    return path, original


@guarded("catalog.edit")
async def import_upload(request: web.Request) -> web.StreamResponse:
    user = request[USER_KEY]
    settings = request.app[SETTINGS_KEY]
    folder = settings.fee_overrides_dir
    files = await db(request, lambda s: ca.override_names(s, folder))
    try:
        path, original = await _receive_upload(request)
    except ca.CatalogEditError as exc:
        return render(request, "catalog.html", status=400, query="", found=[], files=files,
                      report=None, error=str(exc))

    def work() -> tuple[str, str, list[str]]:
        session: Session = session_factory(settings.database_url)()
        try:
            ensure_seeded(session)
            session.commit()
            shape, report = import_file(session, path, keep_curated=True, progress=False)
            audit(session, user.username, "catalog.import", original,
                  {"shape": shape.kind, "new": report.new, "updated": report.updated,
                   "unchanged": report.unchanged, "rejected": report.rejected})
            session.commit()
            return shape.kind, report.summary(), report.errors[:20]
        finally:
            session.close()
            os.unlink(path)

    try:
        kind, summary, errors = await asyncio.to_thread(work)
    except CatalogError as exc:
        return render(request, "catalog.html", status=400, query="", found=[], files=files,
                      report=None, error=str(exc))
    return render(request, "catalog.html", query="", found=[], files=files, error=None,
                  report={"name": original, "kind": kind, "summary": summary,
                          "errors": errors})


@guarded("catalog.edit")
async def fees_new(request: web.Request) -> web.StreamResponse:
    name = (await form(request)).get("name", "").strip()
    raise redirect(f"{PREFIX}/catalog/fees/{name or 'moi.yaml'}")


def add_catalog_pages(app: web.Application) -> None:
    r = app.router
    r.add_get(f"{PREFIX}/catalog", catalog_page)
    r.add_get(f"{PREFIX}/catalog/procedures/{{code}}", procedure_page)
    r.add_post(f"{PREFIX}/catalog/procedures/{{code}}", procedure_save)
    r.add_get(f"{PREFIX}/catalog/fees/{{name}}", fees_page)
    r.add_post(f"{PREFIX}/catalog/fees/{{name}}", fees_save)
    r.add_post(f"{PREFIX}/catalog/fees", fees_new)
    r.add_post(f"{PREFIX}/catalog/import", import_upload)
    add_nav(NavItem("catalog.edit", f"{PREFIX}/catalog", "Danh mục thủ tục",
                    "Tìm thủ tục, sửa tên gọi thường dùng, sửa quy định phí của tỉnh, nhập "
                    "tệp xuất từ cổng dịch vụ công."))
