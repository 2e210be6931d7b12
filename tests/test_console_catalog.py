"""Catalog management in the console: aliases, fee override files, importing an export."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.catalog.db import session_scope
from bot.catalog.models import Procedure
from bot.catalog.revision import catalog_revision
from bot.catalog.seed import ensure_seeded, upsert_records
from bot.cli import main as cli_main
from bot.config import ROOT, Settings
from bot.console import accounts
from bot.console.models import AuditEntry
from bot.console.web import FORM_BYTES, kilobytes
from bot.fees.service import LiveFeeBook
from bot.fees.stored import stored_texts
from bot.gateway.app import body_limit, create_app
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
        client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
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
    body = await resp.text()
    assert resp.status == 200 and "Đã lưu." in body and "Sửa thử." in body
    # Stored in the database (every replica reads it there), not in this container's files.
    assert path.read_text(encoding="utf-8") == original
    with session_scope(settings.database_url) as s:
        assert stored_texts(s) == {"01-ha-noi.yaml": edited}
        entry = s.execute(select(AuditEntry).where(AuditEntry.action == "fees.override"))\
            .scalar_one()
        assert entry.actor == "minh" and entry.target == "01-ha-noi.yaml"
    # A second file for the same province is refused.
    resp = await client.post("/console/catalog/fees/01-khac.yaml",
                             data={"csrf": token, "text": edited})
    assert resp.status == 400 and "mỗi tỉnh một tệp" in await resp.text()
    assert not (settings.fee_overrides_dir / "01-khac.yaml").exists()
    with session_scope(settings.database_url) as s:
        assert set(stored_texts(s)) == {"01-ha-noi.yaml"}
    # `bot fees export` writes the edit as the file reviewers commit.
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert cli_main(["fees", "export", str(path.parent)]) == 0
    assert path.read_text(encoding="utf-8") == edited
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


# --------------------------------------------------------------------------- long files


def padded_override(size: int) -> str:
    """Hà Nội's shipped override made `size` bytes of UTF-8 long by Vietnamese comment lines
    (each non-ASCII byte is three on the wire in a urlencoded form), ending with a marker."""
    text = (ROOT / "data" / "fees" / "01-ha-noi.yaml").read_text(encoding="utf-8")
    line = "# Ghi chú của cán bộ: mức thu phí, lệ phí đối với hồ sơ trực tuyến.\n"
    while len(text.encode()) < size:
        text += line
    return text + "# end-of-operator-edit\n"


async def test_a_20_kb_override_is_saved(client: TestClient, settings: Settings) -> None:
    """Fixed: console forms had the chat's body limit (~15 KB), so a file over ~8.5 KB of
    Vietnamese got a bare 413 and the operator's edit was gone."""
    text = padded_override(20 * 1024)
    assert len(text.encode()) >= 20 * 1024 and body_limit(settings) < len(text.encode()) * 2
    token = await csrf_of(client, "/console/catalog/fees/01-ha-noi.yaml")
    resp = await client.post("/console/catalog/fees/01-ha-noi.yaml",
                             data={"csrf": token, "text": text})
    body = await resp.text()
    assert resp.status == 200 and "Đã lưu." in body, body[:500]
    with session_scope(settings.database_url) as s:
        assert stored_texts(s)["01-ha-noi.yaml"] == text
    # the chat keeps its own limit
    resp = await client.post("/api/v1/chat", json={"sender": "a", "text": text})
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "too_large"


async def test_a_300_kb_override_comes_back_with_the_text_and_the_limit(
        client: TestClient, settings: Settings) -> None:
    text = padded_override(300 * 1024)
    token = await csrf_of(client, "/console/catalog/fees/01-ha-noi.yaml")
    resp = await client.post("/console/catalog/fees/01-ha-noi.yaml",
                             data={"csrf": token, "text": text})
    body = await resp.text()
    assert resp.status == 400 and resp.content_type == "text/html", body[:300]
    assert "Chưa lưu" in body and "quá giới hạn 256 KB" in body and "rút gọn" in body
    assert "end-of-operator-edit" in body  # the operator's text, back in the form
    with session_scope(settings.database_url) as s:
        assert stored_texts(s) == {}


async def test_a_form_over_the_console_limit_is_a_page_that_says_why(
        client: TestClient, settings: Settings) -> None:
    """Never a bare 413: the page says the limit and how to get the text back."""
    token = await csrf_of(client, "/console/catalog/fees/01-ha-noi.yaml")
    resp = await client.post("/console/catalog/fees/01-ha-noi.yaml",
                             data={"csrf": token, "text": "x" * (FORM_BYTES + 1)})
    body = await resp.text()
    assert resp.status == 413 and resp.content_type == "text/html"
    assert "Nội dung gửi lên quá lớn" in body and "chưa được lưu" in body
    assert "Quay lại" in body and f"tối đa {kilobytes(FORM_BYTES)} KB" in body
    with session_scope(settings.database_url) as s:
        assert stored_texts(s) == {}
    # the session is still good: the next form goes through
    resp = await client.get("/console/catalog/fees/01-ha-noi.yaml")
    assert resp.status == 200


# --------------------------------------------------------------------------- replicas

COUNCIL_TEXT = ("Mức lệ phí cụ thể do Hội đồng nhân dân tỉnh, thành phố trực thuộc Trung ương "
                "quyết định.")


async def test_an_override_saved_on_one_replica_is_used_by_every_other(
        settings: Settings, tmp_path: Path) -> None:
    """Fixed: the edit was a file in the saving gateway's container: the other gateways and
    the action servers (LiveFeeBook, their own filesystems) kept the old amounts."""
    with session_scope(settings.database_url) as s:
        upsert_records(s, [{"code": "9.100001", "name": "Thủ tục thử do HĐND quyết định",
                            "channels": [{"channel": "online", "fee": None,
                                          "fee_text": COUNCIL_TEXT}]}], source="test")
    other_files = tmp_path / "replica-b" / "fees"  # another container's copy of the image
    shutil.copytree(ROOT / "data" / "fees", other_files)
    common = {"DATABASE_URL": settings.database_url, "CATALOG_REFRESH_SECONDS": "0",
              "PROVINCE": "01", "FEE_DATE": "2026-11-27",
              "RASA_URL": f"http://127.0.0.1:{free_port()}",
              "ACTIONS_URL": f"http://127.0.0.1:{free_port()}"}
    a = Settings.from_env({**common, "FEE_OVERRIDES_DIR": str(settings.fee_overrides_dir)})
    b = Settings.from_env({**common, "FEE_OVERRIDES_DIR": str(other_files)})
    actions_book = LiveFeeBook(other_files, check_every=0, database_url=b.database_url)

    def online(book: LiveFeeBook) -> int | None:
        with session_scope(b.database_url) as s:
            p = s.get(Procedure, "9.100001")
            return book.get().decide(p, "online", date(2026, 11, 27), "01").amount

    async with TestClient(TestServer(create_app(a))) as ca, \
            TestClient(TestServer(create_app(b))) as cb:

        async def amount() -> int | None:
            resp = await cb.get("/api/v1/procedures/9.100001/fees", params={"channel": "online"})
            assert resp.status == 200, await resp.text()
            return (await resp.json())["fees"][0]["amount"]

        assert await amount() == 0 and online(actions_book) == 0
        await login(ca, "minh")
        token = await csrf_of(ca, "/console/catalog/fees/01-ha-noi.yaml")
        text = (ROOT / "data" / "fees" / "01-ha-noi.yaml").read_text(encoding="utf-8")
        resp = await ca.post("/console/catalog/fees/01-ha-noi.yaml", data={
            "csrf": token, "text": text.replace("amount: 0", "amount: 5000", 1)})
        assert resp.status == 200 and "Đã lưu." in await resp.text()
        assert await amount() == 5000
        assert online(actions_book) == 5000
        # a fresh replica (a redeploy) starts with it too
        assert online(LiveFeeBook(other_files, database_url=b.database_url)) == 5000
