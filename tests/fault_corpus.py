"""The corpus and fault mix of the fault-injection runs (``test_faults.py``, ``bench/fault_runs.py``).

The shipped saved queries (``queries/``) each find their own clones of real recorded records in
a :class:`FakeEutils`; ``FAULTS`` is what the issue measured against: a 500, a 502 with an HTML
body, a 200 cut short, NCBI's ``<ERROR>Unable to obtain query #1</ERROR>`` in a 200, and a stall
past the client's timeout.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fake_eutils import FakeEutils, Fault

from litwatch.files.queries import load_queries

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "queries"
METAPUB = ROOT / "tests" / "fixtures" / "pubmed" / "metapub"
RATE = 0.2  # the share of requests that get a fault
SEEDS = range(10)


def faults(stall: float) -> list[Fault]:
    """One of each fault kind; the stall lasts ``stall`` seconds (set it past the client's timeout)."""
    return [
        Fault.http(500),
        Fault.http(502),  # an HTML body, as a proxy in front of NCBI sends
        Fault(truncate=True),
        Fault(error="Unable to obtain query #1"),
        Fault(stall=stall),
    ]


def fill(fake: FakeEutils, today: dt.date, per_query: int) -> int:
    """Give each shipped query ``per_query`` papers of its own created yesterday; return the total."""
    real = []
    for path in sorted(METAPUB.glob("*.xml")):
        real += fake.add_records_from_file(path, crdt=today - dt.timedelta(days=40))
    fake.strict_terms = True
    found, problems = load_queries(QUERIES, today=today)
    assert found and not problems, problems
    first = 70_000_000
    for query in found:
        made = fake.add_clones(per_query, first_pmid=first, crdt=today - dt.timedelta(days=1), sources=real)
        fake.terms[" ".join(query.term.strip().split())] = made
        first += per_query
    return per_query * len(found)
