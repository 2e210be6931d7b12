"""Operator accounts: argon2id password hashes, login with lock-out, DB-backed sessions.

argon2-cffi does the hashing (a well-kept library, memory-hard defaults); everything else is
a few queries. Failed logins lock an account for a while after `MAX_FAILED` attempts, so a
password cannot be guessed online; the message does not say whether the user exists.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bot.console.models import ROLES, AuditEntry, Operator, OperatorSession

MAX_FAILED = 5
LOCK_MINUTES = 15
MIN_PASSWORD = 10
_HASHER = PasswordHasher()
# Verified when the user does not exist, so both paths cost the same time.
_DUMMY_HASH = _HASHER.hash("not-a-real-password-" + secrets.token_hex(8))


class AccountError(ValueError):
    """An operator mistake (bad name, weak password, unknown user): message in Vietnamese."""


@dataclass(frozen=True)
class LoggedIn:
    """A valid session: who, in which role, and the form token for this session."""

    operator_id: int
    username: str
    display_name: str
    role: str
    csrf_token: str


def now() -> datetime:
    return datetime.now().replace(microsecond=0)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def audit(s: Session, actor: str, action: str, target: str | None = None,
          detail: dict | None = None, address: str | None = None) -> None:
    """Append one audit entry in the caller's transaction (the change and its record commit
    together or not at all)."""
    s.add(AuditEntry(at=now(), actor=actor, action=action, target=target,
                     detail=json.dumps(detail, ensure_ascii=False) if detail else None,
                     address=address))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"mật khẩu cần ít nhất {MIN_PASSWORD} ký tự")
    if password.strip() != password:
        raise AccountError("mật khẩu không được bắt đầu hay kết thúc bằng khoảng trắng")


def normalize_username(username: str) -> str:
    name = username.strip().lower()
    if not name or len(name) > 64 or not all(c.isalnum() or c in "._-" for c in name):
        raise AccountError("tên đăng nhập chỉ gồm chữ, số và . _ - (tối đa 64 ký tự)")
    return name


def add_operator(s: Session, username: str, password: str, role: str,
                 display_name: str | None = None, by: str = "cli") -> Operator:
    """Create an account; AccountError for a taken name, an unknown role, a weak password."""
    name = normalize_username(username)
    if role not in ROLES:
        raise AccountError(f"vai trò {role!r} không hợp lệ (cần: {', '.join(ROLES)})")
    check_password(password)
    if s.execute(select(Operator).where(Operator.username == name)).scalar_one_or_none():
        raise AccountError(f"tài khoản {name!r} đã có")
    op = Operator(username=name, display_name=(display_name or name).strip() or name,
                  role=role, password_hash=_HASHER.hash(password), active=True,
                  failed_logins=0, created_at=now(), password_changed_at=now())
    s.add(op)
    s.flush()
    audit(s, by, "operator.add", name, {"role": role})
    return op


def get_operator(s: Session, username: str) -> Operator:
    op = s.execute(select(Operator).where(
        Operator.username == username.strip().lower())).scalar_one_or_none()
    if op is None:
        raise AccountError(f"không có tài khoản {username!r}")
    return op


def set_password(s: Session, username: str, password: str, by: str = "cli") -> None:
    """New password; every session of the account ends."""
    check_password(password)
    op = get_operator(s, username)
    op.password_hash = _HASHER.hash(password)
    op.password_changed_at = now()
    op.failed_logins, op.locked_until = 0, None
    s.execute(delete(OperatorSession).where(OperatorSession.operator_id == op.id))
    audit(s, by, "operator.password", op.username)


def set_active(s: Session, username: str, active: bool, by: str = "cli") -> None:
    """Disable (ends every session) or re-enable an account."""
    op = get_operator(s, username)
    op.active = active
    if not active:
        s.execute(delete(OperatorSession).where(OperatorSession.operator_id == op.id))
    audit(s, by, "operator.enable" if active else "operator.disable", op.username)


def set_role(s: Session, username: str, role: str, by: str) -> None:
    if role not in ROLES:
        raise AccountError(f"vai trò {role!r} không hợp lệ (cần: {', '.join(ROLES)})")
    op = get_operator(s, username)
    old, op.role = op.role, role
    audit(s, by, "operator.role", op.username, {"from": old, "to": role})


def login(s: Session, username: str, password: str, session_hours: float,
          address: str | None = None) -> tuple[str, LoggedIn] | None:
    """A new session token for right credentials, else None (and the failure is counted).

    The same None for an unknown user, a wrong password, a disabled or locked account, so
    the page reveals nothing about which accounts exist.
    """
    try:
        name = normalize_username(username)
    except AccountError:
        name = ""
    op = s.execute(select(Operator).where(Operator.username == name)).scalar_one_or_none()
    if op is None:
        try:
            _HASHER.verify(_DUMMY_HASH, password)
        except VerificationError:
            pass
        audit(s, name or "?", "login.failed", name or None, {"reason": "unknown"}, address)
        return None
    t = now()
    if not op.active or (op.locked_until is not None and op.locked_until > t):
        audit(s, op.username, "login.failed", op.username,
              {"reason": "disabled" if not op.active else "locked"}, address)
        return None
    try:
        _HASHER.verify(op.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        op.failed_logins = (op.failed_logins or 0) + 1
        if op.failed_logins >= MAX_FAILED:
            op.locked_until = t + timedelta(minutes=LOCK_MINUTES)
            op.failed_logins = 0
        audit(s, op.username, "login.failed", op.username, {"reason": "password"}, address)
        return None
    if _HASHER.check_needs_rehash(op.password_hash):
        op.password_hash = _HASHER.hash(password)
    op.failed_logins, op.locked_until, op.last_login_at = 0, None, t
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    s.add(OperatorSession(token_hash=_token_hash(token), operator_id=op.id, csrf_token=csrf,
                          created_at=t, last_seen_at=t,
                          expires_at=t + timedelta(hours=session_hours)))
    s.execute(delete(OperatorSession).where(OperatorSession.expires_at < t))
    audit(s, op.username, "login", op.username, None, address)
    return token, LoggedIn(op.id, op.username, op.display_name, op.role, csrf)


def session_for(s: Session, token: str | None, session_hours: float) -> LoggedIn | None:
    """The live session of a cookie token (sliding expiry), or None."""
    if not token or len(token) > 200:
        return None
    row = s.get(OperatorSession, _token_hash(token))
    t = now()
    if row is None or row.expires_at <= t:
        return None
    op = s.get(Operator, row.operator_id)
    if op is None or not op.active:
        return None
    if (t - row.last_seen_at).total_seconds() > 60:  # not a write per request
        row.last_seen_at = t
        row.expires_at = t + timedelta(hours=session_hours)
    return LoggedIn(op.id, op.username, op.display_name, op.role, row.csrf_token)


def logout(s: Session, token: str | None, actor: str) -> None:
    if token:
        s.execute(delete(OperatorSession).where(OperatorSession.token_hash == _token_hash(token)))
        audit(s, actor, "logout", actor)
