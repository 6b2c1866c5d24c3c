"""Preprints in digests (``delivery/versions.py``), end to end through SMTP on loopback: the
badge, one "now published in <journal>" notice instead of the journal version sent again, and
``preprints = false``.

Real records: the medRxiv preprint PPR1036674 (tests/fixtures/europepmc) and PubMed 36987902
(tests/fixtures/pubmed/metapub). The recorded preprint names no journal version; the test gives
it one as Europe PMC does (a ``commentCorrectionList`` "Preprint of" link).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import feedparser
import pytest
import sqlalchemy as sa
from smtp_sink import Sink
from sqlalchemy.engine import Engine
from test_digest import _cli

from litwatch.config import Settings
from litwatch.delivery import digest, feed
from litwatch.delivery.mail import SmtpMailer
from litwatch.files.groups import Group
from litwatch.pipeline import ingest
from litwatch.scheduling.jobs import describe_digest
from litwatch.sources.europepmc_results import read_result
from litwatch.store import models, works

FIXTURES = Path(__file__).parent / "fixtures"
NOW = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)
JOURNAL_PMID = 36987902
PREPRINT_KEY = -1036674
HITS = models.table(models.QueryHit)
ITEMS = models.table(models.DigestItem)


def found(engine: Engine, pmid: int, when: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(HITS.insert().values(query_name="migraine-immunology", paper_pmid=pmid, first_found_at=when,
                                          last_found_at=when))


@pytest.fixture
def preprint_sent(engine: Engine) -> Engine:
    """The preprint, linked by Europe PMC to 36987902, found three days before NOW."""
    answer = json.loads((FIXTURES / "europepmc" / "search_lite_preprints.json").read_text(encoding="utf-8"))
    result = copy.deepcopy(next(r for r in answer["resultList"]["result"] if r["id"] == "PPR1036674"))
    result["commentCorrectionList"] = {"commentCorrection": [{"id": str(JOURNAL_PMID), "source": "MED",
                                                              "type": "Preprint of"}]}
    with engine.begin() as conn:
        works.save_preprints(conn, [read_result(result)], now=NOW - WEEK)
    found(engine, PREPRINT_KEY, NOW - dt.timedelta(days=3))
    return engine


def journal_version_arrives(engine: Engine, when: dt.datetime) -> None:
    ingest.ingest_paths(engine, [FIXTURES / "pubmed" / "metapub" / f"{JOURNAL_PMID}.xml"])
    with engine.begin() as conn:
        assert len(works.link_works(conn, now=when)) == 1
    found(engine, JOURNAL_PMID, when)


def lab(**changes: object) -> Group:
    values: dict[str, object] = {"name": "headache-lab", "recipients": ("lab@example.org",),
                                 "queries": ("migraine-immunology",)}
    values.update(changes)
    return Group(**values)  # type: ignore[arg-type]


def send(engine: Engine, sink: Sink, group: Group, now: dt.datetime, tmp_path: Path) -> digest.DeliveryReceipt:
    return digest.deliver_group(engine, Settings(outbox=tmp_path / "outbox", mail_from="litwatch@example.org"),
                                group, now=now, mailer=SmtpMailer("127.0.0.1", sink.port, tls="none", timeout=5))


def text_of(sink: Sink) -> str:
    body = sink.messages()[-1].get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_a_preprint_is_badged_and_links_to_europe_pmc(preprint_sent: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    receipt = send(preprint_sent, smtp_sink, lab(), NOW, tmp_path)
    assert (receipt.status, receipt.papers) == ("sent", 1)
    text = text_of(smtp_sink)
    assert "Red meat intake interacts" in text and "[PREPRINT (NOT PEER REVIEWED)]" in text
    assert "Europe PMC: https://europepmc.org/article/PPR/PPR1036674" in text
    html = smtp_sink.messages()[-1].get_body(("html",))
    assert html is not None and "preprint (not peer reviewed)" in str(html.get_content())
    path, _count = feed.write_feed(preprint_sent, Settings(outbox=tmp_path / "outbox"), lab(), now=NOW)
    [entry] = feedparser.parse(path.read_bytes()).entries
    assert entry.id == entry.link == "https://europepmc.org/article/PPR/PPR1036674"
    assert entry.title.startswith("[Preprint] Red meat intake interacts")
    assert "Preprint (not peer reviewed)" in entry.content[0].value
    assert "Europe PMC PPR1036674" in entry.content[0].value and "PubMed" not in entry.content[0].value


def test_the_group_that_got_the_preprint_gets_one_now_published_notice(preprint_sent: Engine, smtp_sink: Sink,
                                                                       tmp_path: Path, database_url: str) -> None:
    send(preprint_sent, smtp_sink, lab(), NOW, tmp_path)
    journal_version_arrives(preprint_sent, NOW + dt.timedelta(days=2))
    code, out, _ = _cli(tmp_path, database_url, "digest", "--since", f"{NOW + dt.timedelta(days=1):%Y-%m-%d}")
    assert code == 0 and out.splitlines()[1].split()[-5:] == ["0", "0", "0", "1", "0"]  # new ... published, to retry
    receipt = send(preprint_sent, smtp_sink, lab(), NOW + WEEK, tmp_path)
    assert (receipt.status, receipt.papers, receipt.published) == ("sent", 0, 1)  # not sent again as new
    assert describe_digest(receipt).startswith("0 new, 0 older, 0 retraction notice(s), 1 now published, 0 overflow")
    message = smtp_sink.messages()[-1]
    assert message["Subject"] == "[litwatch] headache-lab: 1 now published (Mon 9 Mar 2026)"
    text = text_of(smtp_sink)
    assert "PREPRINTS WE SENT, NOW PUBLISHED" in text and "Patients over 75 years admitted" in text
    assert "now published in Tidsskrift for den Norske laegeforening" in text and "(was a medRxiv preprint)" in text
    assert send(preprint_sent, smtp_sink, lab(), NOW + 2 * WEEK, tmp_path).status == "nothing-new"  # once
    with preprint_sent.connect() as conn:
        kinds = conn.execute(sa.select(ITEMS.c.paper_pmid, ITEMS.c.item_kind).order_by(ITEMS.c.digest_id)).all()
    assert [tuple(k) for k in kinds] == [(PREPRINT_KEY, "paper"), (JOURNAL_PMID, "published_notice")]


def test_a_group_that_never_got_the_preprint_gets_the_journal_version_once(preprint_sent: Engine, smtp_sink: Sink,
                                                                           tmp_path: Path) -> None:
    journal_version_arrives(preprint_sent, NOW - dt.timedelta(days=1))
    receipt = send(preprint_sent, smtp_sink, lab(), NOW, tmp_path)
    assert (receipt.status, receipt.papers) == ("sent", 1)
    text = text_of(smtp_sink)
    assert "Patients over 75 years admitted" in text and "Red meat intake" not in text and "PREPRINT" not in text


def test_a_group_can_leave_preprints_out(preprint_sent: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    assert send(preprint_sent, smtp_sink, lab(preprints=False), NOW, tmp_path).status == "nothing-new"
    assert smtp_sink.messages() == []
