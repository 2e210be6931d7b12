"""JSON error replies for the gateway API.

API clients (the chat page, Zalo/Facebook adapters, the integration tests) parse every
reply as JSON, so an error must never be aiohttp's default HTML page or a traceback: the
middleware here turns routing errors (404/405/413) and unexpected exceptions on API paths
into `{"error": {"code", "message"}}` with a machine code and a Vietnamese message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("bot.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def apology_text(hotline: str) -> str:
    """What a citizen reads when the assistant cannot answer (Rasa down, an action server
    down): one text for the gateway and for Rasa (bot.rasa_runtime), always with the
    hotline."""
    return ("Xin lỗi, hệ thống trợ lý đang bận hoặc tạm gián đoạn. Bạn vui lòng thử lại sau "
            f"ít phút, hoặc gọi tổng đài {hotline} để được hỗ trợ.")

# Paths whose clients expect JSON; everything else (the chat page, /static/) keeps
# aiohttp's default handling.
JSON_PREFIXES = ("/api/", "/healthz")

_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "Yêu cầu không hợp lệ."),
    404: ("not_found", "Không tìm thấy địa chỉ API được yêu cầu."),
    405: ("method_not_allowed", "Phương thức HTTP này không được hỗ trợ cho địa chỉ này."),
    413: ("too_large", "Nội dung gửi lên quá lớn."),
    415: ("unsupported_media_type", "Định dạng nội dung không được hỗ trợ."),
}


CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def dumps(data: Any) -> str:
    """Readable Vietnamese in replies (and ~half the bytes of \\uXXXX escapes); still UTF-8
    JSON. Text from outside may hold a lone surrogate ("\\ud800" in a Zalo event's JSON),
    which UTF-8 cannot encode: such a reply is escaped instead of failing with a 500."""
    text = json.dumps(data, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data)
    return text


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """`web.json_response` with unescaped Vietnamese text."""
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


class ApiError(Exception):
    """A client error with an HTTP status, a machine code and a Vietnamese message.

    Raised by handlers and validators so that each check is one line and the reply shape
    is decided in exactly one place.
    """

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers  # e.g. Retry-After on a 429


async def read_body(request: web.Request, limit: int, message: str | None = None) -> bytes:
    """The whole body, at most `limit` bytes, else `ApiError` 413 (`message` overrides
    the text).

    Why not `request.content.read(n)`: it returns whatever is buffered (one network chunk),
    so a larger body came back cut short — a valid signed Zalo event failed its signature,
    a JSON body failed to parse. Neither Content-Length nor chunked encoding is trusted.
    """
    too_large = ApiError(413, "too_large",
                         message or f"Nội dung gửi lên quá lớn (tối đa {limit} byte).")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error envelope shared by every endpoint."""
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON error reply (UTF-8, Vietnamese text left readable)."""
    return json_response(error_body(code, message), status=status, headers=headers)


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(JSON_PREFIXES)


@web.middleware
async def json_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Convert `ApiError`, `HTTPException` and crashes on API paths into JSON errors."""
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, headers=exc.headers)
        if exc.status == 413:
            # The rest of the body was never read: aiohttp drains it, but a client that
            # reused this connection would wait behind megabytes of junk (up to 10 s).
            response.force_close()
        return response
    except web.HTTPException as exc:
        if not _wants_json(request) or exc.status < 400:
            raise
        code, message = _HTTP_CODES.get(
            exc.status, (f"http_{exc.status}", exc.reason or "Yêu cầu không thành công.")
        )
        headers = {}
        if "Allow" in exc.headers:  # 405 must keep telling the client what is allowed
            headers["Allow"] = exc.headers["Allow"]
        return error_response(exc.status, code, message, headers=headers)
    except Exception:
        if not _wants_json(request):
            raise
        # Log the traceback for operators; the client gets no internals.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            500, "internal_error", "Đã có lỗi không mong muốn. Bạn vui lòng thử lại sau."
        )


@web.middleware
async def security_headers_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Defence in depth for the chat page: no inline script, no third-party origins."""
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # Set on every reply (harmless on JSON): FileResponse only learns its content type
    # when it is sent, so filtering on text/html here would miss the chat page.
    response.headers.setdefault("Content-Security-Policy", CSP)
    return response
