"""GET /api/v1/procedures/{code}/fees on the real gateway app, with our own test records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.catalog.db import session_scope
from bot.catalog.seed import upsert_records
from bot.config import Settings
from bot.gateway.app import create_app
from tests.test_gateway_input import error_code, free_port, make_settings

COUNCIL_TEXT = ("Miễn phí(Mức lệ phí cụ thể do Hội đồng nhân dân tỉnh, thành phố trực thuộc "
                "Trung ương quyết định. Miễn lệ phí cho người thuộc hộ nghèo.)")
RECORDS = [
    {"code": "9.100001", "name": "Thủ tục thử có phí do HĐND tỉnh quyết định",
     "channels": [{"channel": "online", "fee": None, "fee_text": COUNCIL_TEXT},
                  {"channel": "in_person", "fee": 30000,
                   "fee_text": "30,000 Việt Nam Đồng(" + COUNCIL_TEXT + ")"}]},
    {"code": "9.100002", "name": "Thủ tục thử có phí do bộ quy định",
     "channels": [{"channel": "online", "fee": 100000, "fee_text": "100,000 Việt Nam Đồng"}]},
]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    with session_scope(url) as s:
        report = upsert_records(s, RECORDS, source="test")
    assert report.new == 2, report.errors
    settings: Settings = make_settings(url, f"http://127.0.0.1:{free_port()}",
                                       province="01", fee_date="2026-11-27")
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


async def fees(client: TestClient, code: str, **params: str) -> dict:
    resp = await client.get(f"/api/v1/procedures/{code}/fees", params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_council_fee_in_hanoi_online_and_in_person(client: TestClient) -> None:
    body = await fees(client, "9.100001")
    assert body["council_set"] is True and body["province"] == "01"
    by_channel = {f["channel"]: f for f in body["fees"]}
    assert by_channel["online"]["amount"] == 0
    assert "kỳ họp thứ 12" in by_channel["online"]["legal_basis"]
    assert by_channel["direct"]["amount"] == 30000
    assert set(by_channel["direct"]) >= {"code", "channel", "amount", "rule", "legal_basis",
                                         "valid_to"}


async def test_other_province_and_ministry_fee_and_exemption(client: TestClient) -> None:
    body = await fees(client, "9.100001", province="da nang", channel="online")
    assert [f["amount"] for f in body["fees"]] == [None]  # unknown stays unknown
    body = await fees(client, "9.100002", channel="online")
    assert [f["amount"] for f in body["fees"]] == [100000]  # Hà Nội's rule cannot apply
    body = await fees(client, "9.100001", channel="direct", situation="ho_ngheo")
    assert [f["amount"] for f in body["fees"]] == [0]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("9.999999", {}, 404, "not_found"),
        ("9.100001", {"channel": "fax"}, 422, "invalid_field"),
        ("9.100001", {"date": "27/11/2026"}, 422, "invalid_field"),
        ("9.100001", {"province": "Atlantis"}, 422, "invalid_field"),
        ("9.100001", {"situation": "giau_co"}, 422, "invalid_field"),
    ],
)
async def test_bad_requests(client: TestClient, path: str, params: dict[str, str],
                            status: int, code: str) -> None:
    resp = await client.get(f"/api/v1/procedures/{path}/fees", params=params)
    assert await error_code(resp, status) == code


async def test_broken_override_files_disable_only_the_fee_endpoint(tmp_path: Path) -> None:
    folder = tmp_path / "fees"
    folder.mkdir()
    (folder / "bad.yaml").write_text("jurisdiction: '01'\nfees: nope\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    settings = make_settings(url, f"http://127.0.0.1:{free_port()}", fee_overrides_dir=folder)
    async with TestClient(TestServer(create_app(settings))) as c:
        resp = await c.get("/api/v1/procedures/9.100001/fees")
        assert await error_code(resp, 503) == "fees_unavailable"
        resp = await c.get("/api/v1/procedures/search", params={"q": "khai sinh"})
        assert resp.status == 200
