"""The update pass: a stored paper PubMed revised (retracted) is fetched again, stored as revised,
re-tagged, and the group that was sent it gets one retraction notice; over real sockets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from fake_eutils import FakeEutils
from sqlalchemy.engine import Engine
from test_runner import QUERY, client_for, load_real_records

from litwatch.config import Settings
from litwatch.delivery import digest
from litwatch.files.groups import Group
from litwatch.pipeline import run as runner
from litwatch.store import models
from litwatch.store.tags import load_tagger

DAY = dt.date(2026, 3, 2)
GREEK = 35856662  # "OXA-48-Like β-Lactamases: ...", a real record, not retracted
NOTICE = 40000001  # the retraction notice's PMID
LAB = Group(name="headache-lab", recipients=("lab@example.org",), queries=(QUERY.name,))
TAGGER = load_tagger(Path(__file__).parent.parent / "queries" / "vocab")


def at(day: dt.date, hour: int = 6) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def run_on(engine: Engine, fake: FakeEutils, day: dt.date) -> runner.Receipt:
    query = QUERY.__class__(**{**QUERY.__dict__, "start": day - dt.timedelta(days=30)})
    receipt = runner.run_query(engine, client_for(fake), query, today=day, clock=lambda: at(day), tagger=TAGGER)
    assert receipt.ok, receipt.error
    return receipt


def paper(engine: Engine, pmid: int) -> tuple[bool, set[str], set[tuple[str, int | None]]]:
    with engine.connect() as conn:
        retracted = conn.execute(sa.text("SELECT retracted FROM papers WHERE pmid = :p"), {"p": pmid}).scalar_one()
        types = set(conn.execute(sa.text("SELECT name FROM publication_types WHERE paper_pmid = :p"), {"p": pmid})
                    .scalars())
        links = {(r[0], r[1]) for r in conn.execute(
            sa.text("SELECT ref_type, ref_pmid FROM corrections WHERE paper_pmid = :p"), {"p": pmid})}
    return bool(retracted), types, links


def test_a_retraction_published_after_a_paper_was_sent_reaches_the_store_and_the_group_once(
    engine: Engine, fake_eutils: FakeEutils, tmp_path: Path
) -> None:
    real = load_real_records(fake_eutils, DAY - dt.timedelta(days=2))
    first = run_on(engine, fake_eutils, DAY)
    assert first.new == len(real) and first.updated == 0
    settings = Settings(outbox=tmp_path / "outbox", mail_from="litwatch@example.org")
    sent = digest.deliver_group(engine, settings, LAB, now=at(DAY, 8))
    assert (sent.status, sent.papers, sent.retraction_notices) == ("sent", len(real), 0)
    assert paper(engine, GREEK)[0] is False

    fake_eutils.revise(GREEK, on=DAY + dt.timedelta(days=3), retracted_by=NOTICE)  # PubMed, days later
    fake_eutils.requests.clear()
    week = run_on(engine, fake_eutils, DAY + dt.timedelta(days=7))
    assert (week.new, week.updated) == (0, 1)
    # one ESearch by create date, one by modification date, one EFetch of the revised paper
    assert (week.requests, week.update_requests) == (3, 2) == (fake_eutils.count(), 2)
    retracted, types, links = paper(engine, GREEK)
    assert retracted and "Retracted Publication" in types and ("RetractionIn", NOTICE) in links
    with engine.connect() as conn:
        row = conn.execute(sa.select(models.table(models.Run)).order_by(sa.text("id DESC")).limit(1)).one()
    assert (row.updated, row.update_requests) == (1, 2)

    notice = digest.deliver_group(engine, settings, LAB, now=at(DAY + dt.timedelta(days=7), 8))
    assert (notice.status, notice.papers, notice.retraction_notices) == ("sent", 0, 1)
    again = digest.deliver_group(engine, settings, LAB, now=at(DAY + dt.timedelta(days=14), 8))
    assert again.retraction_notices == 0 and again.status == "nothing-new"

    fake_eutils.requests.clear()
    quiet = run_on(engine, fake_eutils, DAY + dt.timedelta(days=14))  # day 3 is behind the ledger and its overlap now
    assert (quiet.updated, quiet.update_requests, fake_eutils.count("efetch.fcgi")) == (0, 1, 0)


def test_a_revised_paper_is_tagged_again(engine: Engine, fake_eutils: FakeEutils) -> None:
    load_real_records(fake_eutils, DAY - dt.timedelta(days=2))
    run_on(engine, fake_eutils, DAY)
    crdt, xml = fake_eutils.records[GREEK]
    fake_eutils.add_record(GREEK, crdt, xml.replace(b"<ArticleTitle>", b"<ArticleTitle>TP53 and ", 1))
    fake_eutils.revise(GREEK, on=DAY + dt.timedelta(days=3))
    assert run_on(engine, fake_eutils, DAY + dt.timedelta(days=5)).updated == 1
    with engine.connect() as conn:
        tags = set(conn.execute(sa.text("SELECT tag FROM paper_tags WHERE paper_pmid = :p"), {"p": GREEK}).scalars())
    assert "TP53" in tags


def test_errata_concerns_and_finished_indexing_are_marked_on_the_stored_paper(
    engine: Engine, fake_eutils: FakeEutils
) -> None:
    indexed = 38833988  # a real in-process record: no MeSH headings yet
    load_real_records(fake_eutils, DAY - dt.timedelta(days=2))
    run_on(engine, fake_eutils, DAY)
    crdt, xml = fake_eutils.records[indexed]
    mesh = (b'<MeshHeadingList><MeshHeading><DescriptorName UI="D016158" MajorTopicYN="Y">Genes, p53'
            b"</DescriptorName></MeshHeading></MeshHeadingList></MedlineCitation>")
    fake_eutils.add_record(indexed, crdt, xml.replace(b"</MedlineCitation>", mesh, 1))
    fake_eutils.revise(indexed, on=DAY + dt.timedelta(days=2),
                       links=[("ErratumIn", 40000002), ("ExpressionOfConcernIn", 40000003)])
    receipt = run_on(engine, fake_eutils, DAY + dt.timedelta(days=4))
    assert receipt.updated == 1
    retracted, _types, links = paper(engine, indexed)
    assert not retracted and {("ErratumIn", 40000002), ("ExpressionOfConcernIn", 40000003)} <= links
    with engine.connect() as conn:
        headings = set(conn.execute(sa.text("SELECT descriptor_name FROM mesh_headings WHERE paper_pmid = :p"),
                                    {"p": indexed}).scalars())
        revised, updated_at = conn.execute(sa.text("SELECT date_revised, updated_at FROM papers WHERE pmid = :p"),
                                           {"p": indexed}).one()
    assert headings == {"Genes, p53"}
    assert str(revised) == str(DAY + dt.timedelta(days=2)) and str(updated_at).startswith(str(DAY + dt.timedelta(days=4)))
