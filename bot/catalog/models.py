"""SQLAlchemy ORM models of the procedure catalog (SQLAlchemy 1.4, 2.0-style usage).

One procedure has submission channels (each with its own processing time and fee),
required documents, steps, legal basis documents, colloquial aliases and fee rules.
Fees are integers in đồng; `None` means the source does not say, never "free".
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()

CHANNELS = ("online", "in_person", "post")
CHANNEL_LABELS = {"online": "Trực tuyến", "in_person": "Trực tiếp", "post": "Qua bưu chính"}


class Procedure(Base):
    """An administrative procedure identified by the portal's code (e.g. "1.001193")."""

    __tablename__ = "procedures"

    code = Column(String(32), primary_key=True)
    name = Column(Text, nullable=False)
    short_name = Column(Text)
    name_folded = Column(Text, nullable=False, index=False)
    field = Column(Text)
    level = Column(Text)
    agency = Column(Text)
    authority = Column(Text)
    url = Column(Text)
    summary = Column(Text)
    result = Column(Text)
    online_howto = Column(Text)
    audience = Column(Text)  # đối tượng thực hiện
    conditions = Column(Text)  # yêu cầu, điều kiện
    decision = Column(Text)  # the decision that published the procedure ("5568/QĐ-BCA")
    raw = Column(Text)  # JSON: the source's unparsed table texts, kept beside parsed fields
    filled = Column(Text)  # fields a partial source (portal list) filled in: "agency,field"
    # Who sets the fee: "provincial_council" when the national catalog says the provincial
    # People's Council decides it (only then can a province's override apply); else None.
    fee_set_by = Column(String(32))
    source = Column(String(64), nullable=False, default="seed")

    channels = relationship(
        "Channel", back_populates="procedure", cascade="all, delete-orphan",
        order_by="Channel.position",
    )
    documents = relationship(
        "Document", back_populates="procedure", cascade="all, delete-orphan",
        order_by="Document.position",
    )
    steps = relationship(
        "Step", back_populates="procedure", cascade="all, delete-orphan", order_by="Step.position"
    )
    legal_basis = relationship(
        "LegalBasis", back_populates="procedure", cascade="all, delete-orphan",
        order_by="LegalBasis.position",
    )
    aliases = relationship("Alias", back_populates="procedure", cascade="all, delete-orphan")
    fee_rules = relationship("FeeRule", back_populates="procedure", cascade="all, delete-orphan")

    @property
    def display_name(self) -> str:
        """The short human name when we have one, else the official name."""
        return self.short_name or self.name


class CatalogCounter(Base):
    """Named counters about the catalog as a whole, e.g. its revision.

    `revision` grows by one with every load that changed something, so long-running
    processes (gateway, action server) can tell cheaply that their search index is stale.
    """

    __tablename__ = "catalog_counters"

    key = Column(String(64), primary_key=True)
    number = Column(Integer, nullable=False, default=0)


class Channel(Base):
    """A way to submit (online / in person / post) with its processing time and fee."""

    __tablename__ = "channels"

    id = Column(Integer, primary_key=True)
    procedure_code = Column(ForeignKey("procedures.code", ondelete="CASCADE"), index=True)
    position = Column(Integer, nullable=False, default=0)
    channel = Column(String(16), nullable=False)
    time_value = Column(Float)
    time_unit = Column(String(32))
    time_text = Column(Text)
    fee = Column(Integer)  # đồng; None = unknown
    fee_text = Column(Text)
    note = Column(Text)

    procedure = relationship("Procedure", back_populates="channels")


class Document(Base):
    """One required paper of the application file."""

    __tablename__ = "documents"

    id = Column(Integer, primary_key=True)
    procedure_code = Column(ForeignKey("procedures.code", ondelete="CASCADE"), index=True)
    position = Column(Integer, nullable=False, default=0)
    name = Column(Text, nullable=False)
    copies = Column(Text)
    case = Column(Text)

    procedure = relationship("Procedure", back_populates="documents")


class Step(Base):
    """One step of how the procedure is carried out."""

    __tablename__ = "steps"

    id = Column(Integer, primary_key=True)
    procedure_code = Column(ForeignKey("procedures.code", ondelete="CASCADE"), index=True)
    position = Column(Integer, nullable=False, default=0)
    text = Column(Text, nullable=False)

    procedure = relationship("Procedure", back_populates="steps")


class LegalBasis(Base):
    """A legal document the procedure rests on (number + title)."""

    __tablename__ = "legal_basis"

    id = Column(Integer, primary_key=True)
    procedure_code = Column(ForeignKey("procedures.code", ondelete="CASCADE"), index=True)
    position = Column(Integer, nullable=False, default=0)
    number = Column(Text)
    title = Column(Text)

    procedure = relationship("Procedure", back_populates="legal_basis")


class Alias(Base):
    """A colloquial name citizens use ("làm lại cccd"); `folded` is the accent-free key."""

    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("procedure_code", "folded"),)

    id = Column(Integer, primary_key=True)
    procedure_code = Column(ForeignKey("procedures.code", ondelete="CASCADE"), index=True)
    alias = Column(Text, nullable=False)
    folded = Column(Text, nullable=False, index=True)

    procedure = relationship("Procedure", back_populates="aliases")


class FeeRule(Base):
    """A fee rule: amount by channel, jurisdiction and validity period, with its basis.

    Rules derived from the national catalog are stored here (`bot.fees.national_rules`):
    `standard` (the catalog's amount per channel), `reduction` (a temporary change the fee
    text states, with its dates) and `exemption` (groups who pay nothing). A province's
    own rules come from override files (`data/fees/*.yaml`) and are not stored.
    """

    __tablename__ = "fee_rules"

    id = Column(Integer, primary_key=True)
    procedure_code = Column(ForeignKey("procedures.code", ondelete="CASCADE"), index=True)
    channel = Column(String(16), nullable=False, default="any")
    amount = Column(Integer)  # đồng; None = unknown
    jurisdiction = Column(String(64), nullable=False, default="national")
    valid_from = Column(Date)
    valid_to = Column(Date)
    exempt_tags = Column(Text)  # comma-separated situation tags (bot.fees.situations)
    legal_basis = Column(Text)
    source = Column(String(64), nullable=False, default="seed")
    note = Column(Text)
    kind = Column(String(16))  # standard | reduction | exemption (None: an older database)
    percent = Column(Float)  # a reduction stated as a share of the standard amount
    exempt_text = Column(Text)  # the legal wording of an exemption
    article = Column(Text)  # article / clause of the legal basis, when stated

    procedure = relationship("Procedure", back_populates="fee_rules")


class Feedback(Base):
    """A citizen's thumbs up / down on one bot answer (web widget), for operators to review.

    The session is the widget's anonymous browser id: it links ratings of one conversation,
    nothing more. The answer's text is kept because the gateway stores no transcripts.
    """

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("session", "message_id"),)

    id = Column(Integer, primary_key=True)
    session = Column(String(64), nullable=False, index=True)
    message_id = Column(String(64), nullable=False)
    rating = Column(String(8), nullable=False)  # "up" | "down"
    text = Column(Text)
    channel = Column(String(16), nullable=False, default="widget")
    created_at = Column(DateTime, nullable=False)


class ZaloInbox(Base):
    """A Zalo webhook event accepted once (dedup by msg_id), processed later.

    Written before the webhook answers 200, so an event Zalo considers delivered survives a
    crash; `processed_at` is set in the same transaction as the replies it produced. An event
    whose processing fails is retried with backoff (`attempts`, `next_attempt_at`,
    `last_error`) and, after ZALO_MAX_ATTEMPTS or ZALO_MAX_AGE_HOURS, set aside (`dead_at`):
    the dead letters an admin retries or discards in the console.
    """

    __tablename__ = "zalo_inbox"

    id = Column(Integer, primary_key=True)
    dedup_key = Column(String(128), nullable=False, unique=True)
    user_id = Column(String(64))
    event = Column(Text, nullable=False)  # the event JSON as received
    received_at = Column(DateTime, nullable=False)
    processed_at = Column(DateTime)  # answered, or (with dead_at) discarded by an admin
    attempts = Column(Integer, nullable=False, default=0, server_default="0")
    next_attempt_at = Column(DateTime)  # None: due now
    last_error = Column(Text)
    dead_at = Column(DateTime, index=True)  # given up: a dead letter until retried
    retried_at = Column(DateTime)  # an admin sent it back: its age counts from here


class ZaloOutbox(Base):
    """A reply to send to a Zalo user: written before sending, marked after Zalo accepted it."""

    __tablename__ = "zalo_outbox"

    id = Column(Integer, primary_key=True)
    inbox_id = Column(ForeignKey("zalo_inbox.id", ondelete="SET NULL"), index=True)
    user_id = Column(String(64), nullable=False, index=True)
    kind = Column(String(8), nullable=False)  # "text" | "list"
    body = Column(Text, nullable=False)  # JSON: {"text"} or {"title", "buttons", "fallback"}
    # "pending" | "sent" | "undeliverable" (Zalo refused it for good) | "dead" (given up
    # after ZALO_MAX_ATTEMPTS or ZALO_MAX_AGE_HOURS: a dead letter) | "discarded" (by an admin)
    status = Column(String(16), nullable=False, default="pending", index=True)
    attempts = Column(Integer, nullable=False, default=0)
    next_attempt_at = Column(DateTime, nullable=False)
    last_error = Column(Text)
    message_id = Column(String(64))  # Zalo's id once sent
    created_at = Column(DateTime, nullable=False)
    sent_at = Column(DateTime)
    dead_at = Column(DateTime)
    retried_at = Column(DateTime)  # an admin sent it back: its age counts from here


class ZaloLease(Base):
    """Which gateway process answers and delivers for a Zalo user right now.

    With several gateways (README "Scaling out") every one runs the Zalo worker; a worker
    handles a user's events and replies only while it holds that user's lease, so each
    event reaches Rasa once and each reply is sent once, in order. A lease that is not
    renewed (its process died) expires and another worker takes the user over.
    """

    __tablename__ = "zalo_leases"

    user_id = Column(String(64), primary_key=True)
    owner = Column(String(96), nullable=False)
    lease_until = Column(DateTime, nullable=False)


class ZaloToken(Base):
    """The current OA token pair (one row). Refresh tokens rotate on every use."""

    __tablename__ = "zalo_tokens"

    id = Column(Integer, primary_key=True)
    access_token = Column(Text, nullable=False)
    refresh_token = Column(Text, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    # SHA-256 of the configured pair (ZALO_ACCESS_TOKEN/ZALO_REFRESH_TOKEN) this row grew
    # from: a re-authorised OA configured with a new pair replaces the rotated old one.
    configured = Column(String(64))


class ApplicationRecord(Base):
    """One application's status, loaded by `bot status import` (the default status source).

    Deliberately without personal data: whoever knows the receipt code may read this row.
    """

    __tablename__ = "application_status"

    receipt_code = Column(String(64), primary_key=True)  # canonical (bot.status.codes)
    procedure_code = Column(String(32), index=True)  # not a foreign key: may be outside ours
    agency = Column(Text)
    status = Column(String(24), nullable=False)
    received_at = Column(DateTime, nullable=False)
    due_at = Column(DateTime)
    finished_at = Column(DateTime)
    note = Column(Text)
    source = Column(String(128))  # the file it came from
    imported_at = Column(DateTime, nullable=False)


class StatusLookup(Base):
    """One admitted application-status look-up: which client asked about which code, when.

    The per-client-address and global look-up limits (bot/status/limits.py) count these rows,
    in the database so that every action server replica counts the same look-ups. Neither
    the client nor the code is stored: `client` is the gateway's pseudonymous key of the
    client's address (or of the Zalo user), `code` a hash of the receipt code. Rows older than
    the window are deleted as new ones come.
    """

    __tablename__ = "status_lookups"
    __table_args__ = (Index("ix_status_lookups_client_at", "client", "looked_up_at"),)

    id = Column(Integer, primary_key=True)
    client = Column(String(64), nullable=False)
    code = Column(String(32), nullable=False)
    looked_up_at = Column(DateTime, nullable=False, index=True)
