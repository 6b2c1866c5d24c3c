"""The extra requests the update pass costs, per query per run, over a loopback fake E-utilities.

Each run searches its term by modification date ([mdat]) once (more only if over 9,999 papers
were revised in the window) and fetches the stored papers among the hits in batches: so the
goal is 1 ESearch per query per run, plus ceil(revised / batch) EFetch requests. The scenarios:
a query's first run (everything just fetched: nothing to re-fetch), quiet weeks, weeks with a
few or many stored papers revised, and the first run after upgrading from watermarks (no update
pass yet: every stored paper is fetched once). A pass starts on the day the last one ended, so the
papers created that day (their modification date) are asked for once more.

    PYTHONPATH=src:tests python bench/update_pass.py
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fake_eutils import FakeEutils  # noqa: E402

from litwatch.files.queries import SavedQuery  # noqa: E402
from litwatch.pipeline import run as runner  # noqa: E402
from litwatch.sources.eutils import EutilsClient  # noqa: E402
from litwatch.store import coverage as ledger  # noqa: E402
from litwatch.store import engine as db  # noqa: E402

TODAY = dt.date(2026, 11, 23)
BATCH = 200
STORED = 1000


def query(name: str, today: dt.date) -> SavedQuery:
    return SavedQuery(name, f"{name}[tiab]", name, None, today - dt.timedelta(days=30), (), Path(f"{name}.toml"))


def main() -> None:
    with FakeEutils() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.refuse_over(3)  # NCBI's limit without an API key
        for path in sorted((ROOT / "tests" / "fixtures" / "pubmed" / "metapub").glob("*.xml")):
            fake.add_records_from_file(path, crdt=TODAY - dt.timedelta(days=400))
        engine = db.make_engine(f"sqlite:///{tmp}/bench.sqlite")
        db.migrate(engine)
        client = EutilsClient(fake.url, "bench@example.org")  # real clock, real rate limit
        fake.strict_terms = True
        papers = fake.add_clones(STORED, first_pmid=60_000_000, crdt=lambda i: TODAY - dt.timedelta(days=i % 25))
        fake.terms["alpha[tiab]"] = papers
        fake.terms["beta[tiab]"] = papers  # the query upgraded from a watermark
        # (label, query, run day, stored papers PubMed revises in the days before it)
        scenarios = [("first run, 1,000 new papers", "alpha", TODAY, 0),
                     ("a week later, nothing revised", "alpha", TODAY + dt.timedelta(days=7), 0),
                     ("a week later, 5 revised", "alpha", TODAY + dt.timedelta(days=14), 5),
                     ("a week later, 450 revised", "alpha", TODAY + dt.timedelta(days=21), 450),
                     ("first run after the upgrade, 1,000 stored", "beta", TODAY + dt.timedelta(days=21), 0)]
        total = runs = most = 0
        previous: dt.date | None = None
        for label, name, today, revised in scenarios:
            for pmid in papers[:revised]:
                fake.revise(pmid, on=today - dt.timedelta(days=2))
            if name == "beta":  # what migration 0007 leaves of a watermark: a range, no fingerprint
                with engine.begin() as conn:
                    conn.execute(ledger.coverage.insert().values(
                        query_name=name, kind="crdt", term_sha256=None, covered_from=today - dt.timedelta(days=60),
                        covered_to=today, recorded_at=dt.datetime.now(dt.UTC)))
            before = len(fake.requests)
            receipt = runner.run_query(engine, client, query(name, today), today=today, batch_size=BATCH)
            assert receipt.ok, receipt.error
            mdat = [r for r in fake.requests[before:] if "[mdat]" in r.params.get("term", "")]
            fetches = receipt.update_requests - len(mdat)
            # re-asked: what PubMed revised, and what was created on the day the last pass ended
            edge = {p for p in papers if fake.revised_on(p) == previous} if name == "alpha" else set()
            again = len(set(papers[:revised]) | edge) if previous and name == "alpha" else STORED if name == "beta" else 0
            previous = today if name == "alpha" else previous
            total += receipt.update_requests
            most = max(most, len(mdat))
            runs += 1
            print(f"{label:42s} update pass: {len(mdat)} esearch + {fetches} efetch = {receipt.update_requests} "
                  f"requests (fewest {1 + math.ceil(again / BATCH)}: {again} stored papers re-asked), "
                  f"{receipt.updated} updated; create-date pass: {receipt.requests - receipt.update_requests} requests")
        print(f"{runs} runs: {total} update-pass requests, {total / runs:.1f} per query per run; "
              f"ESearch per query per run: at most {most} (target 1); 429 answers: {fake.refused}")


if __name__ == "__main__":
    main()
