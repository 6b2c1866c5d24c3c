"""PubTator3 requests per 1,000 new papers (goal: 10), over a loopback fake PubTator3.

The fake serves the 8 recorded real documents cloned under 1,000 fresh PMIDs (plus 20 PMIDs it
has never heard of, as a run would ask for papers PubTator3 has not annotated yet). The client
runs with its real clock and rate limit (3 requests/s); the fake answers 429 to any request that
breaks that limit, so "429 answers: 0" means none was refused.

    PYTHONPATH=src:tests python bench/pubtator_requests.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fake_pubtator import FakePubtator  # noqa: E402

from litwatch.sources.pubtator import PubtatorClient  # noqa: E402

PAPERS = 1000
UNKNOWN = 20


def main() -> None:
    with FakePubtator() as fake:
        fake.refuse_over(3)  # PubTator3's limit
        fake.add_documents_from_dir(ROOT / "tests" / "fixtures" / "pubtator3")
        real = len(fake.documents)
        known = fake.add_clones(PAPERS - UNKNOWN, first_pmid=40_000_000)
        unknown = list(range(50_000_000, 50_000_000 + UNKNOWN))
        with PubtatorClient(fake.url) as client:
            started = time.perf_counter()
            export = client.export(known + unknown)
            seconds = time.perf_counter() - started
        genes = sum(len(a.genes) for a in export.documents.values())
        print(f"machine: {os.cpu_count()} cores; {real} real PubTator3 documents cloned")
        print(f"new papers asked: {PAPERS} ({len(export.documents)} annotated, {len(export.missing)} not annotated)")
        print(f"requests: {fake.count()} (goal 10); retries: {client.retries}; 429 answers: {fake.refused}")
        print(f"requests per 1,000 new papers: {fake.count() * 1000 / PAPERS:.1f}")
        print(f"gene mentions read: {genes}; wall time {seconds:.2f} s (rate limit: 3 requests/s)")


if __name__ == "__main__":
    main()
