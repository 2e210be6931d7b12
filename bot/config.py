"""Runtime settings read from environment variables.

Every knob lives here so that `.env.example`, the README and the code agree on one list,
and so that tests can build a `Settings` for their own ports without touching `os.environ`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
_N = TypeVar("_N", int, float)


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:  # a clear message instead of a traceback deep in startup
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc


def _at_least(name: str, value: _N, low: _N) -> _N:
    """A number setting checked at start: a zero retry limit would make every first
    failure a dead letter."""
    if value < low:
        raise SystemExit(f"{name} must be at least {low}, got {value}")
    return value


TRAINING_MODES = ("inline", "queue")  # the first is the default


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (the first when unset), checked at start: a typo must not quietly
    train inside a gateway container."""
    value = (env.get(name) or allowed[0]).strip().lower()
    if value not in allowed:
        raise SystemExit(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _urls(raw: str) -> tuple[str, ...]:
    """A comma-separated list of base URLs, without blanks and trailing slashes."""
    return tuple(u.strip().rstrip("/") for u in raw.split(",") if u.strip())


def _networks(raw: str) -> str:
    """TRUSTED_PROXIES, checked at start (a typo would silently trust nobody)."""
    from bot.client_address import parse_networks

    try:
        parse_networks(raw)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    return raw.strip()


def _path(env: dict[str, str], name: str, default: str) -> Path:
    """A file setting; a relative path is relative to the checkout, wherever the command runs."""
    path = Path((env.get(name) or "").strip() or default)
    return path if path.is_absolute() else ROOT / path


def default_database_url() -> str:
    """SQLite file under var/: needs no server, survives restarts, ignored by git."""
    return f"sqlite:///{ROOT / 'var' / 'dvc.sqlite3'}"


SECRET = "secret"  # field metadata key: the setting's value is never printed
_URL_PASSWORD = re.compile(r"(://[^/@\s:]*:)[^@\s]*@")


def _secret() -> Any:  # noqa: ANN401 - a dataclasses.Field, typed as its value for mypy
    """A secret setting (keys, tokens): `Settings.__repr__` shows only whether it is set,
    so a Settings in a log line, a traceback or a test report never carries it."""
    return field(default="", repr=False, metadata={SECRET: True})


def mask_url_password(text: str) -> str:
    """`scheme://user:password@host` with the password replaced by `***`: DATABASE_URL and
    REDIS_URL carry passwords, and whatever prints them must not."""
    return _URL_PASSWORD.sub(r"\1***@", text)


@dataclass(frozen=True)
class Settings:
    """All runtime configuration; build with `Settings.from_env()`."""

    bot_host: str = "127.0.0.1"
    bot_port: int = 8080
    rasa_port: int = 5005
    actions_port: int = 5055
    rasa_url: str = "http://127.0.0.1:5005"
    actions_url: str = "http://127.0.0.1:5055"
    database_url: str = field(default_factory=default_database_url)
    models_dir: Path = ROOT / "models"
    portal_url: str = "https://dichvucong.gov.vn"
    support_hotline: str = "18001096"
    rasa_timeout: float = 30.0
    catalog_refresh: float = 5.0  # seconds between checks for a changed catalog (imports)
    # Threads of the native pools (BLAS, OpenMP, TensorFlow) in each serving process; 0: as
    # many as the machine has (bot/native_threads.py).
    native_threads: int = 1
    max_message_bytes: int = 4096
    log_level: str = "INFO"
    # The deployment's province (code or name): whose local fee rules apply by default; a
    # citizen can name another in the conversation. Blank: national rules only.
    province: str = "01"
    fee_date: str = ""  # YYYY-MM-DD: answer fees as of this day (previews, tests); blank: today
    fee_overrides_dir: Path = ROOT / "data" / "fees"
    # Web origins allowed to embed the widget / call the API from a browser (see README).
    allowed_origins: str = "self,http://localhost:*,http://127.0.0.1:*"
    rate_limit_per_minute: int = 30  # chat messages per session per minute (0: no limit)
    rate_limit_address_per_minute: int = 120  # ...per client address, whatever the session
    # Per client address and minute on the other public routes (0: no limit): catalog search
    # and fees, hand-over message polling, /healthz; open WebSockets per address at a time.
    rate_limit_search_per_minute: int = 120
    rate_limit_poll_per_minute: int = 300
    rate_limit_health_per_minute: int = 60
    websockets_per_address: int = 20
    # Reverse proxies whose X-Forwarded-For names the client (addresses / CIDR blocks, comma-
    # separated; blank: none, the peer is the client). See README "Security".
    trusted_proxies: str = ""
    # Rasa's HTTP API token (`--auth-token`; README "Security checks"): every caller of
    # Rasa's API (/model, /status, /conversations/...) sends it. Blank: `bot run` makes a
    # random one per run, known only to the processes it starts.
    rasa_token: str = _secret()
    # Bearer token that shows /healthz's details (internal URLs, error texts) to monitoring;
    # without it a caller gets the status alone. Blank: details for console admins only.
    health_token: str = _secret()
    # Zalo Official Account (the channel is off unless app id and OA secret key are set).
    zalo_app_id: str = ""
    zalo_oa_secret_key: str = _secret()  # signs webhook events
    zalo_app_secret: str = _secret()  # refreshes access tokens
    zalo_access_token: str = _secret()  # the initial pair; later pairs live in the database
    zalo_refresh_token: str = _secret()
    zalo_api_base: str = "https://openapi.zalo.me"
    zalo_oauth_base: str = "https://oauth.zaloapp.com"
    zalo_signature_window: float = 300.0  # seconds an event's timestamp may be off
    # A Zalo event whose answering keeps failing, or a reply Zalo keeps refusing, becomes a
    # dead letter (console "Zalo: tin lỗi") after this many tries or this many hours.
    zalo_max_attempts: int = 20
    zalo_max_age_hours: float = 24.0
    # Application status lookup (README "Application status").
    status_source: str = "database"  # "database" (the application_status table) | "http"
    status_http_url: str = ""  # provincial case system; "{code}" is replaced by the code
    status_http_token: str = _secret()  # sent as "Authorization: Bearer <token>"
    status_http_timeout: float = 5.0  # seconds for the whole request
    status_http_fields: str = ""  # "our_field=json.path,..." (default: same names, top level)
    status_http_statuses: str = ""  # "THEIR_VALUE=our_status,..." (default: our names)
    status_lookup_limit: int = 5  # distinct codes one conversation may look up...
    status_lookup_window: float = 60.0  # ...per this many minutes (0: no limit)
    status_lookup_address_limit: int = 30  # distinct codes per client address per window
    status_lookup_global_limit: int = 1000  # look-ups of all clients per window (0: none)
    receipt_code_patterns: Path = ROOT / "data" / "status" / "receipt_codes.yaml"
    work_calendar: Path = ROOT / "data" / "status" / "calendar.yaml"
    # Human handover (README "Human handover"): when staff answer chats (Vietnam time; the
    # calendar's days off are closed), and after how many failed turns in a row the bot
    # hands over by itself (0: only when asked).
    handover_hours: str = "mon-fri 08:00-17:00"
    handover_after_fallbacks: int = 2
    # Data retention (README "Data retention"): conversations, Zalo payloads, closed
    # hand-overs and feedback older than this many days are deleted (the gateway checks every
    # hour, runs once a day; `bot retention run`); 0: kept forever.
    retention_days: int = 180
    # Operator console (README "Operator console").
    console_session_hours: float = 8.0  # a session ends after this long without a request
    console_session_max_hours: float = 12.0  # ...and this long after login, even if active
    console_secure_cookie: str = "auto"  # "auto" (Secure when served over HTTPS), "1", "0"
    # NLU inbox: a citizen message whose top intent is below this confidence needs a review.
    inbox_confidence: float = 0.6
    # Operator corrections are stored in the database; `bot nlu export-corrections` writes
    # them here as training examples (Rasa YAML, reviewed in git).
    nlu_corrections_file: Path = ROOT / "data" / "nlu" / "corrections.yml"
    # Model registry (README "Model registry"): a candidate may be at most this much worse
    # than the serving model (weighted F1 and accuracy on tests/nlu_test.yml) to be activated;
    # the Rasa servers a model is hot-swapped into (empty: RASA_URL alone).
    model_gate_margin: float = 0.01
    # Where a training the console asks for runs (README "Model registry"): "inline", a
    # process beside the gateway (`bot run`, one machine); "queue", a row the trainer
    # service takes (`bot model trainer`: Docker Compose, Kubernetes), since `rasa train`
    # needs ~3 GiB and a gateway container has 1 GiB.
    training_mode: str = "inline"
    rasa_urls: tuple[str, ...] = ()
    # Scaling out (README "Scaling out"): `bot run` starts this many Rasa replicas and action
    # servers on consecutive ports from RASA_PORT / ACTIONS_PORT; the gateway spreads
    # conversations over RASA_URLS (by default those replicas). REDIS_URL: Rasa's lock store
    # (required with more than one replica; blank: in-memory locks, one replica).
    rasa_replicas: int = 1
    actions_replicas: int = 1
    actions_urls: tuple[str, ...] = ()
    redis_url: str = ""
    lock_lifetime: int = 20  # seconds a dead replica's conversation lock blocks it at most
    # The national catalog shipped with the product (data/dvcqg/: the portal's exports),
    # imported on the first `bot run`; relative to the checkout; blank: the seed alone.
    catalog_snapshot: str = "data/dvcqg"

    def __repr__(self) -> str:
        """Every setting, but secrets only as set or not and URLs without their passwords:
        a Settings printed in a log, a traceback or a test report must not leak them."""
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata.get(SECRET):
                text = "'***'" if value else "''"
            else:
                text = mask_url_password(repr(value))
            shown.append(f"{f.name}={text}")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def catalog_snapshot_dir(self) -> Path | None:
        """The snapshot folder to load at start, or None when turned off."""
        if not self.catalog_snapshot.strip():
            return None
        path = Path(self.catalog_snapshot.strip())
        return path if path.is_absolute() else ROOT / path

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read settings from `env` (default: the process environment)."""
        env = dict(os.environ if env is None else env)
        rasa_port = _int(env, "RASA_PORT", 5005)
        actions_port = _int(env, "ACTIONS_PORT", 5055)
        rasa_replicas = _int(env, "RASA_REPLICAS", 1)
        actions_replicas = _int(env, "ACTIONS_REPLICAS", 1)
        for name, n in (("RASA_REPLICAS", rasa_replicas), ("ACTIONS_REPLICAS", actions_replicas)):
            if not 1 <= n <= 32:
                raise SystemExit(f"{name} must be between 1 and 32, got {n}")
        local_rasa = tuple(f"http://127.0.0.1:{rasa_port + i}" for i in range(rasa_replicas))
        local_actions = tuple(f"http://127.0.0.1:{actions_port + i}"
                              for i in range(actions_replicas))
        redis_url = (env.get("REDIS_URL") or "").strip()
        if rasa_replicas > 1 and not redis_url:
            raise SystemExit("RASA_REPLICAS > 1 needs REDIS_URL (the lock store every replica "
                             "shares); see README \"Scaling out\"")
        return cls(
            bot_host=env.get("BOT_HOST", "127.0.0.1"),
            bot_port=_int(env, "BOT_PORT", 8080),
            rasa_port=rasa_port,
            actions_port=actions_port,
            rasa_url=env.get("RASA_URL") or f"http://127.0.0.1:{rasa_port}",
            actions_url=env.get("ACTIONS_URL") or f"http://127.0.0.1:{actions_port}",
            database_url=env.get("DATABASE_URL") or default_database_url(),
            models_dir=Path(env.get("MODELS_DIR") or ROOT / "models"),
            portal_url=(env.get("PORTAL_URL") or "https://dichvucong.gov.vn").rstrip("/"),
            support_hotline=env.get("SUPPORT_HOTLINE") or "18001096",
            rasa_timeout=_float(env, "RASA_TIMEOUT", 30.0),
            catalog_refresh=_float(env, "CATALOG_REFRESH_SECONDS", 5.0),
            native_threads=_at_least("NATIVE_THREADS", _int(env, "NATIVE_THREADS", 1), 0),
            max_message_bytes=_int(env, "MAX_MESSAGE_BYTES", 4096),
            log_level=(env.get("LOG_LEVEL") or "INFO").upper(),
            province=env.get("PROVINCE", "01").strip(),
            fee_date=(env.get("FEE_DATE") or "").strip(),
            fee_overrides_dir=Path(env.get("FEE_OVERRIDES_DIR") or ROOT / "data" / "fees"),
            allowed_origins=env.get("ALLOWED_ORIGINS")
            or "self,http://localhost:*,http://127.0.0.1:*",
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 30),
            rate_limit_address_per_minute=_int(env, "RATE_LIMIT_ADDRESS_PER_MINUTE", 120),
            rate_limit_search_per_minute=_int(env, "RATE_LIMIT_SEARCH_PER_MINUTE", 120),
            rate_limit_poll_per_minute=_int(env, "RATE_LIMIT_POLL_PER_MINUTE", 300),
            rate_limit_health_per_minute=_int(env, "RATE_LIMIT_HEALTH_PER_MINUTE", 60),
            websockets_per_address=_int(env, "WEBSOCKETS_PER_ADDRESS", 20),
            trusted_proxies=_networks(env.get("TRUSTED_PROXIES", "")),
            rasa_token=env.get("RASA_TOKEN", "").strip(),
            health_token=env.get("HEALTH_TOKEN", "").strip(),
            zalo_app_id=env.get("ZALO_APP_ID", "").strip(),
            zalo_oa_secret_key=env.get("ZALO_OA_SECRET_KEY", "").strip(),
            zalo_app_secret=env.get("ZALO_APP_SECRET", "").strip(),
            zalo_access_token=env.get("ZALO_ACCESS_TOKEN", "").strip(),
            zalo_refresh_token=env.get("ZALO_REFRESH_TOKEN", "").strip(),
            zalo_api_base=(env.get("ZALO_API_BASE") or "https://openapi.zalo.me").rstrip("/"),
            zalo_oauth_base=(env.get("ZALO_OAUTH_BASE")
                             or "https://oauth.zaloapp.com").rstrip("/"),
            zalo_signature_window=_float(env, "ZALO_SIGNATURE_WINDOW", 300.0),
            zalo_max_attempts=_at_least("ZALO_MAX_ATTEMPTS",
                                        _int(env, "ZALO_MAX_ATTEMPTS", 20), 1),
            zalo_max_age_hours=_at_least("ZALO_MAX_AGE_HOURS",
                                         _float(env, "ZALO_MAX_AGE_HOURS", 24.0), 0.01),
            status_source=(env.get("STATUS_SOURCE") or "database").strip().lower(),
            status_http_url=env.get("STATUS_HTTP_URL", "").strip(),
            status_http_token=env.get("STATUS_HTTP_TOKEN", "").strip(),
            status_http_timeout=_float(env, "STATUS_HTTP_TIMEOUT", 5.0),
            status_http_fields=env.get("STATUS_HTTP_FIELDS", "").strip(),
            status_http_statuses=env.get("STATUS_HTTP_STATUSES", "").strip(),
            status_lookup_limit=_int(env, "STATUS_LOOKUP_LIMIT", 5),
            status_lookup_window=_float(env, "STATUS_LOOKUP_WINDOW_MINUTES", 60.0),
            status_lookup_address_limit=_int(env, "STATUS_LOOKUP_ADDRESS_LIMIT", 30),
            status_lookup_global_limit=_int(env, "STATUS_LOOKUP_GLOBAL_LIMIT", 1000),
            receipt_code_patterns=_path(env, "RECEIPT_CODE_PATTERNS",
                                        "data/status/receipt_codes.yaml"),
            work_calendar=_path(env, "WORK_CALENDAR", "data/status/calendar.yaml"),
            handover_hours=(env.get("HANDOVER_HOURS") or "mon-fri 08:00-17:00").strip(),
            handover_after_fallbacks=_int(env, "HANDOVER_AFTER_FALLBACKS", 2),
            retention_days=_at_least("RETENTION_DAYS", _int(env, "RETENTION_DAYS", 180), 0),
            console_session_hours=_float(env, "CONSOLE_SESSION_HOURS", 8.0),
            console_session_max_hours=_float(env, "CONSOLE_SESSION_MAX_HOURS", 12.0),
            console_secure_cookie=(env.get("CONSOLE_SECURE_COOKIE") or "auto").strip().lower(),
            inbox_confidence=_float(env, "INBOX_CONFIDENCE", 0.6),
            nlu_corrections_file=_path(env, "NLU_CORRECTIONS_FILE", "data/nlu/corrections.yml"),
            model_gate_margin=_float(env, "MODEL_GATE_MARGIN", 0.01),
            training_mode=_choice(env, "TRAINING_MODE", TRAINING_MODES),
            rasa_urls=_urls(env.get("RASA_URLS", ""))
            or ((env["RASA_URL"],) if env.get("RASA_URL") and rasa_replicas == 1 else local_rasa),
            rasa_replicas=rasa_replicas,
            actions_replicas=actions_replicas,
            actions_urls=_urls(env.get("ACTIONS_URLS", ""))
            or ((env["ACTIONS_URL"],) if env.get("ACTIONS_URL") and actions_replicas == 1
                else local_actions),
            redis_url=redis_url,
            lock_lifetime=_int(env, "LOCK_LIFETIME", 20),
            catalog_snapshot=env.get("CATALOG_SNAPSHOT", "data/dvcqg"),
        )
