"""Secrets stay secret (issue 18, item 8): a printed or logged `Settings` shows no key, token
or password; Rasa's HTTP API never runs without its token, which travels in the environment
(never in a command line `ps` shows) and which every caller of that API sends.

The deployment files' side (each container only its own secrets, Rasa started with the
token) is checked in tests/test_deploy_files.py; /healthz's details in
tests/test_gateway_input.py.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.config import SECRET, Settings, mask_url_password
from bot.rasa_runtime import with_auth_token
from bot.stack import Stack, service_env

TOKEN = "rasa-api-token-for-tests"
SECRETS = {
    "zalo_oa_secret_key": "zalo-oa-secret-value",
    "zalo_app_secret": "zalo-app-secret-value",
    "zalo_access_token": "zalo-access-token-value",
    "zalo_refresh_token": "zalo-refresh-token-value",
    "status_http_token": "status-http-token-value",
    "rasa_token": "rasa-token-value",
    "health_token": "health-token-value",
}
PASSWORDS = ("db-s3cret-pw", "redis-s3cret-pw")


def settings_with_secrets() -> Settings:
    return Settings(**SECRETS,
                    database_url=f"postgresql+psycopg2://dvc:{PASSWORDS[0]}@db:5432/dvc",
                    redis_url=f"redis://:{PASSWORDS[1]}@redis:6379/0",
                    rasa_urls=("http://rasa-1:5005", "http://rasa-2:5005"))


def leaked(text: str) -> list[str]:
    return [v for v in (*SECRETS.values(), *PASSWORDS) if v in text]


# --------------------------------------------------------------------------- Settings


def test_every_secret_looking_setting_is_marked_secret() -> None:
    """A setting added later with a secret's name is hidden too, or this fails."""
    looks_secret = re.compile(r"token|secret|password|_key$")
    for f in dataclasses.fields(Settings):
        assert bool(f.metadata.get(SECRET)) == bool(looks_secret.search(f.name)), f.name
    assert {f.name for f in dataclasses.fields(Settings) if f.metadata.get(SECRET)} == set(
        SECRETS)


def test_settings_repr_str_and_logs_hide_secrets_and_url_passwords(
        caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_with_secrets()
    caplog.set_level(logging.DEBUG, logger="test.secrets")
    log = logging.getLogger("test.secrets")
    log.info("settings %s", settings)
    log.info("settings %r", settings)
    log.info("in a list %s", [settings])
    for text in (repr(settings), str(settings), f"{settings}", caplog.text):
        assert not leaked(text), text
    shown = repr(settings)
    for name in SECRETS:
        assert f"{name}='***'" in shown  # whether it is set, not what it is
    assert "zalo_app_id=''" in shown and "'postgresql+psycopg2://dvc:***@db:5432/dvc'" in shown
    assert "'redis://:***@redis:6379/0'" in shown and "'http://rasa-1:5005'" in shown
    assert "rasa_token=''" in repr(Settings())  # blank stays visibly blank
    assert settings == dataclasses.replace(settings)  # still compared, copied, hashed
    assert hash(settings) == hash(dataclasses.replace(settings))


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql+psycopg2://dvc:s%40cret@db:5432/dvc", "postgresql+psycopg2://dvc:***@db:5432/dvc"),
    ("redis://:pw@redis:6379/0", "redis://:***@redis:6379/0"),
    ("rediss://user:pw@cache:6390/1", "rediss://user:***@cache:6390/1"),
    ("postgresql://dvc@db/dvc", "postgresql://dvc@db/dvc"),  # no password: unchanged
    ("sqlite:////srv/var/dvc.sqlite3", "sqlite:////srv/var/dvc.sqlite3"),
    ("http://127.0.0.1:5005", "http://127.0.0.1:5005"),
])
def test_mask_url_password(url: str, masked: str) -> None:
    assert mask_url_password(url) == masked


def test_the_new_tokens_are_read_from_the_environment() -> None:
    s = Settings.from_env({"RASA_TOKEN": f" {TOKEN} ", "HEALTH_TOKEN": "h-token"})
    assert (s.rasa_token, s.health_token) == (TOKEN, "h-token")
    env = service_env(s)
    assert (env["RASA_TOKEN"], env["HEALTH_TOKEN"]) == (TOKEN, "h-token")


# --------------------------------------------------------------------------- Rasa's token


def test_rasa_runtime_adds_the_token_from_the_environment() -> None:
    argv = ["bot.rasa_runtime", "run", "--enable-api", "--port", "5005"]
    assert with_auth_token(argv, {"RASA_TOKEN": TOKEN}) == [*argv, f"--auth-token={TOKEN}"]
    dash = with_auth_token(argv, {"RASA_TOKEN": "-starts-with-a-dash"})
    assert dash[-1] == "--auth-token=-starts-with-a-dash"  # one word: not read as an option
    with pytest.raises(SystemExit, match="RASA_TOKEN"):
        with_auth_token(argv, {})
    with pytest.raises(SystemExit, match="RASA_TOKEN"):
        with_auth_token(argv, {"RASA_TOKEN": "  "})
    explicit = [*argv, "--auth-token", "given"]
    assert with_auth_token(explicit, {}) == explicit
    for other in (["x", "run"], ["x", "train"], ["x", "shell", "--enable-api"]):
        assert with_auth_token(other, {}) == other  # no HTTP API: nothing to protect


@pytest.fixture()
def planned(tmp_path: Path) -> Iterator[Stack]:
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
                                  "RASA_PORT": "6000", "ACTIONS_PORT": "6100",
                                  "RASA_REPLICAS": "2", "REDIS_URL": "redis://r:6379/0"})
    st = Stack(settings, tmp_path / "model.tar.gz", log_dir=tmp_path)
    try:
        yield st
    finally:
        st.stop()  # removes the endpoints files plan() wrote


def test_bot_run_gives_rasa_a_token_in_the_environment_not_in_argv(planned: Stack) -> None:
    assert planned.settings.rasa_token == ""
    plan = planned.plan()
    token = planned.settings.rasa_token
    assert len(token) >= 32  # made for this run
    env = service_env(planned.settings)
    assert env["RASA_TOKEN"] == token  # every child (Rasa, the gateway) gets the same
    for name in ("rasa", "rasa-2"):
        cmd = plan[name].cmd
        assert "--enable-api" in cmd and not any(token in a for a in cmd)
        assert not any(a.startswith(("--auth-token", "-t")) for a in cmd)
        # what the started process hands Rasa's own argument parser
        child_argv = with_auth_token(cmd[2:], {**env, **plan[name].env})
        assert child_argv[-1] == f"--auth-token={token}"
    assert not any(token in a for svc in plan.values() for a in svc.cmd)


def test_bot_run_keeps_a_configured_token(tmp_path: Path) -> None:
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
                                  "RASA_TOKEN": TOKEN})
    st = Stack(settings, tmp_path / "model.tar.gz", log_dir=tmp_path)
    try:
        st.plan()
        assert st.settings.rasa_token == TOKEN
    finally:
        st.stop()


class TokenRasa(ThreadingHTTPServer):
    """Rasa's API as `--auth-token` serves it: /status and PUT /model only with `?token=`
    (401 otherwise); remembers every query string it was sent."""

    def __init__(self, token: str, model_file: str = "old.tar.gz") -> None:
        self.token, self.queries = token, []
        self.model = {"model_file": model_file, "model_id": "old"}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _authorized(self) -> bool:
                query = urlsplit(self.path).query
                server.queries.append(query)
                if parse_qs(query).get("token") == [server.token]:
                    return True
                self._reply(401, {"reason": "NotAuthenticated"})
                return False

            def _reply(self, code: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self._authorized():
                    self._reply(200, server.model)

            def do_PUT(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self._authorized():
                    path = Path(body["model_file"])
                    with tarfile.open(path) as tf:
                        meta = json.load(tf.extractfile("metadata.json"))
                    server.model = {"model_file": path.name, "model_id": meta["model_id"]}
                    self._reply(204, {})

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture()
def token_rasa() -> Iterator[TokenRasa]:
    server = TokenRasa(TOKEN)
    yield server
    server.shutdown()
    server.server_close()


def test_the_model_registry_sends_rasas_token(token_rasa: TokenRasa, tmp_path: Path) -> None:
    from bot.registry.activation import activate, server_status
    from bot.registry.registry import RegistryError, sync
    from tests.test_registry import fake_model

    assert server_status(token_rasa.url, token=TOKEN)["model_file"] == "old.tar.gz"
    assert server_status(token_rasa.url)["http_status"] == 401
    reg = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
                             "MODELS_DIR": str(tmp_path / "models"),
                             "RASA_URLS": token_rasa.url, "RASA_TOKEN": TOKEN})
    fake_model(reg.models_dir, "20261101-100000-only", "o1")
    sync(reg)
    result = activate("20261101-100000-only", reg, by="op")  # PUT /model, then /status
    assert [s.outcome for s in result.servers] == ["swapped"]
    assert token_rasa.model == {"model_file": "20261101-100000-only.tar.gz", "model_id": "o1"}

    # A terminal without the server's token: refused before anything is swapped, saying so.
    token_rasa.model = {"model_file": "old.tar.gz", "model_id": "old"}
    wrong = dataclasses.replace(reg, rasa_token="another-token")
    with pytest.raises(RegistryError, match="RASA_TOKEN") as refused:
        activate("20261101-100000-only", wrong, by="op", force=True)
    assert token_rasa.url in str(refused.value) and "another-token" not in str(refused.value)
    assert token_rasa.model["model_file"] == "old.tar.gz"
