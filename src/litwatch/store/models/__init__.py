"""The database schema: every table litwatch keeps, as SQLAlchemy 2.x declarative models.

Papers are keyed by their PMID; child tables (authors, MeSH, ...) hang off ``papers.pmid`` so an
analyst can join them without surrogate ids. ``paper_pmids`` maps every PMID litwatch has seen to the
row that holds the work: a record whose DOI already belongs to another row is merged into that row
and only its PMID is remembered here. Migrations in ``db/migrations`` build exactly these tables; one module per family of tables.
"""

from __future__ import annotations

from litwatch.store.models._base import NAMING, Base, table
from litwatch.store.models.papers import (
    Author,
    Chemical,
    CHILD_TABLES,
    Correction,
    GeneSymbol,
    HistoryDate,
    Keyword,
    MeshHeading,
    Paper,
    PaperPmid,
    PaperTag,
    PublicationType,
    PubtatorPaper,
)
from litwatch.store.models.runs import (
    Lease,
    QueryCoverage,
    QueryHit,
    QueryState,
    RateBudget,
    Run,
)
from litwatch.store.models.digests import (
    Digest,
    DigestItem,
    DigestRecipient,
)
from litwatch.store.models.works import (
    Preprint,
    PreprintRun,
    PreprintVersion,
    WorkLink,
)

__all__ = [
    "Author",
    "Base",
    "CHILD_TABLES",
    "Chemical",
    "Correction",
    "Digest",
    "DigestItem",
    "DigestRecipient",
    "GeneSymbol",
    "HistoryDate",
    "Keyword",
    "Lease",
    "MeshHeading",
    "NAMING",
    "Paper",
    "PaperPmid",
    "PaperTag",
    "Preprint",
    "PreprintRun",
    "PreprintVersion",
    "PublicationType",
    "PubtatorPaper",
    "QueryCoverage",
    "QueryHit",
    "QueryState",
    "RateBudget",
    "Run",
    "WorkLink",
    "table",
]
