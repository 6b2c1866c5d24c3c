"""Searching PubMed by date window and fetching what a search found: the steps every pass shares.

A window is the saved term restricted to a date range of one field, ``crdt`` (create date, for new
papers) or ``mdat`` (modification date, for the update pass), in PubMed's own syntax. A window
whose Count exceeds what ESearch returns (9,999 ids) is split in halves until each part fits, and
an answer with fewer ids than its Count is an error, never "the rest are absent".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from litwatch.errors import EutilsError
from litwatch.records import Deletion, PaperRecord
from litwatch.sources.pubmed_xml import parse_bytes

ESEARCH_CAP = 9999  # PubMed ESearch returns at most this many ids for one search


class SearchAnswer(Protocol):
    count: int
    ids: list[int]
    warnings: list[str]


class Eutils(Protocol):
    """What the runner needs of litwatch.sources.eutils.EutilsClient (a seam for tests)."""

    @property
    def requests_made(self) -> int: ...

    @property
    def retries(self) -> int: ...

    def esearch(self, term: str, *, retmax: int = ...) -> SearchAnswer: ...

    def efetch(self, pmids: Sequence[int]) -> bytes: ...


class Tally(Protocol):
    """Where a search counts its windows, PubMed's Count and its warnings (a run's receipt)."""

    windows: int
    search_count: int
    warnings: list[str]


def window_term(term: str, start: dt.date, end: dt.date, field: str = "crdt") -> str:
    """The saved term restricted to a date window of ``field``, as PubMed's own syntax."""
    return f'({term.strip()}) AND ("{start:%Y/%m/%d}"[{field}] : "{end:%Y/%m/%d}"[{field}])'


def search_window(
    client: Eutils, term: str, start: dt.date, end: dt.date, tally: Tally, field: str = "crdt"
) -> set[int]:
    """Every PMID the term finds in [start, end]; halves the window while PubMed would truncate."""
    answer = client.esearch(window_term(term, start, end, field), retmax=ESEARCH_CAP)
    tally.windows += 1
    for warning in answer.warnings:
        if warning not in tally.warnings:
            tally.warnings.append(warning)
    if answer.count <= ESEARCH_CAP:
        if len(answer.ids) < answer.count:
            raise EutilsError(
                f"ESearch said Count={answer.count} for {start}..{end} but returned {len(answer.ids)} ids; "
                "refusing to treat the rest as absent"
            )
        tally.search_count += answer.count
        return set(answer.ids)
    if start == end:
        raise EutilsError(
            f"{answer.count} papers were {'revised' if field == 'mdat' else 'created'} on {start} alone, "
            f"more than ESearch's {ESEARCH_CAP}; narrow the query (it cannot be split further by date)"
        )
    middle = start + (end - start) // 2
    return search_window(client, term, start, middle, tally, field) | search_window(
        client, term, middle + dt.timedelta(days=1), end, tally, field
    )


def fetch_batch(
    client: Eutils, pmids: Sequence[int], deletions: list[Deletion] | None = None
) -> tuple[list[PaperRecord], list[int]]:
    """Fetch and parse a batch; ask once more for PMIDs the answer lacked. Returns (records, missing).

    The one place fetched answers become records: the client returns them verified, as bytes.
    Deletion notices in the answer go to ``deletions`` when given (the update pass applies them).
    """
    wanted = set(pmids)
    records: dict[int, PaperRecord] = {}
    for _attempt in range(2):
        ask = sorted(wanted - records.keys())
        if not ask:
            break
        for item in parse_bytes(client.efetch(ask)):
            if isinstance(item, Deletion):
                if deletions is not None:
                    deletions.append(item)
                continue
            if item.pmid in wanted:
                records[item.pmid] = item
    return list(records.values()), sorted(wanted - records.keys())
