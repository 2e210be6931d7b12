"""ORM tables of the NLU inbox (on the shared `Base`, created by bot.catalog.schema.upgrade)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Float, Integer, String, Text, UniqueConstraint

from bot.catalog.models import Base

REVIEW_STATUSES = ("corrected", "out_of_scope", "ignored")


class NluReview(Base):
    """An operator's decision on one citizen message, which takes it out of the inbox.

    The message is Rasa's `events` row (`event_id`, with the sender and the event's own
    timestamp to recognise it if that table were ever rebuilt); the text itself stays in
    Rasa's table. `example` is the line written to the training data, None when nothing
    was written (ignored, or the text was already an example of the same intent).
    """

    __tablename__ = "nlu_reviews"
    __table_args__ = (UniqueConstraint("sender_id", "event_id"),)

    id = Column(Integer, primary_key=True)
    sender_id = Column(String(255), nullable=False, index=True)
    event_id = Column(Integer, nullable=False, index=True)
    event_ts = Column(Float)
    status = Column(String(16), nullable=False)  # one of REVIEW_STATUSES
    intent = Column(String(64))
    entities = Column(Text)  # JSON: [{"start", "end", "entity", "value"}]
    example = Column(Text)
    reviewed_by = Column(String(64), nullable=False)
    reviewed_at = Column(DateTime, nullable=False)


class NluCorrection(Base):
    """A training example an operator added in the NLU inbox.

    Kept here rather than written into data/nlu/corrections.yml inside one container: every
    gateway replica sees the others' corrections (duplicates are refused across replicas by
    the unique key), training reads them (bot.training), and nothing is lost on redeploy.
    `bot nlu export-corrections` writes them into the corrections file for review in git.
    """

    __tablename__ = "nlu_corrections"

    id = Column(Integer, primary_key=True)
    # SHA-256 of the text as examples are compared (corrections.dedup_key): a unique index
    # on the text itself would exceed PostgreSQL's index row size for a long message.
    key_sha256 = Column(String(64), nullable=False, unique=True)
    intent = Column(String(64), nullable=False)
    example = Column(Text, nullable=False)  # the line in Rasa markup (entities annotated)
    text = Column(Text, nullable=False)  # its plain text
    created_by = Column(String(64), nullable=False)
    created_at = Column(DateTime, nullable=False)
