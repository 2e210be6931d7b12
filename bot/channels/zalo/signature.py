"""Verification of Zalo OA webhook signatures (`X-ZEvent-Signature`).

Anyone who learns the webhook URL can POST fake events to it, so every request must be
checked before it reaches the bot. Zalo signs each webhook request with

    X-ZEvent-Signature: mac=<hex>
    hex = lowercase hex SHA-256 of  app_id + body + timestamp + OA secret key

concatenated as bytes, where `body` is the raw request body exactly as received and
`timestamp` is the `timestamp` field of that JSON body (milliseconds since the epoch, sent
as a string). The key is the *OA secret key* shown for the linked Official Account, not the
App secret key. It is a plain SHA-256 over the concatenation, not an HMAC.

Sources (checked 2026-11):
- https://hainh.me/zalo-api-php-webhook-callback-official-account.html (also mirrored at
  https://tinhoc88.com/zalo-api---php-xu-ly-su-kien-webhook.html): compare the
  X-ZEvent-Signature header with SHA256 of, in order, the app id, the JSON body string, the
  timestamp taken from that JSON, and the OA secret key (explicitly not the App secret).
- Zalo's own webhook page (developers.zalo.me, Official Account API) is quoted as
  `mac = sha256(appId + data + timeStamp + OAsecretKey)` but was not in the corpus we could
  search, so it is not verified here. The `mac=` prefix of the header value is confirmed only
  by independent open-source integrations that strip a case-insensitive "mac=" before
  comparing and build sha256(app_id + raw_body + timestamp + oa_secret_key).

Because the body is hashed byte for byte, callers must pass the raw bytes read from the
request: parsing and re-serialising the JSON changes spacing/escaping and breaks the check.

The signed timestamp doubles as replay protection: a captured request stays valid forever
unless we also reject events whose timestamp is too far from our clock (`window_ms`).
Messages of `SignatureError` never contain the body (citizens' messages are personal data)
nor the secret; they are safe to log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

SIGNATURE_HEADER = "X-ZEvent-Signature"

_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")
# Milliseconds since the epoch; 16 digits is year ~2286, longer values are garbage.
_TIMESTAMP_RE = re.compile(r"[0-9]{1,16}")


class SignatureError(ValueError):
    """A webhook request failed verification; `reason` is a short machine code.

    Reasons: "missing" (no header), "malformed" (header not `mac=<64 hex>`),
    "no_timestamp" (body is not a JSON object with a usable `timestamp`), "mismatch"
    (signature differs), "stale" / "future" (timestamp outside the allowed window).
    The message is English, for logs, and never includes the body or the secret.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def expected_mac(app_id: str, body: bytes, timestamp: str, secret: str) -> str:
    """The signature Zalo computes: lowercase hex SHA-256 of app_id+body+timestamp+secret.

    `body` is used as raw bytes (never decoded) so that the hash matches what Zalo signed
    even if the JSON contains unusual spacing or escapes.
    """
    data = app_id.encode("utf-8") + bytes(body) + timestamp.encode("utf-8") + secret.encode(
        "utf-8"
    )
    return hashlib.sha256(data).hexdigest()


def parse_header(header: str | None) -> str:
    """Return the lowercase hex digest from a `mac=<hex>` header value.

    Tolerates surrounding whitespace, spaces around "=", any case of "mac" and upper-case
    hex digits (proxies and SDKs are not consistent); anything else is "malformed".
    """
    if header is None or not header.strip():
        raise SignatureError("missing", f"missing {SIGNATURE_HEADER} header")
    key, sep, value = header.strip().partition("=")
    value = value.strip()
    if not sep or key.strip().lower() != "mac" or not _HEX_RE.fullmatch(value):
        raise SignatureError("malformed", f"{SIGNATURE_HEADER} is not 'mac=<64 hex digits>'")
    return value.lower()


def event_timestamp(body: bytes) -> str:
    """The `timestamp` field of the JSON body, as the decimal text that was signed.

    Zalo sends it as a string of digits; an integer is accepted too (rendered with
    `str`). Booleans, floats, negative or non-ASCII digits are rejected.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # includes UnicodeDecodeError, JSONDecodeError
        raise SignatureError("no_timestamp", "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise SignatureError("no_timestamp", "body is not a JSON object")
    value = data.get("timestamp")
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise SignatureError("no_timestamp", "body has no string or integer 'timestamp'")
    if not _TIMESTAMP_RE.fullmatch(text):
        raise SignatureError("no_timestamp", "body 'timestamp' is not a millisecond count")
    return text


def verify(
    header: str | None,
    body: bytes,
    app_id: str,
    secret: str,
    now_ms: int,
    window_ms: int,
) -> int:
    """Check a webhook request and return its event timestamp (ms since the epoch).

    Order of checks: header present and well-formed, timestamp readable from the body,
    signature equal (constant-time, so response timing does not leak the digest), then
    freshness. Freshness is checked last so that "stale"/"future" are only reported for
    requests that really came from Zalo (useful to spot clock drift). A timestamp exactly
    `window_ms` away from `now_ms` is accepted; one millisecond more is rejected.

    `app_id` and `secret` come from our configuration, never from the body: the body's
    own `app_id` is attacker-controlled until verified. Raises `SignatureError`.
    """
    if window_ms < 0:
        raise ValueError("window_ms must be >= 0")
    supplied = parse_header(header)
    ts_text = event_timestamp(body)
    expected = expected_mac(app_id, body, ts_text, secret)
    if not hmac.compare_digest(supplied, expected):
        raise SignatureError("mismatch", "signature does not match")
    ts = int(ts_text)
    if now_ms - ts > window_ms:
        raise SignatureError(
            "stale", f"event timestamp is {now_ms - ts} ms old (window {window_ms} ms)"
        )
    if ts - now_ms > window_ms:
        raise SignatureError(
            "future", f"event timestamp is {ts - now_ms} ms ahead (window {window_ms} ms)"
        )
    return ts
