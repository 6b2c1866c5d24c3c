"""HTTP requests per `litwatch run` against the fewest possible, over a loopback fake E-utilities.

The fewest possible for a window is one search plus one efetch per batch of new ids (the update
pass that follows is counted apart, by bench/update_pass.py); a window
over ESearch's 9,999 ids needs one search to learn its Count and one per part that fits. The client runs with its real rate
limit (3 requests/s without an API key); the fake answers 429 to any request that breaks
NCBI's limit, so a ratio of 1.00 with "429 answers: 0" means nothing was wasted or refused.

    PYTHONPATH=src:tests python bench/run_requests.py
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fake_eutils import FakeEutils  # noqa: E402

from litwatch.files.queries import SavedQuery  # noqa: E402
from litwatch.pipeline import run as runner  # noqa: E402
from litwatch.sources.eutils import EutilsClient  # noqa: E402
from litwatch.store import engine as db  # noqa: E402

TODAY = dt.date(2026, 11, 23)
BATCH = 200


def query(name: str) -> SavedQuery:
    return SavedQuery(name, f"{name}[tiab]", name, None, TODAY - dt.timedelta(days=30), (), Path(f"{name}.toml"))


def main() -> None:
    with FakeEutils() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.refuse_over(3)  # NCBI's limit without an API key
        for path in sorted((ROOT / "tests" / "fixtures" / "pubmed" / "metapub").glob("*.xml")):
            fake.add_records_from_file(path, crdt=TODAY - dt.timedelta(days=40))
        engine = db.make_engine(f"sqlite:///{tmp}/bench.sqlite")
        db.migrate(engine)
        client = EutilsClient(fake.url, "bench@example.org")  # real clock, real rate limit
        fake.strict_terms = True
        # (label, query, papers added, today, spread of their create dates in days)
        scenarios = [("first run, 1,000 new papers", "alpha", 1000, TODAY, 20),
                     ("a week later, 37 new papers", "alpha", 37, TODAY + dt.timedelta(days=7), 6),
                     ("12,000 papers: the window is split", "beta", 12000, TODAY, 20)]
        next_pmid = 60_000_000
        total_made = total_min = 0
        for label, name, count, today, spread in scenarios:
            made = fake.add_clones(count, first_pmid=next_pmid,
                                   crdt=lambda i, t=today, n=spread: t - dt.timedelta(days=i % n))
            next_pmid += count
            fake.terms[f"{name}[tiab]"] = fake.terms.get(f"{name}[tiab]", []) + made
            started = time.perf_counter()
            receipt = runner.run_query(engine, client, query(name), today=today, batch_size=BATCH)
            assert receipt.ok, receipt.error
            # a search over the cap must be asked once to learn its Count, then per window that fits
            fits = max(1, math.ceil(receipt.ids_seen / runner.ESEARCH_CAP))
            windows = fits + (1 if fits > 1 else 0)
            minimum = windows + math.ceil(receipt.new / BATCH)
            made = receipt.requests - receipt.update_requests
            total_made += made
            total_min += minimum
            print(f"{label:38s} requests {made:3d}  minimum {minimum:3d}  "
                  f"ratio {made / minimum:.2f}  retries {receipt.retries}  "
                  f"({receipt.windows} searches, {receipt.new} new, {time.perf_counter() - started:.1f} s)")
        print(f"all runs: {total_made} requests for a minimum of {total_min}: ratio {total_made / total_min:.2f} "
              f"(target 1.00); 429 answers: {fake.refused}")


if __name__ == "__main__":
    main()
