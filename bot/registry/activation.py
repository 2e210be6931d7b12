"""Activation: put a model into the running Rasa server(s) without a restart, or roll back.

Rasa 3.6 (run with `--enable-api`) loads a model on `PUT /model {"model_file": path}` and
answers `GET /status` with the loaded `model_file` (its file name) and `model_id` (from the
model's metadata.json). The new agent keeps the server's lock store and opens the same
tracker store, so a conversation in progress continues on the new model: the stack keeps
conversations in the SQL tracker store of DATABASE_URL (bot/stack.py), not in the model.
While a server loads a model (about 20 s here) it holds its messages and answers them after;
with several servers (RASA_URLS) they are swapped one after the other.

The order is: the gate (refuse unless forced), the activation lock (one activation at a
time), every server's current model, the swaps (each verified through /status; on a failure
the servers already swapped are put back and nothing is recorded), then the database: the
model becomes `active`, the previous one `retired` and remembered for rollback, and the
history gets a line. With no server running, only the database changes, and `bot run`
starts the active model next time.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.catalog.db import session_factory
from bot.config import Settings
from bot.registry import locks
from bot.registry.evaluation import gate_for
from bot.registry.models import ACTIVE, ModelVersion
from bot.registry.registry import (
    ModelInfo,
    RegistryError,
    dumps,
    effective_active,
    file_of,
    info_of,
    resolve,
    set_active,
    sync,
)

SWAP_TIMEOUT = 600.0  # seconds for one server to load a model (PUT /model is synchronous)
STATUS_TIMEOUT = 60.0  # seconds to wait for /status to report the new model afterwards
ACTIVATION_STALE_AFTER = 1800.0  # an activation lock older than this belongs to a dead process
# Rasa refused RASA_TOKEN: `bot run` without RASA_TOKEN makes its own token, which only the
# processes it started (its console) know; a terminal's `bot model activate` needs the same.
UNAUTHORIZED = ("Máy chủ Rasa từ chối mã truy cập (RASA_TOKEN). Đặt RASA_TOKEN giống như ở "
                "máy chủ (với `bot run`: đặt RASA_TOKEN trước khi chạy), hoặc kích hoạt trong "
                "bảng điều khiển. Máy chủ: ")


class GateRefused(RegistryError):
    """The candidate is worse than the serving model (or was not evaluated); `gate` says why."""

    def __init__(self, model_id: str, gate: dict[str, Any]) -> None:
        reasons = "\n".join(f"  - {r}" for r in gate.get("reasons") or [])
        super().__init__(f"Không kích hoạt {model_id}: mô hình không qua ngưỡng so sánh với "
                         f"mô hình đang dùng.\n{reasons}\nDùng --force nếu vẫn muốn kích hoạt.")
        self.model_id = model_id
        self.gate = gate


class ActivationError(RegistryError):
    """A Rasa server refused or failed the swap; the servers already swapped were restored."""


@dataclass(frozen=True)
class ServerResult:
    """What happened on one Rasa server."""

    url: str
    outcome: str  # swapped | unchanged | unreachable | restored | failed
    before: str | None = None  # model file name before
    after: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class ActivationResult:
    """The outcome of activate / rollback, for the CLI and the console."""

    model: ModelInfo
    previous_id: str | None
    kind: str  # activate | force | rollback
    gate: dict[str, Any]
    servers: list[ServerResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model.as_dict(), "previous_id": self.previous_id,
                "kind": self.kind, "gate": self.gate,
                "servers": [asdict(s) for s in self.servers], "warnings": self.warnings}


def rasa_servers(settings: Settings) -> list[str]:
    """The Rasa servers to swap (RASA_URLS, else RASA_URL), without trailing slashes."""
    urls = list(settings.rasa_urls) or [settings.rasa_url]
    return [u.rstrip("/") for u in urls if u.strip()]


def _with_token(url: str, token: str) -> str:
    """`url` with Rasa's API token (RASA_TOKEN): Rasa's `--auth-token` checks the `token`
    query parameter. Only the request carries it: messages and logs name the server's
    base URL, never this one."""
    if not token:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode({'token': token})}"


def _request(method: str, url: str, body: dict | None, timeout: float,
             token: str = "") -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(_with_token(url, token), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.strip() else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw.strip() else None
        except json.JSONDecodeError:
            return exc.code, raw.decode(errors="replace")[:500]


def server_status(url: str, timeout: float = 10.0, token: str = "") -> dict[str, Any] | None:
    """Rasa's /status ({"model_file", "model_id"}); None when the server does not answer.

    A server without a loaded model answers 409: reachable, with no model; one that refuses
    `token` answers 401 (`http_status`).
    """
    try:
        code, body = _request("GET", f"{url}/status", None, timeout, token)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if code == 200 and isinstance(body, dict):
        return body
    return {"model_file": None, "model_id": None, "http_status": code}


def _matches(status: dict[str, Any] | None, path: Path, rasa_model_id: str | None) -> bool:
    if not status or status.get("model_file") != path.name:
        return False
    return rasa_model_id is None or status.get("model_id") == rasa_model_id


def load_model(url: str, path: Path, rasa_model_id: str | None,
               timeout: float = SWAP_TIMEOUT, token: str = "") -> None:
    """PUT the model into one server and wait until /status reports it; ActivationError if not.

    The path must be valid on the server's machine (same host or shared storage).
    """
    try:
        code, body = _request("PUT", f"{url}/model", {"model_file": str(path.resolve())},
                              timeout, token)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ActivationError(f"{url}: không nạp được mô hình ({exc})") from exc
    if code not in (200, 204):
        message = body.get("message") if isinstance(body, dict) else body
        raise ActivationError(f"{url}: Rasa từ chối nạp mô hình (HTTP {code}: {message})")
    deadline = time.monotonic() + STATUS_TIMEOUT
    status = None
    while time.monotonic() < deadline:
        status = server_status(url, token=token)
        if _matches(status, path, rasa_model_id):
            return
        time.sleep(0.5)
    raise ActivationError(f"{url}: sau khi nạp, máy chủ vẫn báo mô hình "
                          f"{(status or {}).get('model_file')}")


def _swap_all(settings: Settings, path: Path, rasa_model_id: str | None,
              statuses: dict[str, dict | None]) -> list[ServerResult]:
    """Swap every reachable server; on a failure restore the swapped ones and raise."""
    results: list[ServerResult] = []
    for url, status in statuses.items():
        before = (status or {}).get("model_file")
        if status is None:
            results.append(ServerResult(url, "unreachable"))
            continue
        if _matches(status, path, rasa_model_id):
            results.append(ServerResult(url, "unchanged", before, path.name))
            continue
        try:
            load_model(url, path, rasa_model_id, token=settings.rasa_token)
        except ActivationError as exc:
            restored = _restore(settings, results)
            lines = "\n".join(f"  - {r.url}: {r.outcome} {r.detail or ''}" for r in restored)
            raise ActivationError(f"Kích hoạt thất bại, đã trả các máy chủ về mô hình cũ.\n"
                                  f"{exc}" + (f"\n{lines}" if lines else "")) from exc
        results.append(ServerResult(url, "swapped", before, path.name))
    return results


def _restore(settings: Settings, results: list[ServerResult]) -> list[ServerResult]:
    """Put the servers swapped so far back on the model each had before."""
    restored = []
    for result in results:
        if result.outcome != "swapped" or not result.before:
            continue
        old = settings.models_dir / result.before
        try:
            load_model(result.url, old, None, token=settings.rasa_token)
            restored.append(ServerResult(result.url, "restored", result.after, result.before))
        except ActivationError as exc:
            restored.append(ServerResult(result.url, "failed", result.after, result.before,
                                         detail=str(exc)))
    return restored


def activate(ref: str, settings: Settings, by: str, force: bool = False,
             skip_unreachable: bool = False, kind: str | None = None) -> ActivationResult:
    """Make a model serve: gate, hot swap on every Rasa server, record. See the module doc.

    Raises GateRefused (worse or not evaluated, unless `force`), ActivationError (a server
    failed; the others were restored), RegistryError (unknown id, missing file, a server
    down while others answer unless `skip_unreachable`, another activation running).
    """
    sync(settings)
    factory = session_factory(settings.database_url)
    with factory() as s:
        row = resolve(s, settings, ref)
        model_id, path, rasa_model_id = row.id, file_of(settings, row), row.rasa_model_id
        if not path.is_file():
            raise RegistryError(f"Thiếu tệp mô hình {path}: không kích hoạt được {model_id}.")
        if row.error:
            raise RegistryError(f"Tệp mô hình {model_id} hỏng: {row.error}")
        current = effective_active(s, settings)
        already = current is not None and current.id == model_id and row.status == ACTIVE
        gate = gate_for(s, settings, row)
        if not already:
            row.gate = dumps(gate)
            s.commit()
    if not gate["passed"] and not force and not already:
        raise GateRefused(model_id, gate)
    kind = kind or ("activate" if gate["passed"] else "force")

    holder = f"activation:{model_id}:{by}"
    try:
        locks.acquire(settings.database_url, locks.ACTIVATION, holder,
                      stale_after=ACTIVATION_STALE_AFTER)
    except locks.LockBusy as exc:
        raise RegistryError(f"Đang có một lần kích hoạt khác ({exc.info.holder}); thử lại sau "
                            "ít phút.") from exc
    try:
        statuses = {url: server_status(url, token=settings.rasa_token)
                    for url in rasa_servers(settings)}
        refused = [url for url, st in statuses.items() if st and st.get("http_status") == 401]
        if refused:
            raise RegistryError(UNAUTHORIZED + ", ".join(refused))
        down = [url for url, st in statuses.items() if st is None]
        warnings = []
        if down and len(down) < len(statuses) and not skip_unreachable:
            raise RegistryError("Máy chủ Rasa không trả lời: " + ", ".join(down) + ". Sửa máy "
                                "chủ đó rồi kích hoạt lại (hoặc --skip-unreachable để bỏ qua).")
        if down:
            warnings.append("Máy chủ Rasa không chạy: " + ", ".join(down) + ". Mô hình sẽ "
                            "được dùng ở lần khởi động sau (bot run khởi động mô hình đang "
                            "dùng).")
        servers = _swap_all(settings, path, rasa_model_id, statuses)
        with factory() as s:
            row = s.get(ModelVersion, model_id)
            previous_id = None
            if not already:
                previous_id = set_active(s, settings, row, by=by, kind=kind,
                                         servers=[asdict(r) for r in servers],
                                         gate_passed=bool(gate["passed"]))
            else:
                previous_id = row.previous_active_id
                warnings.append(f"{model_id} đã là mô hình đang dùng.")
            s.commit()
            info = info_of(s, settings, row)
    finally:
        locks.release(settings.database_url, locks.ACTIVATION, holder)
    return ActivationResult(model=info, previous_id=previous_id, kind=kind, gate=gate,
                            servers=servers, warnings=warnings)


def rollback(settings: Settings, by: str) -> ActivationResult:
    """Serve again the model that served before the current one.

    It was serving before, so the gate is not asked again (the test file may have changed
    since); servers that do not answer are skipped, because a rollback is what one does
    when things are already going wrong. Rolling back twice returns to where one started.
    """
    sync(settings)
    with session_factory(settings.database_url)() as s:
        current = effective_active(s, settings)
        if current is None:
            raise RegistryError("Chưa có mô hình nào đang dùng: không có gì để quay lại.")
        previous_id = current.previous_active_id
        if not previous_id:
            raise RegistryError(f"Mô hình đang dùng {current.id} chưa thay thế mô hình nào: "
                                "không có mô hình trước đó để quay lại.")
        previous = s.get(ModelVersion, previous_id)
        if previous is None or not file_of(settings, previous).is_file():
            raise RegistryError(f"Mô hình trước đó {previous_id} không còn tệp trong "
                                f"{settings.models_dir}: không quay lại được.")
    return activate(previous_id, settings, by=by, force=True, skip_unreachable=True,
                    kind="rollback")
