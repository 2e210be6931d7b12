"""Operator accounts, their sessions and the audit log (tables on the shared Base).

Sessions live in the database, not in a signed cookie, so logging out, disabling an account
or changing a password ends every session at once; the cookie holds only a random token
whose hash is stored.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Text

from bot.catalog.models import Base

ROLES = ("admin", "trainer", "agent")


class Operator(Base):
    """A person who uses the console: a city's or ward's customer-service staff."""

    __tablename__ = "operators"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True)  # lower case
    display_name = Column(Text, nullable=False)
    role = Column(String(16), nullable=False)  # one of ROLES
    password_hash = Column(Text, nullable=False)  # argon2id
    active = Column(Boolean, nullable=False, default=True)
    # No longer read: the per-account lock-out became `LoginFailure` rows (issue 18). Kept
    # because a migration must not remove what the previous release still writes.
    failed_logins = Column(Integer, nullable=False, default=0)
    locked_until = Column(DateTime)
    created_at = Column(DateTime, nullable=False)
    last_login_at = Column(DateTime)
    password_changed_at = Column(DateTime)


class OperatorSession(Base):
    """A logged-in browser: the cookie carries a token, the row keeps its SHA-256."""

    __tablename__ = "operator_sessions"

    token_hash = Column(String(64), primary_key=True)
    operator_id = Column(ForeignKey("operators.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False)
    last_seen_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False)


class LoginFailure(Base):
    """One failed console login: the name typed (normalised; "" when not a valid name), the
    client address and when. The login throttle counts these rows over a sliding window
    (bot/console/accounts.py), so every gateway replica sharing the database sees the same
    counts; rows older than the window are deleted by the next attempt."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_address_at", "address", "at"),
        Index("ix_login_failures_username_at", "username", "at"),
    )

    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, index=True)
    username = Column(String(64), nullable=False)
    address = Column(String(64), nullable=False)


class AuditEntry(Base):
    """Who changed what, when: every change made through the console or `bot operator`."""

    __tablename__ = "audit_log"

    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, index=True)
    actor = Column(String(64), nullable=False)  # operator username, or "cli:<user>"
    action = Column(String(64), nullable=False, index=True)  # "login", "nlu.correct", …
    target = Column(Text)  # what it acted on: a message, a model id, a procedure code
    detail = Column(Text)  # JSON with the change
    address = Column(String(64))  # client address of the request
