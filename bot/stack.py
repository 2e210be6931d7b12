"""Start and stop the assistant's processes: action server, Rasa server, gateway.

`bot run`, `bot shell --start` and the integration tests all use this one implementation,
so what the tests start is exactly what a user starts.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine.url import make_url

from bot.config import ROOT, Settings
from bot.native_threads import unlimited_env

# The environment variable that carries the tracker database's password to Rasa, so the
# generated endpoints file never holds a secret (Rasa expands ${VAR} in endpoint files).
TRACKER_PASSWORD_ENV = "DVC_TRACKER_DB_PASSWORD"
REDIS_PASSWORD_ENV = "DVC_LOCK_STORE_PASSWORD"  # the same, for the Redis lock store


# How long a stop may take (README "Quick start", "Stopping and supervision"): the gateway
# first, given the time a message it accepted may still wait for Rasa (RASA_TIMEOUT) plus
# this much; then Rasa and the action servers, each given STOP_GRACE seconds before SIGKILL.
STOP_GRACE = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None,
              stop: threading.Event | None = None) -> bool:
    """Poll `url` until it answers 200, the process dies, `stop` is set or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if stop is not None and stop.is_set():
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
    """Environment for child processes: the settings, made explicit (every field of
    `Settings`; tests/test_service_env.py fails when one is missing). A child sizes its
    own native pools: those this process set for itself are left out (a training the
    console starts from the gateway uses every core)."""
    env = unlimited_env(dict(os.environ))
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
        "NATIVE_THREADS": str(settings.native_threads),
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
        "RATE_LIMIT_SEARCH_PER_MINUTE": str(settings.rate_limit_search_per_minute),
        "RATE_LIMIT_POLL_PER_MINUTE": str(settings.rate_limit_poll_per_minute),
        "RATE_LIMIT_HEALTH_PER_MINUTE": str(settings.rate_limit_health_per_minute),
        "WEBSOCKETS_PER_ADDRESS": str(settings.websockets_per_address),
        "TRUSTED_PROXIES": settings.trusted_proxies,
        # Rasa reads RASA_TOKEN (bot.rasa_runtime turns it into --auth-token: not in argv,
        # which `ps` shows to every user); the gateway sends it to Rasa's API.
        "RASA_TOKEN": settings.rasa_token,
        "HEALTH_TOKEN": settings.health_token,
        "ZALO_APP_ID": settings.zalo_app_id,
        "ZALO_OA_SECRET_KEY": settings.zalo_oa_secret_key,
        "ZALO_APP_SECRET": settings.zalo_app_secret,
        "ZALO_ACCESS_TOKEN": settings.zalo_access_token,
        "ZALO_REFRESH_TOKEN": settings.zalo_refresh_token,
        "ZALO_API_BASE": settings.zalo_api_base,
        "ZALO_OAUTH_BASE": settings.zalo_oauth_base,
        "ZALO_SIGNATURE_WINDOW": str(settings.zalo_signature_window),
        "ZALO_MAX_ATTEMPTS": str(settings.zalo_max_attempts),
        "ZALO_MAX_AGE_HOURS": str(settings.zalo_max_age_hours),
        "STATUS_SOURCE": settings.status_source,
        "STATUS_HTTP_URL": settings.status_http_url,
        "STATUS_HTTP_TOKEN": settings.status_http_token,
        "STATUS_HTTP_TIMEOUT": str(settings.status_http_timeout),
        "STATUS_HTTP_FIELDS": settings.status_http_fields,
        "STATUS_HTTP_STATUSES": settings.status_http_statuses,
        "STATUS_LOOKUP_LIMIT": str(settings.status_lookup_limit),
        "STATUS_LOOKUP_WINDOW_MINUTES": str(settings.status_lookup_window),
        "STATUS_LOOKUP_ADDRESS_LIMIT": str(settings.status_lookup_address_limit),
        "STATUS_LOOKUP_GLOBAL_LIMIT": str(settings.status_lookup_global_limit),
        "RECEIPT_CODE_PATTERNS": str(settings.receipt_code_patterns),
        "WORK_CALENDAR": str(settings.work_calendar),
        "HANDOVER_HOURS": settings.handover_hours,
        "HANDOVER_AFTER_FALLBACKS": str(settings.handover_after_fallbacks),
        "INBOX_CONFIDENCE": str(settings.inbox_confidence),
        "NLU_CORRECTIONS_FILE": str(settings.nlu_corrections_file),
        "MODEL_GATE_MARGIN": str(settings.model_gate_margin),
        "TRAINING_MODE": settings.training_mode,
        "RASA_URLS": ",".join(settings.rasa_urls),
        "ACTIONS_URLS": ",".join(settings.actions_urls),
        "RASA_REPLICAS": str(settings.rasa_replicas),
        "ACTIONS_REPLICAS": str(settings.actions_replicas),
        "REDIS_URL": settings.redis_url,
        "LOCK_LIFETIME": str(settings.lock_lifetime),
        "RETENTION_DAYS": str(settings.retention_days),
        "CONSOLE_SESSION_HOURS": str(settings.console_session_hours),
        "CONSOLE_SESSION_MAX_HOURS": str(settings.console_session_max_hours),
        "CONSOLE_SECURE_COOKIE": settings.console_secure_cookie,
        "CATALOG_SNAPSHOT": settings.catalog_snapshot,
        "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "PYTHONWARNINGS": env.get("PYTHONWARNINGS", "ignore::DeprecationWarning"),
    })
    return env


def tracker_store_config(database_url: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Rasa's `SQLTrackerStore` section for our own database, and the env it needs.

    Conversations are kept in Rasa's `events` table next to our tables, so the operator
    console can list and read them and they survive restarts. Rasa's store takes the URL's
    parts, not a URL; the password goes through the environment (`TRACKER_PASSWORD_ENV`).
    An in-memory SQLite database cannot be shared between processes: (None, {}) then, and
    the stack keeps endpoints.yml's in-memory store.
    """
    url = make_url(database_url)
    database = url.database
    if url.get_backend_name() == "sqlite":
        if database in (None, "", ":memory:"):
            return None, {}
        # the services run in the checkout, so a relative file is relative to it
        database = str(ROOT / database) if not Path(database).is_absolute() else database
    config: dict[str, Any] = {"type": "SQL", "dialect": url.drivername, "db": database}
    if url.host:  # Rasa's endpoint key for the SQL store's host is `url`
        config["url"] = url.host
    if url.port:
        config["port"] = url.port
    if url.username:
        config["username"] = url.username
    env = _password_via_env(config, url.password, TRACKER_PASSWORD_ENV)
    if url.query:
        config["query"] = {k: v if isinstance(v, str) else list(v) for k, v in url.query.items()}
    return config, env


def lock_store_config(redis_url: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """Rasa's lock store section for REDIS_URL (None: keep endpoints.yml's in-memory one),
    and the env carrying its password (never written to the file)."""
    if not redis_url:
        return None, {}
    url = make_url(redis_url.replace("rediss://", "redis://", 1))
    config: dict[str, Any] = {"type": "bot.lock_store.FallbackRedisLockStore",
                              "url": url.host or "127.0.0.1", "port": url.port or 6379,
                              "db": int((url.database or "0").strip("/") or 0),
                              "key_prefix": "dvc"}
    if redis_url.startswith("rediss://"):
        config["use_ssl"] = True
    if url.username:
        config["username"] = url.username
    return config, _password_via_env(config, url.password, REDIS_PASSWORD_ENV)


def _password_via_env(config: dict[str, Any], password: str | None,
                      env_name: str) -> dict[str, str]:
    """Point the endpoints section's password at `${env_name}` and return the environment
    that carries it: the generated file (kept under var/) never holds a secret."""
    if not password:
        return {}
    config["password"] = "${" + env_name + "}"
    return {env_name: str(password)}


def write_endpoints(settings: Settings, directory: Path,
                    actions_url: str | None = None) -> tuple[Path, dict[str, str]]:
    """endpoints.yml with the tracker store pointed at DATABASE_URL, the lock store at
    REDIS_URL (when set) and the action server at `actions_url`, as a private temp file.

    The checked-in endpoints.yml stays the source of every other section and the
    in-memory default of a bare `rasa shell` / `rasa test`; each Rasa process gets its own
    file because stacks with different databases may run side by side (tests) and each
    replica talks to its own action server. Returns (path, extra environment for Rasa).
    """
    base = yaml.safe_load((ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
    store, env = tracker_store_config(settings.database_url)
    if store is not None:
        if store["dialect"].startswith("sqlite"):
            # Our engine creates the file, our tables and WAL mode before Rasa opens it, so
            # Rasa's writes and the gateway's share one journal mode from the first turn.
            from bot.catalog.db import get_engine

            get_engine(f"sqlite:///{store['db']}")
        base["tracker_store"] = store
    locks, lock_env = lock_store_config(settings.redis_url)
    if locks is not None:
        base["lock_store"] = locks
        env = {**env, **lock_env}
    if actions_url is not None:
        base["action_endpoint"] = {"url": f"{actions_url.rstrip('/')}/webhook"}
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="endpoints-", suffix=".yml", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# Generated by bot/stack.py from endpoints.yml, DATABASE_URL and REDIS_URL; "
                  "removed when the stack stops.\n")
        yaml.safe_dump(base, out, allow_unicode=True, sort_keys=False)
    return Path(name), env


def _die_with_parent() -> Any:
    """A `preexec_fn` that makes the child receive SIGTERM when `bot run` dies, however it
    dies (SIGKILL, OOM): children run in their own sessions (Ctrl-C reaches the parent only),
    so without this they would outlive it and hold the ports. Linux only (prctl); elsewhere
    nothing is done. The signal comes when the *thread* that started the child ends, so
    services are started and supervised from a thread that lasts (`bot run`: the main one).
    The libc handle is loaded before forking: a forked child of a threaded parent must do as
    little as possible."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return set_death_signal


@dataclass(frozen=True)
class RestartPolicy:
    """How `Stack.supervise` restarts a child that exits: after `backoff` seconds, doubling
    up to `max_backoff`, and at most `limit` times in `window` seconds; a child that keeps
    crashing stops the stack with a clear message instead of looping forever."""

    backoff: float = 1.0
    max_backoff: float = 30.0
    limit: int = 5
    window: float = 60.0


@dataclass
class Service:
    """How to (re)start one child process and know it is ready."""

    cmd: list[str]
    health_url: str
    env: dict[str, str] = field(default_factory=dict)


def replica_name(kind: str, i: int) -> str:
    """"rasa", "rasa-2", …: the first keeps the plain name (logs, single-replica setups)."""
    return kind if i == 0 else f"{kind}-{i + 1}"


@dataclass
class Stack:
    """The running child processes of one assistant instance: the action server(s), the
    Rasa replica(s) (RASA_REPLICAS / ACTIONS_REPLICAS on consecutive ports) and the
    gateway."""

    settings: Settings
    model: Path
    log_dir: Path = ROOT / "var" / "log"
    with_gateway: bool = True
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    endpoints_file: Path | None = None
    services: dict[str, Service] = field(default_factory=dict)
    endpoints_files: list[Path] = field(default_factory=list)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    # Set by `bot run`'s SIGTERM/SIGHUP handler (or a test): ends `start` and `supervise`.
    stopping: threading.Event = field(default_factory=threading.Event)

    def _spawn(self, name: str, cmd: list[str],
               extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        env = {**service_env(self.settings), **(extra_env or {})}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,  # noqa: PLW1509
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent())
        self.procs[name] = proc
        return proc

    def plan(self) -> dict[str, Service]:
        """Every service of this stack, in start order (writes the endpoints files)."""
        if not self.settings.rasa_token:
            # Rasa's API (load a model, read any conversation) always needs a token, even on
            # loopback where any local user could call it: without RASA_TOKEN, one per run,
            # handed to the children through service_env.
            import dataclasses
            import secrets

            self.settings = dataclasses.replace(self.settings,
                                                rasa_token=secrets.token_urlsafe(32))
        s = self.settings
        services: dict[str, Service] = {}
        for i in range(s.actions_replicas):
            port = s.actions_port + i
            services[replica_name("actions", i)] = Service(
                [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
                f"http://127.0.0.1:{port}/health", {"DVC_ACTIONS_WARMUP": "1"})
        actions_urls = s.actions_urls or (s.actions_url,)
        for i in range(s.rasa_replicas):
            rasa_port = s.rasa_port + i
            path, env = write_endpoints(s, ROOT / "var" / "run",
                                        actions_url=actions_urls[i % len(actions_urls)])
            self.endpoints_files.append(path)
            if i == 0:
                self.endpoints_file = path
            services[replica_name("rasa", i)] = Service(
                [sys.executable, "-m", "bot.rasa_runtime", "run", "--enable-api",
                 "--model", str(self.model), "--port", str(rasa_port),
                 "--endpoints", str(path), "--credentials", str(ROOT / "credentials.yml"),
                 "--interface", "127.0.0.1"],
                f"http://127.0.0.1:{rasa_port}/",
                {**env, "TICKET_LOCK_LIFETIME": str(s.lock_lifetime)})
        if self.with_gateway:
            services["gateway"] = Service([sys.executable, "-m", "bot", "gateway"],
                                          f"http://{s.bot_host}:{s.bot_port}/healthz")
        return services

    def start(self, timeout: float = 180.0) -> None:
        """Start all services and wait until each answers; raise with the log's tail if not.

        The gateway starts beside Rasa rather than after it: it needs Rasa only to answer,
        and its own start then costs nothing in the time to the first answer.
        """
        self.services = self.plan()
        for name, svc in self.services.items():
            self._spawn(name, svc.cmd, svc.env)
        for name, svc in self.services.items():
            if self.stopping.is_set():  # SIGTERM while starting: `wait` stops what started
                return
            self._check(name, self.procs[name], svc.health_url, timeout)

    def kill(self, name: str) -> None:
        """Kill one service at once (SIGKILL, as a crash or an OOM kill would)."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=15)

    def restart(self, name: str, timeout: float = 180.0) -> None:
        """Start a stopped (or killed) service again and wait until it answers."""
        self.kill(name)
        self._check(name, self._respawn(name), self.services[name].health_url, timeout)

    def _with_active_model(self, cmd: list[str]) -> list[str]:
        """A Rasa replica that comes back serves the registry's active model, not the one
        the stack started with: an activation made while it was down reaches it too."""
        from bot.registry.registry import active_model

        try:
            active = active_model(self.settings)
        except Exception:  # noqa: BLE001 - the registry unreadable: keep the known model
            return cmd
        if active is None or not active.exists():
            return cmd
        i = cmd.index("--model") + 1
        return [*cmd[:i], str(active), *cmd[i + 1:]]

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
        if wait_http(url, timeout, proc, self.stopping) or self.stopping.is_set():
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
        """Stop every child: the gateway first, so a message it has accepted is still answered
        by Rasa, then Rasa and the action servers; SIGKILL whatever outlives its grace."""
        gateways = [p for n, p in self.procs.items() if n.startswith("gateway")]
        others = [p for n, p in self.procs.items() if not n.startswith("gateway")]
        self._stop_group(gateways, self.settings.rasa_timeout + STOP_GRACE)
        self._stop_group(others, STOP_GRACE)
        self.procs.clear()
        for path in self.endpoints_files:
            path.unlink(missing_ok=True)
        self.endpoints_files.clear()
        self.endpoints_file = None

    @staticmethod
    def _stop_group(procs: list[subprocess.Popen], grace: float) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def supervise(self) -> int:
        """Keep the stack up until `stopping` is set: a child that exits is started again
        (the gateway routes around a missing replica meanwhile), with `restart_policy`'s
        backoff; 0 when asked to stop, the child's exit code when it keeps crashing."""
        policy = self.restart_policy
        history: dict[str, deque[float]] = {}
        due: dict[str, float] = {}
        while not self.stopping.wait(0.25):
            now = time.monotonic()
            for name, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None or name in due:
                    continue
                recent = history.setdefault(name, deque())
                while recent and now - recent[0] > policy.window:
                    recent.popleft()
                log = self.log_dir / f"{name}.log"
                if len(recent) >= policy.limit:
                    print(f"{name} đã dừng {len(recent) + 1} lần trong {policy.window:.0f} giây "
                          f"(mã {code}); dừng toàn bộ trợ lý. Xem {log}", file=sys.stderr)
                    return code or 1
                delay = min(policy.backoff * 2 ** len(recent), policy.max_backoff)
                print(f"{name} dừng với mã {code}; khởi động lại sau {delay:.0f} giây "
                      f"(xem {log})", file=sys.stderr, flush=True)
                due[name] = now + delay
            for name, when in list(due.items()):
                if now >= when:
                    del due[name]
                    history.setdefault(name, deque()).append(now)
                    self._respawn(name)
        return 0

    def _respawn(self, name: str) -> subprocess.Popen:
        """Start one service again without waiting for it (`restart` waits; the supervisor
        keeps watching the others, and the gateway's health checks skip a replica that is not
        ready yet); a Rasa replica comes back on the registry's active model."""
        svc = self.services[name]
        if name.startswith("rasa"):
            svc.cmd = self._with_active_model(svc.cmd)
        return self._spawn(name, svc.cmd, svc.env)

    def wait(self) -> int:
        """Supervise until stopped (SIGTERM, SIGHUP, Ctrl-C) or a child keeps crashing, then
        stop everything; return the exit code."""
        try:
            return self.supervise()
        except KeyboardInterrupt:
            return 0
        finally:
            self.stop()
