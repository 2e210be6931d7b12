"""ORM table of the fee overrides edited in the console (on the shared `Base`, created by
bot.catalog.schema.upgrade).

A console edit used to be written to FEE_OVERRIDES_DIR inside the gateway's container: the
action servers, the other gateways and the next release never saw it. The database is the
one place every replica reads, so an edit is a row here; the shipped files stay the base
(a row replaces the file of the same name), and `bot fees export` writes the rows back as
files for review in git.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, String, Text

from bot.catalog.models import Base


class FeeOverride(Base):
    """One province's override file as an operator last saved it."""

    __tablename__ = "fee_overrides"

    name = Column(String(120), primary_key=True)  # the file name, e.g. 01-ha-noi.yaml
    # One file per province: two replicas saving two names for one province cannot both win.
    province = Column(String(8), nullable=False, unique=True)
    content = Column(Text, nullable=False)  # the YAML as saved (NFC, LF line ends)
    sha256 = Column(String(64), nullable=False)
    updated_by = Column(String(64), nullable=False)
    updated_at = Column(DateTime, nullable=False)
