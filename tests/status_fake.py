"""A fake provincial case system (một cửa điện tử) over real HTTP, for the HTTP status source.

`FakeCaseSystem` is an aiohttp app on 127.0.0.1 (a free port) answering status lookups in a
shape like Vietnamese provincial systems' (``{"data": {"MaHoSo": ..., "TrangThai":
"DANG_XU_LY", "NgayTiepNhan": "12/03/2025 08:30:00", ...}}``), behind a bearer token. It runs
either in the test's own event loop or in a thread with a loop of its own, so a separate
process (the Rasa action server in an integration test) can call it too:

    async with FakeCaseSystem() as fake:          # in the test's loop (or astart/astop)
        source = HttpStatusSource(fake.url, fake.token, mapping=HttpMapping.parse(
            fake.fields, fake.statuses))
        fake.fail_next(1, 503)
        ...
        assert fake.request_count == 2

    with FakeCaseSystem() as fake:                # in a background thread (or start/stop)
        env = fake.env()                          # STATUS_SOURCE=http, STATUS_HTTP_* for it
        ...

Endpoints (GET): ``/api/hoso/{code}`` (`url`, the ``{code}`` template form), ``/api/hoso?code=``
(`query_url`), ``/flat/hoso/{code}`` (`flat_url`: our own field names and status words at
the top level, for the source's default mapping). Unknown code: 404 with a JSON message, or
``200 {"data": null, ...}`` with `not_found_as_null`. Wrong/missing token: 401.

Knobs (plain attributes/methods, safe to flip from the test's thread while the server runs in
its own): `fail_next(n, status)`, `delay` (seconds before answering), `garbage` (an HTML 200),
`wrong_code` (answers with another application's code), `not_found_as_null`. Records:
`request_count`, `last_path`, `last_query`, `last_code`, `last_authorization`.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections import deque
from typing import Any

from aiohttp import web

from tests.loopback import serve

SAMPLE_CODE = "000.00.20.H26-250312-0045"  # processing
DONE_CODE = "000.00.20.H26-250305-0012"  # result handed back
SUPPLEMENT_CODE = "000.00.20.H26-250310-0031"  # waiting for the citizen to add a document
OTHER_CODE = "000.00.20.H26-250101-0007"  # what `wrong_code` answers with
TOKEN = "fake-case-token"

# The source's configuration for this fake's shape (also the README example).
FIELDS = (
    "receipt_code=data.MaHoSo,procedure_code=data.MaTTHC,agency=data.CoQuan,"
    "status=data.TrangThai,received_at=data.NgayTiepNhan,due_at=data.NgayHenTra,"
    "finished_at=data.NgayKetThuc,note=data.GhiChu"
)
STATUSES = (
    "MOI_TIEP_NHAN=received,DANG_XU_LY=processing,CHO_BO_SUNG=need_supplement,"
    "DA_CO_KET_QUA=done,TU_CHOI=rejected,DA_TRA_KET_QUA=returned"
)
# Their status words -> ours, for the flat endpoint.
_OURS = dict(pair.split("=") for pair in STATUSES.split(","))

API_PATH = "/api/hoso"
FLAT_PATH = "/flat/hoso"


def sample_applications() -> dict[str, dict[str, Any]]:
    """A few applications in the fake's shape (the value of ``data``), keyed by code."""
    return {
        SAMPLE_CODE: {
            "MaHoSo": SAMPLE_CODE,
            "MaTTHC": "1.001612",
            "TenTTHC": "Đăng ký hộ kinh doanh",
            "CoQuan": "UBND phường Tràng Tiền",
            "TrangThai": "DANG_XU_LY",
            "NgayTiepNhan": "12/03/2025 08:30:00",
            "NgayHenTra": "19/03/2025 17:00:00",
            "NgayKetThuc": None,
            "GhiChu": "Hồ sơ đang được thẩm định",
        },
        DONE_CODE: {
            "MaHoSo": DONE_CODE,
            "MaTTHC": "2.000986",
            "TenTTHC": "Cấp bản sao trích lục hộ tịch",
            "CoQuan": "UBND phường Tràng Tiền",
            "TrangThai": "DA_TRA_KET_QUA",
            "NgayTiepNhan": "05/03/2025 09:00:00",
            "NgayHenTra": "06/03/2025 17:00:00",
            "NgayKetThuc": "2025-03-06T10:15:00",
            "GhiChu": None,
        },
        SUPPLEMENT_CODE: {
            "MaHoSo": SUPPLEMENT_CODE,
            "MaTTHC": "1.004227",
            "TenTTHC": "Cấp giấy phép xây dựng",
            "CoQuan": "UBND quận Hoàn Kiếm",
            "TrangThai": "CHO_BO_SUNG",
            "NgayTiepNhan": "10/03/2025",
            "NgayHenTra": "24/03/2025",
            "NgayKetThuc": None,
            "GhiChu": "Bổ sung bản vẽ thiết kế có chữ ký của chủ đầu tư",
        },
    }


class FakeCaseSystem:
    """A provincial case system's status endpoint, faked on a loopback port."""

    def __init__(self, token: str = TOKEN, host: str = "127.0.0.1") -> None:
        self.token = token
        self.host = host
        self.fields = FIELDS
        self.statuses = STATUSES
        self.applications: dict[str, dict[str, Any]] = sample_applications()
        # Knobs.
        self.failures: deque[int] = deque()
        self.delay = 0.0
        self.garbage = False
        self.wrong_code = False
        self.not_found_as_null = False
        # Records.
        self.request_count = 0
        self.last_path: str | None = None
        self.last_query: dict[str, str] = {}
        self.last_code: str | None = None
        self.last_authorization: str | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None  # wakes handlers sleeping on `delay`
        self._sleepers: set[asyncio.Future[bool]] = set()

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeCaseSystem is not started")
        return f"http://{self.host}:{self._port}"

    @property
    def url(self) -> str:
        """The ``{code}`` template form: STATUS_HTTP_URL for the Vietnamese shape."""
        return f"{self.base_url}{API_PATH}/{{code}}"

    @property
    def query_url(self) -> str:
        """The same endpoint with the code as query parameter ``code``."""
        return f"{self.base_url}{API_PATH}"

    @property
    def flat_url(self) -> str:
        """Our own field names and status words at the top level (the default mapping)."""
        return f"{self.base_url}{FLAT_PATH}/{{code}}"

    def env(self) -> dict[str, str]:
        """Settings pointing the bot's HTTP status source at this fake."""
        return {
            "STATUS_SOURCE": "http",
            "STATUS_HTTP_URL": self.url,
            "STATUS_HTTP_TOKEN": self.token,
            "STATUS_HTTP_FIELDS": self.fields,
            "STATUS_HTTP_STATUSES": self.statuses,
        }

    # ------------------------------------------------------------------ in the caller's loop

    async def astart(self) -> FakeCaseSystem:
        """Serve from the running event loop (an async test)."""
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_get(API_PATH, self._vn)
        app.router.add_get(API_PATH + "/{code}", self._vn)
        app.router.add_get(FLAT_PATH + "/{code}", self._flat)
        # No access log: it would print full receipt codes into the tests' log captures.
        self._runner, self._port = await serve(app, self.host, access_log=None)
        return self

    async def astop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
            # Let the woken handlers finish (a client that timed out has already gone, so
            # the server's own shutdown no longer waits for them).
            await asyncio.gather(*self._sleepers, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._port = None

    async def __aenter__(self) -> FakeCaseSystem:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()

    # ------------------------------------------------------------------ in a thread

    def start(self) -> FakeCaseSystem:
        """Serve from a background thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("FakeCaseSystem is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self._run_loop, args=(loop,), name="fake-case-system", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.astart(), loop).result(timeout=10)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            raise
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Stop the thread started by `start()` (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.astop(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def __enter__(self) -> FakeCaseSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ knobs

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` requests get HTTP `status` with a plain-text body."""
        self.failures.extend([status] * n)

    def set_status(self, code: str, value: Any) -> None:
        """Change one application's ``TrangThai`` (any JSON value, e.g. None or "LA")."""
        self.applications[code]["TrangThai"] = value

    def reset(self) -> None:
        """Knobs off and records cleared (the applications are kept)."""
        self.failures.clear()
        self.delay = 0.0
        self.garbage = self.wrong_code = self.not_found_as_null = False
        self.request_count = 0
        self.last_path = self.last_code = self.last_authorization = None
        self.last_query = {}

    # ------------------------------------------------------------------ handlers

    async def _answer(self, request: web.Request) -> web.Response | dict[str, Any]:
        """Common part: records, knobs, token, lookup; a response, or the found record."""
        self.request_count += 1
        self.last_path = request.path
        self.last_query = dict(request.query)
        code = request.match_info.get("code") or request.query.get("code") or ""
        self.last_code = code
        self.last_authorization = request.headers.get("Authorization")
        if self.delay and self._stopping is not None:
            # A sleep that stopping cuts short, so no handler outlives the server.
            sleeper = asyncio.ensure_future(self._sleep(self._stopping, self.delay))
            self._sleepers.add(sleeper)
            sleeper.add_done_callback(self._sleepers.discard)
            await sleeper
            if self._stopping.is_set():
                return web.Response(status=503, text="fake stopping")
        if self.failures:
            return web.Response(status=self.failures.popleft(), text="fake failure")
        if self.last_authorization != f"Bearer {self.token}":
            return web.json_response({"message": "Unauthorized"}, status=401)
        if self.garbage:
            return web.Response(
                text="<html><body>Hệ thống đang bảo trì</body></html>", content_type="text/html")
        record = self.applications.get(code.strip().upper())
        if record is None:
            if self.not_found_as_null:
                return web.json_response({"data": None, "message": "Không tìm thấy hồ sơ"})
            return web.json_response({"message": "Không tìm thấy hồ sơ"}, status=404)
        record = copy.deepcopy(record)
        if self.wrong_code:
            record["MaHoSo"] = OTHER_CODE
        return record

    @staticmethod
    async def _sleep(stopping: asyncio.Event, seconds: float) -> bool:
        try:
            await asyncio.wait_for(stopping.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def _vn(self, request: web.Request) -> web.Response:
        answer = await self._answer(request)
        if isinstance(answer, web.Response):
            return answer
        return web.json_response({"success": True, "message": "", "data": answer})

    async def _flat(self, request: web.Request) -> web.Response:
        answer = await self._answer(request)
        if isinstance(answer, web.Response):
            return answer
        status = answer["TrangThai"]
        return web.json_response({
            "receipt_code": answer["MaHoSo"],
            "procedure_code": answer["MaTTHC"],
            "agency": answer["CoQuan"],
            "status": _OURS.get(status, status) if isinstance(status, str) else status,
            "received_at": answer["NgayTiepNhan"],
            "due_at": answer["NgayHenTra"],
            "finished_at": answer["NgayKetThuc"],
            "note": answer["GhiChu"],
        })
