"""Atom feeds end to end: `litwatch digest --send` then the group's feed, read back with feedparser
the way a feed reader reads it; real fixture papers in the store; `litwatch feed` on demand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import feedparser
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from smtp_sink import free_port
from sqlalchemy.engine import Engine

from litwatch.cli import main
from litwatch.pipeline import ingest
from litwatch.store import models

FIXTURES = Path(__file__).parent / "fixtures" / "pubmed"
HITS = models.table(models.QueryHit)
RUNS = models.table(models.Run)
TAGS = models.table(models.PaperTag)
WHEN = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
ERRATUM = 38147649  # "Social anxiety disorder-associated gut microbiota increases social fear."
GREEK = 35856662  # "OXA-48-Like β-Lactamases: ..."
RETRACTED = 993  # PublicationType "Retracted Publication"
COLLECTIVE = 34843274  # a CollectiveName author, no others
MANY_AUTHORS = 37787043
LATER = 36156117


@pytest.fixture
def store(engine: Engine) -> Engine:
    files = sorted((FIXTURES / "metapub").glob("*.xml")) + [FIXTURES / "retraction" / "npg_example.xml"]
    ingest.ingest_paths(engine, files)
    found(engine, [ERRATUM, GREEK, RETRACTED, COLLECTIVE, MANY_AUTHORS], WHEN)
    with engine.begin() as conn:
        conn.execute(TAGS.insert(), [
            {"paper_pmid": ERRATUM, "tag": "FOXP3", "source": "abstract", "kind": "gene", "matched_text": "FOXP3",
             "vocab_version": "test"},
            {"paper_pmid": COLLECTIVE, "tag": "migraine", "source": "abstract", "kind": "condition",
             "matched_text": "migraine", "vocab_version": "test"}])
    return engine


def found(engine: Engine, pmids: Sequence[int], when: dt.datetime, *, backfill: bool = False) -> None:
    """``pmids`` found by the lab's query at ``when``; by a run reaching back to 2019 with ``backfill``."""
    with engine.begin() as conn:
        run_id = conn.execute(RUNS.insert().values(
            query_name="migraine-immunology", started_at=when, finished_at=when, status="ok",
            window_from=dt.date(2019, 1, 1), window_to=when.date())).inserted_primary_key[0] if backfill else None
        conn.execute(HITS.insert(), [{"query_name": "migraine-immunology", "paper_pmid": p, "first_found_at": when,
                                      "last_found_at": when, "run_id": run_id} for p in pmids])


def cli(tmp_path: Path, database_url: str, *args: str, **env: str) -> tuple[int, str, str]:
    queries = tmp_path / "queries"
    queries.mkdir(exist_ok=True)
    (queries / "migraine-immunology.toml").write_text('term = "migraine[tiab]"\ngroups = ["headache-lab"]\n')
    (queries / "groups.toml").write_text('[groups.headache-lab]\nrecipients = ["lab@example.org"]\n')
    result = CliRunner().invoke(main, list(args), env={
        "LITWATCH_DATABASE_URL": database_url, "LITWATCH_QUERIES_DIR": str(queries),
        "LITWATCH_OUTBOX": str(tmp_path / "outbox"), "LITWATCH_FEEDS_DIR": str(tmp_path / "feeds"),
        "LITWATCH_MAIL_FROM": "litwatch@example.org", **env})
    return result.exit_code, result.stdout, result.stderr


def read(path: Path) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    return parsed


def pmid_of(entry: feedparser.FeedParserDict) -> int:
    return int(entry.link.rstrip("/").rsplit("/", 1)[1])


SEND = ("digest", "--send", "--since", "2026-02-01")


def test_each_digest_writes_the_groups_feed(store: Engine, database_url: str, tmp_path: Path) -> None:
    code, _out, err = cli(tmp_path, database_url, *SEND)
    assert code == 0, err
    feed = read(tmp_path / "feeds" / "headache-lab.atom")
    assert feed.feed.title == "litwatch: headache-lab"
    assert sorted(pmid_of(e) for e in feed.entries) == sorted([ERRATUM, GREEK, RETRACTED, COLLECTIVE, MANY_AUTHORS])
    by_pmid = {pmid_of(e): e for e in feed.entries}
    social = by_pmid[ERRATUM]
    assert social.title.startswith("Social anxiety disorder-associated gut microbiota")
    assert social.id == f"https://pubmed.ncbi.nlm.nih.gov/{ERRATUM}/"
    assert [t.term for t in social.tags] == ["FOXP3"]
    assert "Erratum published" in social.content[0].value and "FOXP3" in social.content[0].value
    assert [link.href for link in social.links] == [social.id]  # the PubMed page
    assert '<a href="https://doi.org/10.' in social.content[0].value
    assert len(social.authors) >= 2 and all(a.name for a in social.authors)
    assert [a.name for a in by_pmid[COLLECTIVE].authors] == [by_pmid[COLLECTIVE].author]
    assert by_pmid[COLLECTIVE].tags[0].term == "migraine"
    assert by_pmid[RETRACTED].title.startswith("[Retracted] ")
    assert "\u03b2-Lactamases" in by_pmid[GREEK].title
    assert [a.name for a in by_pmid[MANY_AUTHORS].authors][:3] == ["Yuxuan Zang", "Bo Cao", "Hongyu Zhao"]
    assert len(by_pmid[MANY_AUTHORS].authors) == 7  # every author, where the digest shows three


def test_entries_keep_their_ids_and_dates_and_the_newest_come_first(store: Engine, database_url: str,
                                                                    tmp_path: Path) -> None:
    assert cli(tmp_path, database_url, *SEND)[0] == 0
    path = tmp_path / "feeds" / "headache-lab.atom"
    first = {e.id: e.updated for e in read(path).entries}
    found(store, [LATER], dt.datetime.now(dt.UTC))
    code, _out, err = cli(tmp_path, database_url, "digest", "--send", "--force")
    assert code == 0, err
    second = read(path)
    assert pmid_of(second.entries[0]) == LATER  # the new digest's paper heads the feed
    assert {e.id: e.updated for e in second.entries[1:]} == first  # a rewrite changes nothing seen
    assert second.feed.updated == second.entries[0].updated
    before = path.read_bytes()
    code, out, _err = cli(tmp_path, database_url, "feed", "headache-lab")
    assert code == 0 and out == f"headache-lab: 6 paper(s) in {path}\n"
    assert path.read_bytes() == before  # written again from the ledger: the same document


def test_the_feed_holds_the_newest_entries_only(store: Engine, database_url: str, tmp_path: Path) -> None:
    assert cli(tmp_path, database_url, *SEND)[0] == 0
    found(store, [LATER], dt.datetime.now(dt.UTC))
    assert cli(tmp_path, database_url, "digest", "--send", "--force")[0] == 0
    out_file = tmp_path / "two.atom"
    code, out, _ = cli(tmp_path, database_url, "feed", "headache-lab", "-o", str(out_file), LITWATCH_FEED_ENTRIES="2")
    assert code == 0 and out.startswith("headache-lab: 2 paper(s)")
    entries = read(out_file).entries
    assert len(entries) == 2 and pmid_of(entries[0]) == LATER


def test_papers_a_backfill_found_are_in_the_digest_but_not_the_feed(store: Engine, database_url: str,
                                                                    tmp_path: Path) -> None:
    found(store, [LATER], WHEN, backfill=True)  # created in 2022, found by a run from 2019
    code, _out, err = cli(tmp_path, database_url, *SEND)
    assert code == 0, err
    [eml] = (tmp_path / "outbox").glob("*.eml")
    assert "Older papers also matched" in eml.read_text()
    pmids = {pmid_of(e) for e in read(tmp_path / "feeds" / "headache-lab.atom").entries}
    assert LATER not in pmids and ERRATUM in pmids


def test_a_digest_that_was_not_delivered_leaves_the_feed_alone(store: Engine, database_url: str,
                                                               tmp_path: Path) -> None:
    dead = {"LITWATCH_SMTP_HOST": "127.0.0.1", "LITWATCH_SMTP_PORT": str(free_port()), "LITWATCH_SMTP_TLS": "none"}
    code, _out, err = cli(tmp_path, database_url, *SEND, **dead)
    assert code == 1 and "cannot connect" in err
    assert not (tmp_path / "feeds").exists()
    code, out, _ = cli(tmp_path, database_url, "feed", "headache-lab", "-o", "-")
    assert code == 0
    parsed = feedparser.parse(out.encode())
    assert not parsed.bozo and parsed.entries == []  # nothing delivered yet: an empty, valid feed
    code, _out, err = cli(tmp_path, database_url, *SEND, "--force")  # the retry delivers it, and the feed
    assert code == 0, err
    assert len(read(tmp_path / "feeds" / "headache-lab.atom").entries) == 5


def test_feed_refuses_what_it_cannot_do(store: Engine, database_url: str, tmp_path: Path) -> None:
    code, _out, err = cli(tmp_path, database_url, "feed", "nope")
    assert code == 2 and err.startswith("litwatch: error: no valid group named 'nope'")
    code, _out, err = cli(tmp_path, database_url, "feed", "headache-lab", "-o", str(tmp_path / "no" / "x.atom"))
    assert code == 2 and "the folder" in err and "does not exist" in err
    code, _out, err = cli(tmp_path, database_url, "feed", "headache-lab", LITWATCH_FEED_ENTRIES="0")
    assert code == 2 and "LITWATCH_FEED_ENTRIES" in err
