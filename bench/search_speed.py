"""Search and stats on a store of 1,000,000 papers, against the issue's targets and a baseline.

Targets (issue 7): a full-text search with a tag filter answers in under 50 ms (median);
``stats --by month`` in under 1 s. Every figure is also printed as a ratio to a plain indexed lookup
(one paper by PMID) timed in the same process, so a slower machine shows as a slower baseline.

The store is built from the real recorded PubMed fixtures (tests/fixtures/pubmed): each paper is a
copy of one of them under a fresh PMID and DOI, its title and abstract words shuffled (eight
shuffles per record, drawn at random), its publication date spread over 2005-2025. Tags and saved
query hits are drawn at random with fixed skewed frequencies (TNF on ~15% of papers, migraine on
~12%...), since the fixtures are not about these conditions. Rows go in with bulk inserts through
the real schema (migrations, triggers, indexes): executemany on SQLite, which also writes the
full-text rows as the store does there, COPY on PostgreSQL, whose triggers index them; author
affiliations are left out (nothing searches them).

    PYTHONPATH=src python bench/search_speed.py [--size N] [--postgres URL] [--keep FILE] [--runs N] [--explain]

Without --postgres it runs on SQLite in a temporary file (or in --keep FILE, reused when it already
holds N papers). With --postgres URL (a server; e.g. postgresql+psycopg://postgres@127.0.0.1/postgres)
it builds database ``litwatch_bench`` there (``litwatch_bench_N`` for another --size; kept for reruns,
migrated to the newest schema when reused; drop it by hand).

Build time on the 2-core development machine (shared with other work), 1,000,000 papers:
5.5 minutes on SQLite (a 5.8 GB file), 10 minutes on PostgreSQL. Measuring takes a minute more.
The figures measured are in docs/analysts.md ("Speed").
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from litwatch.errors import StoreError
from litwatch.records import PaperRecord
from litwatch.sources.pubmed_xml import iter_records
from litwatch.store import engine as db
from litwatch.store import models, rows, search, stats

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "pubmed"
FIRST_PMID = 60_000_001
CHUNK = 10_000
SHUFFLES = 8
DATES = (dt.date(2005, 1, 1), dt.date(2025, 12, 31))
NOW = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)

# (tag, kind, share of papers): skewed like real tagging, a few frequent and a long tail
TAGS = [
    ("TNF", "gene", 0.15), ("IL6", "gene", 0.10), ("IL1B", "gene", 0.08), ("FOXP3", "gene", 0.05),
    ("CALCA", "gene", 0.04), ("IL10", "gene", 0.04), ("ESR1", "gene", 0.03), ("IL17A", "gene", 0.03),
    ("TRPV1", "gene", 0.02), ("NFATC1", "gene", 0.01), ("CTLA4", "gene", 0.01), ("WNT4", "gene", 0.005),
    ("IL-1 signalling", "pathway", 0.08), ("TNF-alpha signalling", "pathway", 0.07),
    ("MAPK/ERK signalling", "pathway", 0.05), ("CGRP signalling", "pathway", 0.03),
    ("migraine", "condition", 0.12), ("endometriosis", "condition", 0.07), ("fibromyalgia", "condition", 0.04),
    ("autoimmune disease", "condition", 0.06), ("irritable bowel syndrome", "condition", 0.02),
]
QUERIES = [("migraine-immunology", 0.45), ("endometriosis-migraine", 0.25),
           ("endometriosis-genetics", 0.2), ("fibromyalgia-migraine", 0.15)]
# (text, tag): a rare word, a medium one, two common words, a phrase, a prefix; frequent and rare tags
SEARCHES = [
    ("cytokine", "FOXP3"),
    ("pain", "migraine"),
    ("patients treatment", "TNF"),
    ('"oxidative stress"', "endometriosis"),
    ("receptor expression", "IL-1 signalling"),
    ("migrain*", "CALCA"),
]
TAG_ONLY = ["TNF", "WNT4"]  # no text: the most and the least frequent gene

PAPER_COLUMNS = [c.name for c in models.table(models.Paper).columns]
AUTHOR_COLUMNS = ["paper_pmid", "position", "last_name", "fore_name", "initials", "collective_name", "orcid",
                  "affiliation"]
KEYWORD_COLUMNS = ["paper_pmid", "position", "keyword", "major_topic", "owner"]
TAG_COLUMNS = ["paper_pmid", "tag", "source", "kind", "matched_text", "vocab_version"]
HIT_COLUMNS = ["query_name", "paper_pmid", "first_found_at", "last_found_at", "run_id"]
PMID_COLUMNS = ["pmid", "paper_pmid", "merged_by", "seen_at"]
# the store's order: a paper, its children, then its PMID registered (which indexes it for search)
TABLES = ("papers", "authors", "keywords", "paper_pmids", "paper_tags", "query_hits")


@dataclass
class Template:
    paper: dict[str, Any]
    titles: list[str]
    abstracts: list[str]
    authors: list[tuple[Any, ...]]
    keywords: list[tuple[Any, ...]]


def _records() -> Iterator[PaperRecord]:
    for path in sorted(FIXTURES.rglob("*.xml*")):
        opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            for item in iter_records(handle, name=str(path)):
                if isinstance(item, PaperRecord) and item.title:
                    yield item


def _shuffled(text: str, rng: random.Random) -> list[str]:
    words = text.split()
    out = []
    for _ in range(SHUFFLES):
        rng.shuffle(words)
        out.append(" ".join(words))
    return out


def templates(rng: random.Random) -> list[Template]:
    """Every real fixture record, as rows of the real schema (the store's own row builders)."""
    out = []
    for record in _records():
        prepared = rows.prepare(record)  # the store's exact rows
        paper = dict(zip(rows.PAPER_COLUMNS, prepared.paper, strict=True))
        paper.update(deleted_at=None, updated_at=NOW, content_hash="bench")
        authors = [dict(zip(rows.CHILD_COLUMNS["authors"], a, strict=True)) for a in prepared.children["authors"]]
        keywords = [dict(zip(rows.CHILD_COLUMNS["keywords"], k, strict=True)) for k in prepared.children["keywords"]]
        out.append(Template(
            paper=paper,
            titles=_shuffled(record.title, rng),
            abstracts=_shuffled(record.abstract or "", rng),
            authors=[tuple(a[c] if c != "affiliation" else None for c in AUTHOR_COLUMNS) for a in authors],
            keywords=[tuple(k[c] for c in KEYWORD_COLUMNS) for k in keywords],
        ))
    return out


def generate(size: int, seed: int = 7) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    """Rows for ``size`` papers, CHUNK papers at a time: {table name: rows as tuples}."""
    rng = random.Random(seed)
    temps = templates(rng)
    span = (DATES[1] - DATES[0]).days
    for start in range(0, size, CHUNK):
        rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLES}
        for i in range(start, min(size, start + CHUNK)):
            pmid = FIRST_PMID + i
            t = temps[rng.randrange(len(temps))]
            when = DATES[0] + dt.timedelta(days=rng.randrange(span))
            paper = dict(t.paper, pmid=pmid, doi=f"10.5555/bench.{pmid}", pmcid=None,
                         title=t.titles[rng.randrange(SHUFFLES)], abstract=t.abstracts[rng.randrange(SHUFFLES)],
                         pub_date=when, pub_year=when.year, first_seen=NOW, retracted=rng.random() < 0.002)
            rows["papers"].append(tuple(paper[c] for c in PAPER_COLUMNS))
            rows["authors"].extend((pmid, *a[1:]) for a in t.authors)
            rows["keywords"].extend((pmid, *k[1:]) for k in t.keywords)
            rows["paper_pmids"].append((pmid, pmid, "self", NOW))
            for tag, kind, share in TAGS:
                if rng.random() < share:
                    rows["paper_tags"].append((pmid, tag, "abstract", kind, tag, "bench"))
                    if rng.random() < 0.3:
                        rows["paper_tags"].append((pmid, tag, "title", kind, tag, "bench"))
            for name, share in QUERIES:
                if rng.random() < share:
                    rows["query_hits"].append((name, pmid, NOW, NOW, None))
        yield rows


COLUMNS = {"papers": PAPER_COLUMNS, "authors": AUTHOR_COLUMNS, "keywords": KEYWORD_COLUMNS,
           "paper_pmids": PMID_COLUMNS, "paper_tags": TAG_COLUMNS, "query_hits": HIT_COLUMNS}


def _progress(done: int, size: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(f"\r  {done:,}/{size:,} papers ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)


def build_sqlite(path: Path, size: int) -> None:
    """Migrate a new SQLite file and bulk-insert ``size`` papers with executemany, writing the
    full-text index as the store does."""
    engine = db.make_engine(f"sqlite:///{path}")
    db.migrate(engine)
    engine.dispose()
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-400000")
    started = time.perf_counter()
    done = 0
    for rows in generate(size):
        with conn:
            for name in TABLES:
                cols = COLUMNS[name]
                sql = f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                dated = name in ("papers", "paper_pmids", "query_hits")
                conn.executemany(sql, [_sqlite_row(r) for r in rows[name]] if dated else rows[name])
            conn.executemany("INSERT INTO papers_fts (rowid, title, abstract, keywords) VALUES (?, ?, ?, ?)",
                             _fulltext_rows(rows))
        done += len(rows["papers"])
        _progress(done, size, started)
    print(file=sys.stderr)
    conn.execute("PRAGMA optimize")
    conn.close()


def _fulltext_rows(rows: dict[str, list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """The full-text rows the store writes on SQLite (migration 0004): title, abstract, keywords."""
    keywords: dict[int, list[str]] = {}
    for kw in sorted(rows["keywords"], key=lambda k: (k[0], k[1])):
        keywords.setdefault(kw[0], []).append(kw[KEYWORD_COLUMNS.index("keyword")])
    pmid, title, abstract = (PAPER_COLUMNS.index(c) for c in ("pmid", "title", "abstract"))
    return [(p[pmid], p[title], p[abstract], " ; ".join(keywords.get(p[pmid], [])) or None) for p in rows["papers"]]


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Dates and times as SQLAlchemy writes them to SQLite (ISO text)."""
    return tuple(
        v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, dt.datetime)
        else v.isoformat() if isinstance(v, dt.date) else v
        for v in row
    )


def build_postgres(url: str, size: int) -> None:
    """Migrate the (new, empty) database at ``url`` and COPY ``size`` papers into it (triggers fire)."""
    engine = db.make_engine(url)
    db.migrate(engine)
    started = time.perf_counter()
    done = 0
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for rows in generate(size):
            for name in TABLES:
                with cursor.copy(f"COPY {name} ({', '.join(COLUMNS[name])}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                    for row in rows[name]:
                        copy.write_row(row)
            raw.commit()
            done += len(rows["papers"])
            _progress(done, size, started)
        print(file=sys.stderr)
        raw.commit()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))  # what autovacuum does within minutes of a load
    engine.dispose()


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median seconds of ``runs`` calls (after one warm-up), and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(engine: sa.engine.Engine, size: int, runs: int, explain_plans: bool = False,
            with_stats: bool = True) -> None:
    papers = models.table(models.Paper)
    rng = random.Random(1)
    pmids = [FIRST_PMID + rng.randrange(size) for _ in range(200)]

    def lookup() -> None:
        with engine.connect() as conn:
            for pmid in pmids:
                conn.execute(sa.select(papers).where(papers.c.pmid == pmid)).one()

    base, _ = timed(lookup, runs)
    base /= len(pmids)
    print(f"baseline: one paper by PMID (indexed lookup, median of {len(pmids)}): {base * 1000:.2f} ms")
    print(f"{'search (limit 20)':44} {'median':>9} {'ratio':>7}  {'found':>6}  target 50 ms")
    medians = []
    for text, tag in SEARCHES:
        filters = search.Filters(text=text, tags=(tag,), limit=20)
        seconds, found = timed(lambda: search.search(engine, filters), runs)
        total = len(_pmids(engine, search.Filters(text=text, tags=(tag,))))
        medians.append(seconds)
        label = f"{text} --tag {tag!r}"
        print(f"  {label:42} {seconds * 1000:7.1f}ms {seconds / base:6.0f}x  {total:6}  "
              f"{'ok' if seconds < 0.05 else 'SLOW'}")
    for tag in TAG_ONLY:
        filters = search.Filters(tags=(tag,), limit=20)
        seconds, _ = timed(lambda: search.search(engine, filters), runs)
        total = len(_pmids(engine, search.Filters(tags=(tag,))))
        label = f"(no text) --tag {tag!r}"
        print(f"  {label:42} {seconds * 1000:7.1f}ms {seconds / base:6.0f}x  {total:6}  (not in the median)")
    if explain_plans and engine.dialect.name == "postgresql":
        for text, tag in SEARCHES:
            print(f"\nEXPLAIN (ANALYZE, BUFFERS): {text} --tag {tag!r}")
            explain(engine, search.Filters(text=text, tags=(tag,), limit=20))
        print()
    overall = statistics.median(medians)
    print(f"  {'median over these searches':42} {overall * 1000:7.1f}ms {overall / base:6.0f}x          "
          f"{'ok' if overall < 0.05 else 'SLOW'}")
    for label, fn, target in () if not with_stats else (
        ("stats --by month", lambda: stats.by_month(engine), 1.0),
        ("stats --by tag", lambda: stats.by_tag(engine), None),
        ("stats --by query", lambda: stats.by_query(engine), None),
        ("stats --by condition (overlap table)", lambda: stats.comorbidity(engine), None),
    ):
        seconds, _ = timed(fn, max(1, runs // 3))
        verdict = "" if target is None else (f"target {target:.0f} s: " + ("ok" if seconds < target else "SLOW"))
        print(f"  {label:42} {seconds * 1000:7.0f}ms {seconds / base:6.0f}x  {verdict}")


def explain(engine: sa.engine.Engine, filters: search.Filters) -> None:
    """Print ``EXPLAIN (ANALYZE, BUFFERS)`` of every statement one PostgreSQL search runs.

    The statements are caught as the search sends them, so what is explained is what runs.
    """
    sent: list[tuple[str, Any]] = []

    def catch(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", catch)
    try:
        search.search(engine, filters)
    finally:
        sa.event.remove(engine, "before_cursor_execute", catch)
    with engine.connect() as conn:
        for statement, parameters in sent:
            if statement.lstrip().upper().startswith("SELECT"):
                plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).scalars()
                print("    " + "\n    ".join(plan))


def _pmids(engine: sa.engine.Engine, filters: search.Filters) -> Sequence[Any]:
    stmt = search.build_query(filters, engine.dialect.name).with_only_columns(models.table(models.Paper).c.pmid)
    with engine.connect() as conn:
        return conn.execute(stmt).all()


def _count(engine: sa.engine.Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM papers")).scalar_one())
    except (sa.exc.DBAPIError, StoreError):  # no papers table yet
        return -1


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--postgres", metavar="URL", help="measure PostgreSQL at this server instead of SQLite")
    parser.add_argument("--no-stats", action="store_true", help="time the searches only")
    parser.add_argument("--explain", action="store_true",
                        help="on PostgreSQL, print EXPLAIN (ANALYZE, BUFFERS) of each search's statements")
    parser.add_argument("--keep", type=Path, metavar="FILE", help="SQLite file to build (or reuse) and keep")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            base = sa.engine.make_url(args.postgres)
            name = "litwatch_bench" if args.size == 1_000_000 else f"litwatch_bench_{args.size}"
            url = base.set(database=name).render_as_string(hide_password=False)
            admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
                if not exists:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
        else:
            path = args.keep or Path(tmp) / "bench.sqlite"
            url = f"sqlite:///{path}"
        engine = db.make_engine(url)
        have = _count(engine)
        if have != args.size:
            if have > 0:
                sys.exit(f"{url} holds {have:,} papers, not {args.size:,}: drop it or choose another")
            started = time.perf_counter()
            print(f"building {args.size:,} papers in {db.redact_url(url)} ...", file=sys.stderr)
            build_postgres(url, args.size) if args.postgres else build_sqlite(path, args.size)
            print(f"built in {time.perf_counter() - started:.0f} s")
        engine.dispose()
        engine = db.make_engine(url)
        db.migrate(engine)  # a store built by an older checkout gets the newest indexes
        print(f"{engine.dialect.name}: {_count(engine):,} papers; {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.2f}")
        measure(engine, args.size, args.runs, args.explain, not args.no_stats)
        engine.dispose()


if __name__ == "__main__":
    main()
