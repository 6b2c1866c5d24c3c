"""The update pass: re-fetch the stored papers PubMed revised since the query's last pass.

Runs search by create date, so without this a paper is fetched once and never again: a later
retraction (``RetractionIn``, PublicationType "Retracted Publication"), an expression of concern,
an erratum, finished MeSH indexing would never reach the store. So each run also searches the
saved term over modification dates (``[mdat]``) in the windows the ledger says are not yet
covered (kind ``mdat``, same rules as create dates: usually one ESearch, from the day the last
pass ended to today; NCBI dates a revision when it makes it, so no longer overlap is needed), and
re-fetches only the papers among the hits that are already stored and were not fetched by this
very run. A query's first pass reaches back to its origin: on a new query everything was just
fetched, so nothing is asked again; after the upgrade to the ledger, every stored paper it
matches is fetched once. ``save_batch`` keeps what changed (papers.retracted, the
corrections links, publication types, MeSH headings...), those papers are re-tagged, and deletion
notices mark their papers deleted. Nothing new is stored here: new papers are the create-date
pass's work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from litwatch.files.queries import SavedQuery
from litwatch.records import Deletion
from litwatch.pipeline.search import Eutils, fetch_batch, search_window
from litwatch.store import papers as store
from litwatch.store import tags as tag_store
from litwatch.store.coverage import Range
from litwatch.tagging.tagger import Tagger


@dataclass
class UpdatePass:
    """What one update pass found and did; its requests are counted by the caller."""

    windows: int = 0
    search_count: int = 0
    warnings: list[str] = field(default_factory=list)
    revised: int = 0  # stored papers among the hits, asked for again
    updated: int = 0  # of those, the ones whose stored copy changed
    deleted: int = 0
    missing: list[int] = field(default_factory=list)


def update_stored(
    engine: Engine,
    client: Eutils,
    query: SavedQuery,
    windows: Sequence[Range],
    *,
    fresh: Collection[int],
    batch_size: int,
    tagger: Tagger | None,
    clock: Callable[[], dt.datetime],
) -> UpdatePass:
    """Search ``windows`` by modification date and re-fetch the stored hits not in ``fresh``."""
    done = UpdatePass()
    ids: set[int] = set()
    for lo, hi in windows:
        ids |= search_window(client, query.term, lo, hi, done, field="mdat")
    with engine.connect() as conn:
        stored = store.resolve_pmids(conn, sorted(ids))
    todo = sorted(p for p in stored if p not in fresh)
    done.revised = len(todo)
    for start in range(0, len(todo), batch_size):
        deletions: list[Deletion] = []
        records, missing = fetch_batch(client, todo[start : start + batch_size], deletions)
        done.missing.extend(missing)
        with engine.begin() as conn:
            saved = store.save_batch(conn, records, now=clock())
            tag_store.tag_changed(conn, records, saved.changed_pmids, tagger=tagger)
            for deletion in deletions:
                done.deleted += store.apply_deletion(conn, deletion, now=clock())
        done.updated += saved.updated
    return done
