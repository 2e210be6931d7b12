"""Start and stop the assistant's processes: action server, Rasa server, gateway.

`bot run`, `bot shell --start` and the integration tests all use this one implementation,
so what the tests start is exactly what a user starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bot.config import ROOT, Settings


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    """Poll `url` until it answers 200, the process dies, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    return False


def service_env(settings: Settings) -> dict[str, str]:
    """Environment for child processes: the settings, made explicit."""
    env = dict(os.environ)
    env.update({
        "BOT_HOST": settings.bot_host,
        "BOT_PORT": str(settings.bot_port),
        "RASA_PORT": str(settings.rasa_port),
        "ACTIONS_PORT": str(settings.actions_port),
        "RASA_URL": settings.rasa_url,
        "ACTIONS_URL": settings.actions_url,
        "MODELS_DIR": str(settings.models_dir),
        "RASA_TIMEOUT": str(settings.rasa_timeout),
        "CATALOG_REFRESH_SECONDS": str(settings.catalog_refresh),
        "MAX_MESSAGE_BYTES": str(settings.max_message_bytes),
        "LOG_LEVEL": settings.log_level,
        "DATABASE_URL": settings.database_url,
        # the action server (Sanic) listens on loopback only: Rasa is its only client
        "SANIC_HOST": env.get("SANIC_HOST", "127.0.0.1"),
        "ACTION_ENDPOINT_URL": f"{settings.actions_url}/webhook",
        "PORTAL_URL": settings.portal_url,
        "SUPPORT_HOTLINE": settings.support_hotline,
        "PROVINCE": settings.province,
        "FEE_DATE": settings.fee_date,
        "FEE_OVERRIDES_DIR": str(settings.fee_overrides_dir),
        "ALLOWED_ORIGINS": settings.allowed_origins,
        "RATE_LIMIT_PER_MINUTE": str(settings.rate_limit_per_minute),
        "RATE_LIMIT_ADDRESS_PER_MINUTE": str(settings.rate_limit_address_per_minute),
        "ZALO_APP_ID": settings.zalo_app_id,
        "ZALO_OA_SECRET_KEY": settings.zalo_oa_secret_key,
        "ZALO_APP_SECRET": settings.zalo_app_secret,
        "ZALO_ACCESS_TOKEN": settings.zalo_access_token,
        "ZALO_REFRESH_TOKEN": settings.zalo_refresh_token,
        "ZALO_API_BASE": settings.zalo_api_base,
        "ZALO_OAUTH_BASE": settings.zalo_oauth_base,
        "ZALO_SIGNATURE_WINDOW": str(settings.zalo_signature_window),
        "STATUS_SOURCE": settings.status_source,
        "STATUS_HTTP_URL": settings.status_http_url,
        "STATUS_HTTP_TOKEN": settings.status_http_token,
        "STATUS_HTTP_TIMEOUT": str(settings.status_http_timeout),
        "STATUS_HTTP_FIELDS": settings.status_http_fields,
        "STATUS_HTTP_STATUSES": settings.status_http_statuses,
        "STATUS_LOOKUP_LIMIT": str(settings.status_lookup_limit),
        "STATUS_LOOKUP_WINDOW_MINUTES": str(settings.status_lookup_window),
        "RECEIPT_CODE_PATTERNS": str(settings.receipt_code_patterns),
        "WORK_CALENDAR": str(settings.work_calendar),
        "CONSOLE_SESSION_HOURS": str(settings.console_session_hours),
        "CONSOLE_SECURE_COOKIE": settings.console_secure_cookie,
        "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "PYTHONWARNINGS": env.get("PYTHONWARNINGS", "ignore::DeprecationWarning"),
    })
    return env


@dataclass
class Stack:
    """The running child processes of one assistant instance."""

    settings: Settings
    model: Path
    log_dir: Path = ROOT / "var" / "log"
    with_gateway: bool = True
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def _spawn(self, name: str, cmd: list[str],
               extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        env = {**service_env(self.settings), **(extra_env or {})}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start(self, timeout: float = 180.0) -> None:
        """Start all services and wait until each answers; raise with the log's tail if not."""
        s = self.settings
        actions = self._spawn("actions", [
            sys.executable, "-m", "rasa_sdk", "--actions", "actions",
            "--port", str(s.actions_port)], extra_env={"DVC_ACTIONS_WARMUP": "1"})
        rasa = self._spawn("rasa", [
            sys.executable, "-m", "rasa", "run", "--enable-api", "--model", str(self.model),
            "--port", str(s.rasa_port), "--endpoints", str(ROOT / "endpoints.yml"),
            "--credentials", str(ROOT / "credentials.yml"), "--interface", "127.0.0.1"])
        self._check("actions", actions, f"{s.actions_url}/health", timeout)
        self._check("rasa", rasa, f"{s.rasa_url}/", timeout)
        if self.with_gateway:
            gw = self._spawn("gateway", [sys.executable, "-m", "bot", "gateway"])
            self._check("gateway", gw, f"http://{s.bot_host}:{s.bot_port}/healthz", timeout)

    def restart_gateway(self, timeout: float = 60.0) -> None:
        """Stop and start the gateway alone (what an operator's restart or a crash does)."""
        proc = self.procs.get("gateway")
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)
        s = self.settings
        gw = self._spawn("gateway", [sys.executable, "-m", "bot", "gateway"])
        self._check("gateway", gw, f"http://{s.bot_host}:{s.bot_port}/healthz", timeout)

    def _check(self, name: str, proc: subprocess.Popen, url: str, timeout: float) -> None:
        if wait_http(url, timeout, proc):
            return
        tail = self.log_tail(name)
        self.stop()
        raise RuntimeError(f"{name} did not become ready at {url}.\n--- {name}.log ---\n{tail}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate every child (then kill what does not exit)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()

    def wait(self) -> int:
        """Block until any child exits (or Ctrl-C); return its exit code."""
        try:
            while True:
                for name, proc in self.procs.items():
                    code = proc.poll()
                    if code is not None:
                        print(f"{name} exited with code {code}; see {self.log_dir / name}.log",
                              file=sys.stderr)
                        return code or 1
                time.sleep(1)
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()
