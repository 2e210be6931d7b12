"""Operator accounts: argon2id password hashes, login with throttling, DB-backed sessions.

argon2-cffi does the hashing (a well-kept library, memory-hard defaults); everything else is
a few queries. Failed logins are throttled per client address and per (account, address)
(see `throttle_scope` for why not per account alone), every attempt costs exactly one
argon2 verification, and the answer never says whether the user exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.console.models import ROLES, AuditEntry, LoginFailure, Operator, OperatorSession

# The login throttle (`throttle_scope`): failures counted over a sliding window.
WINDOW_MINUTES = 15
MAX_FAILED = 5  # per account name and client address
ADDRESS_MAX_FAILED = 20  # per client address, whatever names it tries
ACCOUNT_MAX_FAILED = 50  # per account name from every address but its known ones
KNOWN_ADDRESS_DAYS = 30  # an address the account logged in from this recently is known
# Concurrent argon2 verifications per gateway process: each takes 64 MiB and up to 4 lanes;
# logins are rare, so two at a time is plenty and a flood of login posts cannot exhaust the
# memory or the cores that answer citizens (the rest wait their turn).
VERIFY_CONCURRENCY = 2
MIN_PASSWORD = 10
_HASHER = PasswordHasher()
# What a refused attempt (unknown name, disabled account, throttled) is checked against, so
# that every attempt spends the same argon2 time (same parameters as real hashes).
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
    """New password; every session of the account ends, its failed logins are forgotten."""
    check_password(password)
    op = get_operator(s, username)
    op.password_hash = _HASHER.hash(password)
    op.password_changed_at = now()
    op.failed_logins, op.locked_until = 0, None  # the previous release's lock-out, if any
    s.execute(delete(OperatorSession).where(OperatorSession.operator_id == op.id))
    # The new password also lifts the login throttle of this name (the admin's way to let a
    # locked-out operator in before the window ends).
    s.execute(delete(LoginFailure).where(LoginFailure.username == op.username))
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


def _valid_name(username: str) -> str:
    """The normalised name, or "" for input that cannot be an account name."""
    try:
        return normalize_username(username)
    except AccountError:
        return ""


def _failures(s: Session, since: datetime, *where: object) -> int:
    return s.execute(select(func.count(LoginFailure.id))
                     .where(LoginFailure.at > since, *where)).scalar_one()


def _known_address(s: Session, name: str, address: str, t: datetime) -> bool:
    """Whether `name` logged in from `address` lately (the audit log's "login" entries)."""
    return s.execute(select(AuditEntry.id).where(
        AuditEntry.action == "login", AuditEntry.actor == name, AuditEntry.address == address,
        AuditEntry.at > t - timedelta(days=KNOWN_ADDRESS_DAYS)).limit(1)).first() is not None


def throttle_scope(s: Session, name: str, address: str, t: datetime) -> str | None:
    """Why a login attempt from `address` for `name` is refused unchecked, or None.

    Each scope counts failures over the last `WINDOW_MINUTES`, a sliding window: a block
    ends by itself once the failures behind it age out, and throttled attempts are not
    counted, so a persistent guesser gets `MAX_FAILED` tries per window, not more.

    * "address": `ADDRESS_MAX_FAILED` failures from one address, whatever the names (one
      machine spraying passwords over many accounts).
    * "account+address": `MAX_FAILED` failures for this name from this address (online
      guessing of one account). This replaces the old per-account lock-out, which let
      anyone keep `admin` locked out for good with five wrong passwords every 15 minutes:
      now the guesser locks out only itself, the admin's own address is not affected.
    * "account": `ACCOUNT_MAX_FAILED` failures for this name from all addresses together (a
      guess spread over many machines), refused only from addresses the account has not
      logged in from in the last `KNOWN_ADDRESS_DAYS`. A botnet cannot then make
      thousands of guesses per window, and still cannot lock out the real operator, who
      logs in from a known address; a new address waits until the attack stops (or until
      an admin resets the password, which clears the failures).

    The decision depends only on the name typed, the address and the failures recorded,
    never on whether the account exists (unknown names are counted like real ones), so a
    throttled answer reveals nothing about which accounts exist.
    """
    since = t - timedelta(minutes=WINDOW_MINUTES)
    if _failures(s, since, LoginFailure.address == address) >= ADDRESS_MAX_FAILED:
        return "address"
    if _failures(s, since, LoginFailure.address == address,
                 LoginFailure.username == name) >= MAX_FAILED:
        return "account+address"
    if _failures(s, since, LoginFailure.username == name) >= ACCOUNT_MAX_FAILED \
            and not _known_address(s, name, address, t):
        return "account"
    return None


def throttled_names(s: Session) -> set[str]:
    """Account names some address is refused for now (the accounts page shows them)."""
    since = now() - timedelta(minutes=WINDOW_MINUTES)
    pairs = select(LoginFailure.username).where(LoginFailure.at > since).group_by(
        LoginFailure.username, LoginFailure.address).having(func.count() >= MAX_FAILED)
    names = select(LoginFailure.username).where(LoginFailure.at > since).group_by(
        LoginFailure.username).having(func.count() >= ACCOUNT_MAX_FAILED)
    return set(s.execute(pairs).scalars()) | set(s.execute(names).scalars())


@dataclass(frozen=True)
class Attempt:
    """A login attempt between its two transactions: what the password is checked against
    (the account's hash, or the dummy one when the attempt is refused anyway) and why it is
    refused ("unknown", "disabled", "throttled"; None: the password decides)."""

    name: str
    address: str
    operator_id: int | None
    password_hash: str
    refused: str | None
    scope: str | None = None  # which throttle, when refused is "throttled"

    @property
    def throttled(self) -> bool:
        return self.refused == "throttled"


def begin_login(s: Session, username: str, address: str) -> Attempt:
    """First transaction of a login: throttle check, and the attempt recorded as a failure
    before its password is checked.

    Recording first (the row is deleted again when the password is right) means parallel
    attempts see each other: a burst of simultaneous posts cannot all pass the check
    before any of them has failed.
    """
    name, t = _valid_name(username), now()
    s.execute(delete(LoginFailure).where(
        LoginFailure.at <= t - timedelta(minutes=WINDOW_MINUTES)))
    scope = throttle_scope(s, name, address, t)
    if scope is not None:
        return Attempt(name, address, None, _DUMMY_HASH, "throttled", scope)
    s.add(LoginFailure(at=t, username=name, address=address))
    op = s.execute(select(Operator).where(Operator.username == name)).scalar_one_or_none() \
        if name else None
    if op is None:
        return Attempt(name, address, None, _DUMMY_HASH, "unknown")
    if not op.active:
        return Attempt(name, address, None, _DUMMY_HASH, "disabled")
    return Attempt(name, address, op.id, op.password_hash, None)


def verify(password_hash: str, password: str) -> tuple[bool, str | None]:
    """(whether `password` matches, a new hash when the stored one has old parameters).

    Blocking and memory-hungry (argon2): call it through `verify_bounded`.
    """
    try:
        _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if _HASHER.check_needs_rehash(password_hash):
        return True, _HASHER.hash(password)
    return True, None


async def verify_bounded(gate: asyncio.Semaphore, password_hash: str,
                         password: str) -> tuple[bool, str | None]:
    """`verify` in a worker thread, at most `gate`'s count at a time (each takes 64 MiB;
    the event loop keeps serving while it runs)."""
    async with gate:
        return await asyncio.to_thread(verify, password_hash, password)


def _refusal(attempt: Attempt, ok: bool, op: Operator | None) -> str | None:
    """Why a checked attempt does not log in (the audit log's reason), or None."""
    if attempt.refused is not None:
        return attempt.refused
    if not ok:
        return "password"
    if op is None or not op.active:
        return "disabled"  # disabled while the password was being checked
    if op.password_hash != attempt.password_hash:
        return "password"  # a new password was set meanwhile: the old one is no good
    return None


def finish_login(s: Session, attempt: Attempt, ok: bool, new_hash: str | None,
                 session_hours: float, max_hours: float) -> tuple[str, LoggedIn] | None:
    """Second transaction of a login: a new session for a right password of an account
    that may log in, else None and an audit entry saying why (only the audit log tells an
    unknown name from a wrong password)."""
    op = s.get(Operator, attempt.operator_id) if attempt.operator_id is not None else None
    reason = _refusal(attempt, ok, op)
    if reason is not None or op is None:
        detail = {"reason": reason or "unknown"}
        if attempt.scope:
            detail["scope"] = attempt.scope
        audit(s, attempt.name or "?", "login.failed", attempt.name or None, detail,
              attempt.address)
        return None
    t = now()
    # This attempt's own row and the earlier failures of this name from this address.
    s.execute(delete(LoginFailure).where(LoginFailure.username == op.username,
                                         LoginFailure.address == attempt.address))
    if new_hash:
        op.password_hash = new_hash
    op.last_login_at = t
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    s.add(OperatorSession(token_hash=_token_hash(token), operator_id=op.id, csrf_token=csrf,
                          created_at=t, last_seen_at=t,
                          expires_at=t + timedelta(hours=min(session_hours, max_hours))))
    s.execute(delete(OperatorSession).where(OperatorSession.expires_at < t))
    audit(s, op.username, "login", op.username, None, attempt.address)
    return token, LoggedIn(op.id, op.username, op.display_name, op.role, csrf)


def session_for(s: Session, token: str | None, session_hours: float,
                max_hours: float) -> LoggedIn | None:
    """The live session of a cookie token, or None.

    Expiry slides by `session_hours` with use, but never past `max_hours` after the login:
    a stolen or forgotten session that is kept busy still ends, and the operator proves the
    password again at least once a working day.
    """
    if not token or len(token) > 200:
        return None
    row = s.get(OperatorSession, _token_hash(token))
    t = now()
    if row is None:
        return None
    end = row.created_at + timedelta(hours=max_hours)
    if row.expires_at <= t or end <= t:
        return None
    op = s.get(Operator, row.operator_id)
    if op is None or not op.active:
        return None
    if (t - row.last_seen_at).total_seconds() > 60:  # not a write per request
        row.last_seen_at = t
        row.expires_at = min(t + timedelta(hours=session_hours), end)
    return LoggedIn(op.id, op.username, op.display_name, op.role, row.csrf_token)


def logout(s: Session, token: str | None, actor: str) -> None:
    if token:
        s.execute(delete(OperatorSession).where(OperatorSession.token_hash == _token_hash(token)))
        audit(s, actor, "logout", actor)
