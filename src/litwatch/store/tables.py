"""The tables the paper writer touches, as SQLAlchemy Core clauses: no ORM, no declarative models.

Importing ``models`` (``sqlalchemy.orm`` and two dozen declarative classes) costs about 0.12 s,
half of what any command may take in all (issue 14: under 0.25 s), and the writer needs only the
tables' names, their columns and the types that turn dates into what the driver takes. The
column names come from ``rows`` (which lists them for the worker processes); the types are the
few that are not text. tests/test_store.py holds every clause here to its model in models.py,
which stays the schema migrations build.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from litwatch.store.rows import CHILD_COLUMNS, PAPER_COLUMNS

_STAMP = sa.DateTime(timezone=True)
_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    **dict.fromkeys(("pmid", "pmid_version", "pub_year", "paper_pmid", "position", "ref_pmid"), sa.Integer()),
    **dict.fromkeys(("pub_date", "date_completed", "date_revised", "date_entrez", "date_pubmed", "date"), sa.Date()),
    **dict.fromkeys(("retracted", "major_topic"), sa.Boolean()),
    **dict.fromkeys(("deleted_at", "first_seen", "updated_at", "seen_at"), _STAMP),
}


def _clause(name: str, columns: Iterable[str]) -> sa.TableClause:
    return sa.table(name, *(sa.column(c, _TYPES.get(c, sa.Text())) for c in columns))


papers = _clause("papers", (*PAPER_COLUMNS, "deleted_at", "first_seen", "updated_at", "content_hash"))
paper_pmids = _clause("paper_pmids", ("pmid", "paper_pmid", "merged_by", "seen_at"))
CHILD_TABLES: tuple[sa.TableClause, ...] = tuple(_clause(name, columns) for name, columns in CHILD_COLUMNS.items())
