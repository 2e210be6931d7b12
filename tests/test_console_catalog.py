"""Catalog management in the console: aliases, fee override files, importing an export."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.catalog.revision import catalog_revision
from bot.catalog.seed import ensure_seeded
from bot.config import ROOT, Settings
from bot.console import accounts
from bot.console.models import AuditEntry
from bot.gateway.app import create_app
from tests.conftest import free_port
from tests.test_console_auth import PASSWORD, csrf_of, login


@pytest.fixture()
def settings(seeded_db: str, tmp_path: Path) -> Settings:
    with session_scope(seeded_db) as s:
        ensure_seeded(s)
        accounts.add_operator(s, "minh", PASSWORD, "trainer", "Anh Minh")
        accounts.add_operator(s, "lan", PASSWORD, "agent", "Cán bộ Lan")
    fees = tmp_path / "fees"
    shutil.copytree(ROOT / "data" / "fees", fees)
    return Settings.from_env({"DATABASE_URL": seeded_db, "FEE_OVERRIDES_DIR": str(fees),
                              "RASA_URL": f"http://127.0.0.1:{free_port()}",
                              "ACTIONS_URL": f"http://127.0.0.1:{free_port()}"})


@pytest.fixture()
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings))) as c:
        await login(c, "minh")
        yield c


async def test_search_and_edit_aliases_survive_the_seed_sync(
        client: TestClient, settings: Settings) -> None:
    html = await (await client.get("/console/catalog?q=khai sinh")).text()
    assert "1.001193" in html
    with session_scope(settings.database_url) as s:
        rev = catalog_revision(s)
    token = await csrf_of(client, "/console/catalog/procedures/1.001193")
    resp = await client.post("/console/catalog/procedures/1.001193", data={
        "csrf": token, "aliases": "làm giấy khai sinh\nkhai sinh cho con\n\ngiay khai sinh moi"})
    assert resp.status == 200 and "Đã lưu." in await resp.text()
    with session_scope(settings.database_url) as s:
        p = s.get(Procedure, "1.001193")
        assert sorted(a.alias for a in p.aliases) == [
            "giay khai sinh moi", "khai sinh cho con", "làm giấy khai sinh"]
        assert p.source == "console" and catalog_revision(s) == rev + 1
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "catalog.aliases"))\
            .scalar_one()
        assert entry.actor == "minh" and entry.target == "1.001193"
    with session_scope(settings.database_url) as s:  # a restart re-syncs the seed
        ensure_seeded(s)
    with session_scope(settings.database_url) as s:
        assert "khai sinh cho con" in {a.alias for a in s.get(Procedure, "1.001193").aliases}
    html = await (await client.get("/console/catalog?q=giay khai sinh moi")).text()
    assert "1.001193" in html


@pytest.mark.parametrize(("text", "message"), [
    ("ab\n", "quá ngắn"),
    ("làm khai sinh\nlam khai sinh\n", "trùng"),
    ("x" * 130, "dài quá"),
])
async def test_bad_aliases_are_refused_and_the_text_is_kept(
        client: TestClient, settings: Settings, text: str, message: str) -> None:
    token = await csrf_of(client, "/console/catalog/procedures/1.001193")
    resp = await client.post("/console/catalog/procedures/1.001193",
                             data={"csrf": token, "aliases": text})
    body = await resp.text()
    assert resp.status == 400 and message in body and text.splitlines()[0][:20] in body
    with session_scope(settings.database_url) as s:
        assert s.get(Procedure, "1.001193").source == "seed"


async def test_fee_override_edit_is_validated_before_it_is_written(
        client: TestClient, settings: Settings) -> None:
    path = settings.fee_overrides_dir / "01-ha-noi.yaml"
    original = path.read_text(encoding="utf-8")
    token = await csrf_of(client, "/console/catalog/fees/01-ha-noi.yaml")
    broken = original.replace("channel: online", "channel: web", 1)
    resp = await client.post("/console/catalog/fees/01-ha-noi.yaml",
                             data={"csrf": token, "text": broken})
    body = await resp.text()
    assert resp.status == 400 and "channel &#39;web&#39; không hợp lệ" in body
    assert "01-ha-noi.yaml" in body and ".tmp" not in body  # the temp file's name is not shown
    assert path.read_text(encoding="utf-8") == original  # nothing written
    assert not list(path.parent.glob(".*"))  # and no temp file left behind
    edited = original.replace("note:", "note: Sửa thử.", 1) if "note:" in original \
        else original + "\n# sửa thử\n"
    resp = await client.post("/console/catalog/fees/01-ha-noi.yaml",
                             data={"csrf": token, "text": edited})
    assert resp.status == 200 and "Đã lưu." in await resp.text()
    assert path.read_text(encoding="utf-8") == edited
    # A second file for the same province is refused.
    resp = await client.post("/console/catalog/fees/01-khac.yaml",
                             data={"csrf": token, "text": edited})
    assert resp.status == 400 and "mỗi tỉnh một tệp" in await resp.text()
    assert not (settings.fee_overrides_dir / "01-khac.yaml").exists()
    resp = await client.get("/console/catalog/fees/..%2Fsecret.yaml")
    assert resp.status in (404, 400)


async def test_import_an_export_through_the_console(client: TestClient,
                                                    settings: Settings) -> None:
    export = ROOT.parent / "shared" / "data" / "dvcqg" / "procedures_bqp_207.jsonl.gz"
    if not export.exists():
        pytest.skip("../shared is not beside the checkout")
    token = await csrf_of(client, "/console/catalog")
    data = FormData()
    data.add_field("file", export.read_bytes(), filename=export.name,
                   content_type="application/gzip")
    resp = await client.post(f"/console/catalog/import?csrf={token}", data=data)
    body = await resp.text()
    assert resp.status == 200, body
    assert re.search(r"Đã nhập procedures_bqp_207.jsonl.gz</strong> \(\w+\): \d+ mới", body)
    with session_scope(settings.database_url) as s:
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "catalog.import"))\
            .scalar_one()
        assert entry.actor == "minh" and '"new": ' in entry.detail
    # Without the token nothing is imported.
    data = FormData()
    data.add_field("file", b"{}", filename="x.jsonl", content_type="application/json")
    resp = await client.post("/console/catalog/import", data=data)
    assert resp.status == 403


async def test_an_unsupported_upload_is_refused(client: TestClient) -> None:
    token = await csrf_of(client, "/console/catalog")
    data = FormData()
    data.add_field("file", b"MZ\x90\x00", filename="virus.exe",
                   content_type="application/octet-stream")
    resp = await client.post(f"/console/catalog/import?csrf={token}", data=data)
    assert resp.status == 400 and "chỉ nhận tệp xuất của cổng" in await resp.text()


async def test_agents_cannot_edit_the_catalog(settings: Settings) -> None:
    async with TestClient(TestServer(create_app(settings))) as c:
        await login(c, "lan")
        assert (await c.get("/console/catalog")).status == 403
