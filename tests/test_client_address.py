"""TRUSTED_PROXIES: X-Forwarded-For names the client only when a trusted proxy sent it
(issue 18, item 4), through the gateway's real middleware and access logger."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.client_address import client_address, parse_networks
from bot.config import Settings
from bot.gateway.app import MaskingAccessLogger, client_middleware

PROXY = parse_networks("10.0.0.0/8, 127.0.0.1")


@pytest.mark.parametrize(("peer", "header", "expected"), [
    ("203.0.113.9", None, "203.0.113.9"),  # no proxy, no header
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # an untrusted peer cannot choose its address
    ("10.0.0.2", "198.51.100.7", "198.51.100.7"),  # behind our proxy
    ("10.0.0.2", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the client's own claim ignored
    ("10.0.0.2", "198.51.100.7, 10.0.0.3", "198.51.100.7"),  # two of our proxies
    ("10.0.0.2", "10.0.0.5, 10.0.0.3", "10.0.0.5"),  # all trusted: the leftmost
    ("10.0.0.2", "not-an-ip, 198.51.100.7", "198.51.100.7"),
    ("10.0.0.2", "198.51.100.7, garbage", "10.0.0.2"),  # never a bucket keyed on garbage
    ("10.0.0.2", "2001:db8::1", "2001:db8::1"),
    ("10.0.0.2", "", "10.0.0.2"),
    (None, None, "?"),
])
def test_client_address_reads_the_header_only_from_trusted_proxies(peer, header,
                                                                     expected) -> None:  # noqa: ANN001
    assert client_address(peer, header, PROXY) == expected


def test_no_trusted_proxies_means_the_header_is_ignored() -> None:
    assert client_address("10.0.0.2", "198.51.100.7", parse_networks("")) == "10.0.0.2"


def test_a_huge_header_costs_a_bounded_walk() -> None:
    header = ", ".join(["10.0.0.9"] * 50_000) + ", 198.51.100.7"
    assert client_address("10.0.0.2", header, PROXY) == "198.51.100.7"
    assert client_address("10.0.0.2", "198.51.100.7, " + ", ".join(["10.1.1.1"] * 50_000),
                          PROXY) == "10.1.1.1"  # more hops than MAX_HOPS: the last one read


def test_a_bad_setting_stops_the_start_with_its_name() -> None:
    with pytest.raises(SystemExit, match="TRUSTED_PROXIES: '10.0.0.300'"):
        Settings.from_env({"TRUSTED_PROXIES": "127.0.0.1, 10.0.0.300"})
    assert Settings.from_env({"TRUSTED_PROXIES": " 127.0.0.1 "}).trusted_proxies == "127.0.0.1"


async def test_handlers_and_the_access_log_see_the_client(caplog) -> None:  # noqa: ANN001
    async def remote(request: web.Request) -> web.Response:
        return web.Response(text=request.remote or "")

    for trusted, expected in (("127.0.0.1", "198.51.100.7"), ("", "127.0.0.1")):
        app = web.Application(middlewares=[client_middleware(parse_networks(trusted))])
        app.router.add_get("/", remote)
        server = TestServer(app)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="test.access"):
            await server.start_server(access_log_class=MaskingAccessLogger,
                                      access_log=logging.getLogger("test.access"))
            async with TestClient(server) as client:
                resp = await client.get("/", headers={"X-Forwarded-For": "198.51.100.7"})
                assert await resp.text() == expected
        messages = [r.getMessage() for r in caplog.records]
        assert any(m.startswith(f'{expected} "GET /"') for m in messages), messages
