"""The declarative base every model shares, its naming convention, and ``table``."""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from sqlalchemy import ForeignKey, MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _paper_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("papers.pmid", ondelete="CASCADE"), primary_key=True)


def table(model: type[Base]) -> sa.Table:
    """The Core table behind a model, for bulk statements."""
    return cast(sa.Table, model.__table__)
