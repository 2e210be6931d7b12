"""ORM tables of this package (on the shared `Base`, created by bot.catalog.schema.upgrade).

A handover is one stretch of a conversation that a person (an operator of the console)
handles instead of the bot. It lives in the database, not in the gateway's memory, because
three processes touch it: the action server opens it, the gateway routes the citizen's
messages into it and delivers the agent's replies, and the console (today mounted on the
gateway, maybe elsewhere later) takes, answers and closes it.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy import text as sql_text
from sqlalchemy.orm import relationship

from bot.catalog.models import Base

# Statuses and kinds, spelled once (the columns are plain strings for SQLite and PostgreSQL).
WAITING, HELD, CLOSED = "waiting", "held", "closed"
OPEN_STATUSES = (WAITING, HELD)
CHANNELS = ("widget", "web", "zalo")
REASONS = ("requested", "fallback")
CITIZEN, AGENT, SYSTEM, BOT = "citizen", "agent", "system", "bot"
# What the citizen is shown: an agent's reply, or a note about the handover itself.
STAFF_AUTHORS = (AGENT, SYSTEM)


class Handover(Base):
    """One conversation handed to a person: waiting → held (an agent took it) → closed.

    `address` is what delivery needs: the widget session id, the Zalo user id, or the REST
    sender. `after_hours` records that it was opened outside working hours (the citizen was
    told when staff are back and invited to leave a message); the reason stays what caused
    it, so agents can tell "asked for a person" from "the bot failed twice" either way.
    `version` is the change counter value of its last change (see queue.changes_since).
    """

    __tablename__ = "handovers"

    id = Column(Integer, primary_key=True)
    sender_id = Column(String(128), nullable=False, index=True)
    channel = Column(String(16), nullable=False)  # "widget" | "web" | "zalo"
    address = Column(String(128), nullable=False)
    reason = Column(String(16), nullable=False)  # "requested" | "fallback"
    after_hours = Column(Boolean, nullable=False, default=False)
    status = Column(String(16), nullable=False, index=True)  # "waiting" | "held" | "closed"
    created_at = Column(DateTime, nullable=False)
    taken_at = Column(DateTime)
    taken_by = Column(String(64))
    closed_at = Column(DateTime)
    closed_by = Column(String(64))  # an operator's name, or "citizen"
    last_citizen_message_at = Column(DateTime)
    # The one "your message reached the staff" note of a waiting handover (not one per message).
    acknowledged_at = Column(DateTime)
    version = Column(Integer, nullable=False, default=0, index=True)

    messages = relationship("HandoverMessage", back_populates="handover",
                            order_by="HandoverMessage.id", cascade="all, delete-orphan")

    __table_args__ = (
        # At most one open handover per conversation, enforced by the database itself, so
        # that two processes opening at once cannot both succeed (SQLite and PostgreSQL both
        # have partial indexes).
        Index("uq_handovers_open_sender", "sender_id", unique=True,
              sqlite_where=sql_text("status != 'closed'"),
              postgresql_where=sql_text("status != 'closed'")),
    )


class HandoverMessage(Base):
    """One message of a handover's thread, in order.

    Authors: "citizen" (what they wrote; also the turns before the handover, copied from the
    conversation so the agent sees why), "bot" (the assistant's answers before it), "agent"
    (a reply, with the operator's name) and "system" (notes to the citizen: taken, closed).
    Agent and system messages are delivered to the citizen: `delivered_at` is set when a
    widget or REST client received one; a Zalo message is delivered with its `zalo_outbox`
    row (`outbox_id`, the last part of a split text). `external_id` makes storing a channel
    event idempotent (a Zalo event processed twice after a crash is stored once).
    """

    __tablename__ = "handover_messages"

    id = Column(Integer, primary_key=True)
    handover_id = Column(ForeignKey("handovers.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    author = Column(String(8), nullable=False)
    agent = Column(String(64))
    text = Column(Text, nullable=False)  # NFC
    created_at = Column(DateTime, nullable=False, index=True)
    delivered_at = Column(DateTime)
    outbox_id = Column(ForeignKey("zalo_outbox.id", ondelete="SET NULL"))
    external_id = Column(String(128), unique=True)

    handover = relationship("Handover", back_populates="messages")
