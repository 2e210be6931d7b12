"""Application status from a provincial case system over HTTP (STATUS_SOURCE=http).

Each province runs its own one-stop case system (một cửa điện tử) with its own JSON shape
and its own status words, so nothing here is hard-wired to one of them: `HttpMapping` says
where each of our fields sits in their reply (STATUS_HTTP_FIELDS) and which of their status
values means which of ours (STATUS_HTTP_STATUSES). Adding a province is configuration.

The citizen is waiting in a chat while we ask, and the answer is about a real application,
so the rules lean towards saying "cannot check now" rather than something wrong or slow:

* one bounded request (`STATUS_HTTP_TIMEOUT`), retried only when a retry can plausibly help
  quickly (connection refused/reset, 502/503/504), never after a timeout;
* a reply about another receipt code than the one asked is refused, never shown;
* anything we cannot read (non-JSON, unknown status word, bad date) is `StatusUnavailable`,
  not a guess;
* logs carry HTTP status codes, timings and masked codes (``***0045``), never reply bodies
  (they may hold names and ID numbers) nor a full receipt code (whoever has it can look the
  application up).

"Not found" is HTTP 404, or an HTTP 200 whose status path runs into ``null``, ``{}``, ``[]``
or ``""`` before reaching the status (``{"data": null}``, ``{"items": []}``, ``{}``): the
usual ways such systems say "no such application". A non-empty object that simply lacks the
status key, or a status that is ``null``, is a reply we do not understand: StatusUnavailable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from bot.config import Settings
from bot.status.record import (
    STATUSES,
    ApplicationStatus,
    StatusUnavailable,
    StatusValueError,
    parse_status,
    parse_when,
)

log = logging.getLogger(__name__)

# Our side of STATUS_HTTP_FIELDS, in ApplicationStatus order.
OUR_FIELDS = (
    "receipt_code", "procedure_code", "agency", "status",
    "received_at", "due_at", "finished_at", "note",
)
_TIME_FIELDS = ("received_at", "due_at", "finished_at")
_TEXT_FIELDS = ("procedure_code", "agency", "note")

# Gateway errors usually mean "their server is restarting / overloaded right now"; one quick
# retry often gets an answer while the citizen still waits. Other 5xx are usually a bug on
# their side for this request, and a retry would only double the wait.
_RETRY_STATUSES = frozenset({502, 503, 504})
_BACKOFF = 0.2  # seconds before a retry
_CODE_PLACEHOLDER = "{code}"


class MappingError(ValueError):
    """Invalid STATUS_HTTP_FIELDS / STATUS_HTTP_STATUSES / URL (Vietnamese message).

    Raised at startup, so an operator sees the mistake at once instead of every citizen
    getting "cannot check now".
    """


class _Absent:
    """Markers for `_resolve`: why a JSON path gave no value."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_MISSING = _Absent("MISSING")  # a non-empty object/list without this key/index
_EMPTY = _Absent("EMPTY")  # the path runs into null / {} / [] / "" before its end


def _status_key(value: str) -> str:
    """How their status values are compared: NFC (composed accents), stripped, casefolded.

    Vietnamese text arrives both precomposed and decomposed ("Đã" vs "Đa\u0303"); without
    NFC the same word would not match the configured one.
    """
    return unicodedata.normalize("NFC", value).strip().casefold()


def _split_path(path: str, name: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in path.strip().split("."))
    if not parts or any(not part for part in parts):
        raise MappingError(
            f"STATUS_HTTP_FIELDS: đường dẫn {path!r} của trường {name!r} không hợp lệ "
            "(dạng data.TrangThai hoặc items.0.code)")
    return parts


def _resolve(document: Any, parts: tuple[str, ...]) -> Any:
    """The value at a dotted path (numeric parts index lists), or _MISSING / _EMPTY."""
    node = document
    for part in parts:
        if node is None or (isinstance(node, (dict, list, str)) and len(node) == 0):
            return _EMPTY
        if isinstance(node, dict):
            if part not in node:
                return _MISSING
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


@dataclass(frozen=True)
class HttpMapping:
    """Where our fields sit in a case system's JSON reply, and what its status words mean.

    `fields` maps each of our field names (OUR_FIELDS) to a dotted path in their reply;
    only the listed fields are read, and `status` must be listed. `statuses` maps their
    status values (compared case-insensitively, stripped) to one of STATUSES; a value not
    in it goes through `parse_status` as is, so a system that already uses our words (or
    the English aliases) needs no status map.
    """

    fields: Mapping[str, str]
    statuses: Mapping[str, str]
    _paths: Mapping[str, tuple[str, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        paths: dict[str, tuple[str, ...]] = {}
        for name, path in self.fields.items():
            if name not in OUR_FIELDS:
                raise MappingError(
                    f"STATUS_HTTP_FIELDS: trường {name!r} không có "
                    f"(cần một trong: {', '.join(OUR_FIELDS)})")
            paths[name] = _split_path(path, name)
        if "status" not in paths:
            raise MappingError("STATUS_HTTP_FIELDS phải khai báo trường status (status=...)")
        statuses: dict[str, str] = {}
        for their, ours in self.statuses.items():
            key = _status_key(their)
            target = ours.strip().lower()
            if not key:
                raise MappingError("STATUS_HTTP_STATUSES: có giá trị trạng thái để trống")
            if target not in STATUSES:
                raise MappingError(
                    f"STATUS_HTTP_STATUSES: trạng thái {ours!r} (cho {their!r}) không hợp lệ "
                    f"(cần một trong: {', '.join(STATUSES)})")
            if statuses.get(key, target) != target:
                raise MappingError(
                    f"STATUS_HTTP_STATUSES: giá trị {their!r} được khai báo hai lần, khác nhau")
            statuses[key] = target
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "statuses", MappingProxyType(statuses))
        object.__setattr__(self, "_paths", MappingProxyType(paths))

    @classmethod
    def default(cls) -> HttpMapping:
        """Each of our fields at the top level under its own name; statuses as ours."""
        return cls({name: name for name in OUR_FIELDS}, {})

    @classmethod
    def parse(cls, fields: str, statuses: str) -> HttpMapping:
        """From STATUS_HTTP_FIELDS and STATUS_HTTP_STATUSES; blank means the defaults.

        fields:   "our=their.path,our2=path2"  e.g. "status=data.TrangThai,note=data.GhiChu"
        statuses: "THEIR=our,..."              e.g. "DANG_XU_LY=processing,TU_CHOI=rejected"
        Commas separate pairs (so their values cannot contain a comma); spaces around names
        and values are ignored; an empty pair (a trailing comma) is skipped.
        """
        field_map: dict[str, str] = {}
        if fields.strip():
            for item in fields.split(","):
                if not item.strip():
                    continue
                name, sep, path = item.partition("=")
                name = name.strip()
                if not sep or not name or not path.strip():
                    raise MappingError(
                        f"STATUS_HTTP_FIELDS: mục {item.strip()!r} không đúng dạng "
                        "trường=đường.dẫn (ví dụ status=data.TrangThai)")
                if name in field_map:
                    raise MappingError(
                        f"STATUS_HTTP_FIELDS: trường {name!r} được khai báo hai lần")
                field_map[name] = path.strip()
        else:
            field_map = {name: name for name in OUR_FIELDS}
        status_map: dict[str, str] = {}
        for item in statuses.split(","):
            if not item.strip():
                continue
            their, sep, ours = item.rpartition("=")  # their value may contain "=", ours not
            their, ours = their.strip(), ours.strip()
            if not sep or not their or not ours:
                raise MappingError(
                    f"STATUS_HTTP_STATUSES: mục {item.strip()!r} không đúng dạng "
                    "GIÁ_TRỊ=trạng_thái (ví dụ DANG_XU_LY=processing)")
            if their in status_map:
                raise MappingError(
                    f"STATUS_HTTP_STATUSES: giá trị {their!r} được khai báo hai lần")
            status_map[their] = ours
        return cls(field_map, status_map)

    def path(self, name: str) -> tuple[str, ...] | None:
        """The parsed path of one of our fields, or None if it is not read."""
        return self._paths.get(name)

    def status_of(self, value: Any) -> str:
        """One of STATUSES from their status value (a string or an integer code)."""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise StatusValueError(f"trạng thái kiểu {type(value).__name__} không hợp lệ")
        text = str(value)
        return parse_status(self.statuses.get(_status_key(text), text))


def _mask(code: str) -> str:
    """A receipt code for logs: enough to match a complaint, not enough to look it up."""
    code = code.strip()
    return "***" + code[-4:] if len(code) > 4 else "***"


def _scrub(text: str, code: str) -> str:
    """`text` with the code (plain or URL-quoted) masked: exception texts may hold the URL."""
    for form in {code, quote(code, safe=""), quote(code)}:
        if form:
            text = text.replace(form, _mask(code))
    return text


def _check_url(url: str) -> str:
    text = url.strip()
    if not text:
        raise MappingError("STATUS_HTTP_URL chưa được đặt (cần khi STATUS_SOURCE=http)")
    probe = text.replace(_CODE_PLACEHOLDER, "x")
    try:
        parts = urlsplit(probe)
        URL(probe)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise MappingError(
            f"STATUS_HTTP_URL {text!r} không hợp lệ (cần dạng "
            "https://may-chu/api/hoso/{code} hoặc https://may-chu/api/hoso)")
    return text


class HttpStatusSource:
    """A StatusSource asking a provincial case system over HTTP, one GET per lookup.

    URL: ``{code}`` in it is replaced by the URL-quoted code; without it, the code is sent
    as query parameter ``code``. The aiohttp session is created on first use inside the
    running event loop (rasa-sdk runs every action in one loop; a session made elsewhere
    would be bound to the wrong loop) and reused for connection pooling; if the loop
    changes (tests, a restarted loop) a new session is made. Call `close()` on shutdown.
    """

    name = "http"

    def __init__(
        self,
        url: str,
        token: str = "",
        timeout: float = 5.0,
        mapping: HttpMapping | None = None,
        retries: int = 1,
    ) -> None:
        self.url = _check_url(url)
        if not timeout > 0:  # ClientTimeout(total=0) would mean "wait forever"
            raise MappingError(f"STATUS_HTTP_TIMEOUT phải lớn hơn 0 (đang là {timeout!r})")
        self.timeout = float(timeout)
        self.mapping = mapping or HttpMapping.default()
        self.retries = max(0, int(retries))
        self._token = token.strip()
        if any(c in self._token for c in "\r\n"):  # would fail every request, not at startup
            raise MappingError("STATUS_HTTP_TOKEN không được chứa xuống dòng")
        self._templated = _CODE_PLACEHOLDER in self.url
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._auth_error_logged = False

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpStatusSource:
        """From STATUS_HTTP_*; MappingError (Vietnamese) for a blank/bad URL or mapping."""
        return cls(
            settings.status_http_url,
            settings.status_http_token,
            settings.status_http_timeout,
            HttpMapping.parse(settings.status_http_fields, settings.status_http_statuses),
        )

    # ------------------------------------------------------------------ session

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._session_loop is not loop:
            headers = {"Accept": "application/json", "User-Agent": "dvc-assistant"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers=headers,
                # Lookups for different citizens must not share server-side state.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._session, self._session_loop = session, loop
        return session

    async def close(self) -> None:
        """Close the session (if it belongs to this loop; one of a dead loop is dropped)."""
        session, self._session = self._session, None
        loop, self._session_loop = self._session_loop, None
        if session is None or session.closed:
            return
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - close() is always awaited
            current = None
        if current is loop:
            await session.close()

    # ------------------------------------------------------------------ lookup

    def _url_for(self, code: str) -> URL:
        if self._templated:
            return URL(self.url.replace(_CODE_PLACEHOLDER, quote(code, safe="")))
        return URL(self.url).update_query({"code": code})

    async def _get(self, url: URL) -> tuple[int, bytes]:
        async with self._client().get(url) as response:
            # Only a 200 body is read; others are discarded unread (never logged).
            body = await response.read() if response.status == 200 else b""
            return response.status, body

    async def lookup(self, code: str) -> ApplicationStatus | None:
        """The application with this normalized receipt code, None if they do not know it.

        Raises StatusUnavailable when the system is down, slow, refuses our token or answers
        something we cannot read or trust.
        """
        asked = code.strip()
        masked = _mask(asked)
        url = self._url_for(asked)
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                status, body = await self._get(url)
            except (asyncio.TimeoutError, TimeoutError):
                elapsed = time.monotonic() - started
                log.warning("status lookup %s: timed out after %.0f ms", masked, elapsed * 1000)
                raise StatusUnavailable(
                    f"case system did not answer within {self.timeout:g}s ({masked})") from None
            except aiohttp.ClientConnectionError as exc:
                elapsed = time.monotonic() - started
                reason = _scrub(f"{type(exc).__name__}: {exc}", asked)
                if attempt < self.retries:
                    attempt += 1
                    log.info("status lookup %s: %s after %.0f ms, retrying",
                             masked, reason, elapsed * 1000)
                    await asyncio.sleep(_BACKOFF)
                    continue
                log.warning("status lookup %s: %s after %.0f ms", masked, reason, elapsed * 1000)
                raise StatusUnavailable(
                    f"cannot reach case system ({masked}): {reason}") from None
            except aiohttp.ClientError as exc:
                reason = _scrub(f"{type(exc).__name__}: {exc}", asked)
                log.warning("status lookup %s: %s", masked, reason)
                raise StatusUnavailable(
                    f"case system request failed ({masked}): {reason}") from None
            elapsed = time.monotonic() - started
            if status in _RETRY_STATUSES and attempt < self.retries:
                attempt += 1
                log.info("status lookup %s: HTTP %d in %.0f ms, retrying",
                         masked, status, elapsed * 1000)
                await asyncio.sleep(_BACKOFF)
                continue
            break
        return self._answer(asked, masked, status, body, elapsed)

    def _answer(
        self, asked: str, masked: str, status: int, body: bytes, elapsed: float,
    ) -> ApplicationStatus | None:
        ms = elapsed * 1000
        if status == 404:
            log.debug("status lookup %s: HTTP 404 in %.0f ms (not found)", masked, ms)
            return None
        if status in (401, 403):
            if not self._auth_error_logged:
                self._auth_error_logged = True
                log.error(
                    "status lookup: the case system refused our token (HTTP %d): "
                    "STATUS_HTTP_TOKEN is wrong or expired; every status lookup fails "
                    "until it is fixed", status)
            else:
                log.debug("status lookup %s: HTTP %d (token refused)", masked, status)
            raise StatusUnavailable(f"case system refused the token (HTTP {status})")
        if status != 200:
            log.warning("status lookup %s: HTTP %d in %.0f ms", masked, status, ms)
            raise StatusUnavailable(f"case system answered HTTP {status} ({masked})")
        self._auth_error_logged = False  # a later refusal (token rotated) is news again
        try:
            document = json.loads(body)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            log.warning("status lookup %s: HTTP 200 in %.0f ms but not JSON (%d bytes)",
                        masked, ms, len(body))
            raise StatusUnavailable(f"case system answered non-JSON ({masked})") from None
        result = self._to_status(asked, masked, document)
        log.debug("status lookup %s: HTTP 200 in %.0f ms (%s)", masked, ms,
                  result.status if result else "not found")
        return result

    def _to_status(self, asked: str, masked: str, document: Any) -> ApplicationStatus | None:
        """Our record from their JSON, None for "not found" (see the module docstring)."""
        mapping = self.mapping
        status_path = mapping.path("status")
        assert status_path is not None  # HttpMapping requires it
        raw_status = _resolve(document, status_path)
        if raw_status is _EMPTY:
            return None
        if raw_status is _MISSING or raw_status is None:
            log.warning("status lookup %s: the reply has no status at %s",
                        masked, ".".join(status_path))
            raise StatusUnavailable(f"case system reply has no status ({masked})")
        try:
            status = mapping.status_of(raw_status)
        except StatusValueError as exc:  # their word is safe to log: operators map it
            raise self._unreadable("status", masked, str(exc)) from None

        receipt_code = asked
        theirs = self._raw(document, "receipt_code")
        if theirs is not None:
            if isinstance(theirs, (dict, list, bool)) or not str(theirs).strip():
                raise self._unreadable("receipt_code", masked, type(theirs).__name__)
            if str(theirs).strip().upper() != asked.upper():
                log.warning("status lookup %s: the reply is about another code (%s)",
                            masked, _mask(str(theirs)))
                raise StatusUnavailable(
                    f"case system answered about another application ({masked})")
            receipt_code = str(theirs).strip()

        values: dict[str, Any] = {}
        for name in _TEXT_FIELDS:
            value = self._raw(document, name)
            if isinstance(value, (dict, list)):
                raise self._unreadable(name, masked, type(value).__name__)
            values[name] = None if value is None else (str(value).strip() or None)
        for name in _TIME_FIELDS:
            value = self._raw(document, name)
            if isinstance(value, (dict, list, bool)):
                raise self._unreadable(name, masked, type(value).__name__)
            try:
                values[name] = parse_when(None if value is None else str(value))
            except StatusValueError as exc:
                raise self._unreadable(name, masked, str(exc)) from None
        return ApplicationStatus(receipt_code=receipt_code, status=status, **values)

    def _raw(self, document: Any, name: str) -> Any:
        """The value of one of our fields in their reply; None if not mapped or absent."""
        path = self.mapping.path(name)
        if path is None:
            return None
        value = _resolve(document, path)
        return None if isinstance(value, _Absent) else value

    @staticmethod
    def _unreadable(name: str, masked: str, detail: str) -> StatusUnavailable:
        """Log and build the error for a field we cannot read (the detail names no person:
        a status word, a date or a JSON type; free-text fields are never quoted)."""
        log.warning("status lookup %s: unreadable %s in the reply: %s", masked, name, detail)
        return StatusUnavailable(f"case system reply has an unreadable {name} ({masked})")
