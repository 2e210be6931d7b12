"""Security checks that must hold for every release: every operator route needs a login,
and the repository holds no secrets.

The route check walks the real gateway's router, so an admin route added later without
the console's guard fails here, not in production.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.config import ROOT, Settings
from bot.gateway.app import create_app
from tests.conftest import free_port

# Routes a citizen (or Zalo, or a load balancer) may call without an operator login.
PUBLIC = {
    ("GET", "/"), ("GET", "/console"), ("GET", "/healthz"), ("GET", "/demo"),
    ("GET", "/demo/demo.css"),
    ("GET", "/widget.js"), ("GET", "/widget.css"), ("GET", "/static"),
    ("GET", "/console/static"), ("GET", "/console/login"), ("POST", "/console/login"),
    ("POST", "/console/logout"),
    ("POST", "/api/v1/chat"), ("GET", "/api/v1/ws"), ("GET", "/api/v1/messages"),
    ("POST", "/api/v1/feedback"), ("POST", "/api/v1/handover/cancel"),
    ("GET", "/api/v1/procedures/search"), ("GET", "/api/v1/procedures/{code}/fees"),
    ("POST", "/webhooks/zalo"),
}


@pytest.fixture()
async def client(db_url: str) -> AsyncIterator[TestClient]:
    settings = Settings.from_env({"DATABASE_URL": db_url,
                                  "RASA_URL": f"http://127.0.0.1:{free_port()}",
                                  "ACTIONS_URL": f"http://127.0.0.1:{free_port()}"})
    async with TestClient(TestServer(create_app(settings))) as c:
        yield c


def _routes(client: TestClient) -> list[tuple[str, str]]:
    app = client.server.app
    assert app is not None
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        out.add((route.method, path))
    return sorted(out)


async def test_every_operator_route_requires_a_login(client: TestClient) -> None:
    routes = _routes(client)
    guarded = [r for r in routes if r not in PUBLIC]
    assert len(guarded) >= 20  # the console's pages and actions are all there
    assert all(path.startswith("/console") for _, path in guarded), guarded
    for method, path in guarded:
        url = re.sub(r"\{[^}]+\}", "1", path)
        resp = await client.request(method, url, allow_redirects=False)
        if resp.status == 303:
            assert resp.headers["Location"].startswith("/console/login"), (method, path)
        else:
            assert resp.status in (401, 403), (method, path, resp.status)
    # a forged session cookie is no login either
    client.session.cookie_jar.update_cookies({"dvc_console": "forged"})
    resp = await client.post("/console/models/train", allow_redirects=False)
    assert resp.status in (401, 403)


SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}\b"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^/\s@'\"]+)@"),
    "assigned secret": re.compile(
        r"(?i)\w*(?:secret|password|passwd|token|api_key)\w*\s*[:=]\s*['\"]"
        r"([A-Za-z0-9_\-+/]{24,})['\"]"),
}
# Placeholders and the throw-away values tests use on loopback.
ALLOWED_VALUES = {"secret", "s3cret", "s%40cret", "pw", "CHANGE-ME", "password", "pass", "x", "p",
                  "***"}  # the last: a masked password, what the logs show


def test_the_repository_holds_no_secrets() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    found = []
    for name in filter(None, files):
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for label, pattern in SECRET_PATTERNS.items():
            for m in pattern.finditer(text):
                value = m.group(1) if pattern.groups else m.group(0)
                if value in ALLOWED_VALUES or value.startswith(("${", "$(", "{")):
                    continue
                if name.startswith("tests/") and label == "assigned secret":
                    continue  # fixtures' fake keys, used on loopback only
                found.append(f"{name}: {label}: {m.group(0)[:60]}")
    assert not found, "\n".join(found)
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8")
    assert ".env" in ignored.split()  # the real settings file stays out of git
