"""Digests end to end: real fixture papers in the store, real messages through an SMTP server
(aiosmtpd on 127.0.0.1), parsed back with the ``email`` package; the ledger's exactly-once promise
under refused connections, 451s, 550s and crashes; and the HTML as a browser draws it.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import os
import shutil
import subprocess
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fake_eutils import FakeEutils
from smtp_sink import PASSWORD, Sink, free_port
from sqlalchemy.engine import Engine

from litwatch.cli import main
from litwatch.config import Settings
from litwatch.delivery import digest
from litwatch.delivery import ledger as digest_ledger
from litwatch.delivery.mail import SmtpMailer
from litwatch.errors import InputError, StoreError
from litwatch.files.groups import Group
from litwatch.pipeline import ingest
from litwatch.scheduling import jobs
from litwatch.scheduling.plan import build_plan
from litwatch.store import leases, models

FIXTURES = Path(__file__).parent / "fixtures" / "pubmed"
NOW = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)  # a Monday, 08:00 in Madrid
HITS = models.table(models.QueryHit)
TAGS = models.table(models.PaperTag)
PAPERS = models.table(models.Paper)
DIGESTS = models.table(models.Digest)
ITEMS = models.table(models.DigestItem)

# Real papers from tests/fixtures/pubmed (metapub and the retraction example).
ERRATUM = 38147649  # ErratumIn: "Social anxiety disorder-associated gut microbiota increases social fear."
UPDATED = 36156117  # UpdateOf
COLLECTIVE = 34843274  # a CollectiveName author, no others
GREEK = 35856662  # "OXA-48-Like β-Lactamases: ..."
RETRACTED = 993  # PublicationType "Retracted Publication", RetractionIn 195582
MANY_AUTHORS = 37787043


@pytest.fixture
def store(engine: Engine) -> Engine:
    """The real fixture papers, none of them found by a query yet."""
    files = sorted((FIXTURES / "metapub").glob("*.xml")) + [FIXTURES / "retraction" / "npg_example.xml"]
    ingest.ingest_paths(engine, files)
    return engine


def found(engine: Engine, query: str, pmids: Sequence[int], when: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(HITS.insert(), [{"query_name": query, "paper_pmid": p, "first_found_at": when,
                                      "last_found_at": when} for p in pmids])


def tag(engine: Engine, pmid: int, name: str, kind: str) -> None:
    with engine.begin() as conn:
        conn.execute(TAGS.insert().values(paper_pmid=pmid, tag=name, source="abstract", kind=kind,
                                          matched_text=name, vocab_version="test"))


def lab(**changes: object) -> Group:
    values: dict[str, object] = {"name": "headache-lab", "recipients": ("Ana Ruiz <ana@example.org>", "lab@example.org"),
                                 "queries": ("migraine-immunology", "endometriosis-migraine"), "timezone": "Europe/Madrid"}
    values.update(changes)
    return Group(**values)  # type: ignore[arg-type]


def settings(tmp_path: Path) -> Settings:
    return Settings(outbox=tmp_path / "outbox", mail_from="litwatch@example.org")


def smtp(sink: Sink) -> SmtpMailer:
    return SmtpMailer("127.0.0.1", sink.port, tls="none", timeout=5)


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()).replace("\r\n", "\n"), str(html.get_content())


def ledger(engine: Engine) -> list[tuple[str, str, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(DIGESTS.c.status, DIGESTS.c.message_id, DIGESTS.c.attempts)
                                               .order_by(DIGESTS.c.id))]  # type: ignore[misc]


@pytest.fixture
def week(store: Engine) -> Engine:
    """Six papers found in the week before NOW by the lab's two queries, with tags."""
    found(store, "migraine-immunology", [ERRATUM, UPDATED, GREEK, RETRACTED], NOW - dt.timedelta(days=3))
    found(store, "endometriosis-migraine", [COLLECTIVE, MANY_AUTHORS, GREEK], NOW - dt.timedelta(days=2))
    found(store, "fibromyalgia-migraine", [35649368], NOW - dt.timedelta(days=2))  # not the lab's query
    tag(store, ERRATUM, "FOXP3", "gene")
    tag(store, ERRATUM, "IL-1 signalling", "pathway")
    tag(store, COLLECTIVE, "migraine", "condition")
    tag(store, COLLECTIVE, "endometriosis", "condition")
    return store


def test_a_digest_arrives_with_everything_a_reader_needs(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    receipt = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    assert (receipt.status, receipt.papers, receipt.overflow, receipt.error) == ("sent", 6, 0, None)
    [msg] = smtp_sink.messages()
    assert smtp_sink.received[0][1] == ["ana@example.org", "lab@example.org"]
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Subject"] == "[litwatch] headache-lab: 6 new papers (Mon 2 Mar 2026)"
    assert msg["From"] == "litwatch@example.org"
    assert msg["To"] == "Ana Ruiz <ana@example.org>, lab@example.org"
    assert msg["Message-ID"] == receipt.message_id and receipt.message_id.endswith("@example.org>")
    text, html = parts(msg)

    # grouped by saved query in the group's order, newest first, each paper once
    assert text.index("== migraine-immunology (4) ==") < text.index("== endometriosis-migraine (2) ==")
    first = text.split("== endometriosis-migraine")[0]
    assert first.index("Social anxiety") < first.index("Remdesivir") < first.index("OXA-48-Like") < first.index("oleate")
    assert text.count("OXA-48-Like") == 1 and "Also found by: endometriosis-migraine" in text
    # authors (three, et al.), journal, date, excerpt, links
    assert "Ritz NL, Brocka M, Butler MI, et al. · Proc Natl Acad Sci U S A · 2024 Jan 2" in " ".join(text.split())
    assert "Guideline Development Panel for the Treatment of Depressive Disorders · Am Psychol" in " ".join(text.split())
    assert "https://pubmed.ncbi.nlm.nih.gov/38147649/" in html and "https://doi.org/10.1073/pnas.2308706120" in html
    assert "Social anxiety disorder (SAD) is a crippling psychiatric disorder" in html
    # marks, chips and the comorbidity highlight
    assert "[ERRATUM PUBLISHED]" in text and "Erratum published</span>" in html
    assert "[RETRACTED]" in text and "Retracted</span>" in html
    assert "[UPDATE OF AN EARLIER ARTICLE]" in text
    assert ">FOXP3</span>" in html and ">IL-1 signalling</span>" in html
    assert "COMORBIDITY: endometriosis + migraine" in html and "<b>1</b> comorbidity (highlighted)" in html
    # the coverage receipt: per query, found and new
    cover = text.split("Saved query")[1].split("==")[0]
    rows = [line.split() for line in cover.splitlines()[1:] if line.strip() and not line.startswith("  !")]
    assert rows[:2] == [["migraine-immunology", "4", "4"], ["endometriosis-migraine", "3", "3"]]
    assert "has not run successfully yet" in cover
    assert "35649368" not in text  # found only by a query that does not feed this group
    assert ledger(week) == [("recorded", receipt.message_id, 1)]


def test_a_second_run_sends_nothing_and_the_next_week_only_what_is_new(week: Engine, smtp_sink: Sink,
                                                                       tmp_path: Path) -> None:
    digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    again = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW + dt.timedelta(minutes=5),
                                 mailer=smtp(smtp_sink))
    assert (again.status, again.papers, again.message_id) == ("nothing-new", 0, None)
    assert len(smtp_sink.received) == 1

    later = NOW + dt.timedelta(days=7)
    found(week, "endometriosis-migraine", [36987902], later - dt.timedelta(days=1))
    found(week, "endometriosis-migraine", [ERRATUM], later - dt.timedelta(days=1))  # already sent via the other query
    receipt = digest.deliver_group(week, settings(tmp_path), lab(), now=later, mailer=smtp(smtp_sink))
    assert (receipt.status, receipt.papers) == ("sent", 1)
    text, _ = parts(smtp_sink.messages()[-1])
    assert "Patients over 75 years" in text and "Social anxiety" not in text
    assert "New Mon 2 Mar 2026 – Mon 9 Mar 2026" in text


def test_a_run_that_stored_papers_late_loses_none(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    """A query run stamps its hits when it starts; one that commits after a digest is still caught."""
    digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    found(week, "migraine-immunology", [36987902], NOW - dt.timedelta(minutes=1))
    receipt = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW + dt.timedelta(days=7),
                                   mailer=smtp(smtp_sink))
    assert receipt.papers == 1 and "Patients over 75 years" in parts(smtp_sink.messages()[-1])[0]


def test_values_from_pubmed_are_escaped_and_cannot_inject_headers(week: Engine, smtp_sink: Sink,
                                                                  tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script>\r\nBcc: victim@example.net\nSubject: pwned'
    with week.begin() as conn:
        conn.execute(PAPERS.update().where(PAPERS.c.pmid == ERRATUM).values(
            title=hostile, journal_abbrev="<b>J</b>", abstract="a < b & c > d <img src=x onerror=alert(1)>"))
        conn.execute(models.table(models.Author).update().where(
            models.table(models.Author).c.paper_pmid == ERRATUM).values(last_name="O'Brien\"><i>"))
    digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    [(_, rcpts, raw)] = smtp_sink.received
    assert rcpts == ["ana@example.org", "lab@example.org"]
    [msg] = smtp_sink.messages()
    assert msg.get_all("Bcc") is None and msg.get_all("Subject") == [msg["Subject"]]
    assert "pwned" not in msg["Subject"] and b"\nBcc:" not in raw and b"\nSubject: pwned" not in raw
    text, html = parts(msg)
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Bcc: victim@example.net Subject: pwned" in html
    assert "<img" not in html and "a &lt; b &amp; c &gt; d &lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>J</b>" not in html and "&lt;b&gt;J&lt;/b&gt;" in html
    assert "O&#39;Brien&#34;&gt;&lt;i&gt;" in html
    assert '* <script>alert("x")</script> Bcc: victim@example.net Subject: pwned' in text


def test_a_refused_connection_loses_nothing_and_the_retry_is_the_same_message(week: Engine, smtp_sink: Sink,
                                                                              tmp_path: Path) -> None:
    dead = SmtpMailer("127.0.0.1", free_port(), tls="none", timeout=5)
    failed = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=dead)
    assert failed.status == "failed" and "cannot connect" in (failed.error or "")
    assert ledger(week) == [("failed", failed.message_id, 1)]

    retry = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW + dt.timedelta(hours=1),
                                 mailer=smtp(smtp_sink))
    assert retry.recovered == 1 and retry.recovered_ids == (failed.message_id,) and retry.status == "retried"
    [msg] = smtp_sink.messages()
    assert msg["Message-ID"] == failed.message_id
    assert msg["Date"] == "Mon, 02 Mar 2026 07:00:00 +0000"
    assert len(parts(msg)[0].split("\n* ")) - 1 == 6
    assert [row[0] for row in ledger(week)] == ["recorded"]  # the next digest waits for its own schedule


def test_a_retry_without_the_kept_message_rebuilds_the_same_digest_and_goes_out_alone(
        week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    dead = SmtpMailer("127.0.0.1", free_port(), tls="none", timeout=5)
    failed = digest.deliver_group(week, settings(tmp_path), lab(max_papers=4), now=NOW, mailer=dead)
    for kept in (tmp_path / "outbox" / ".state").iterdir():
        kept.unlink()
    found(week, "migraine-immunology", [36987902], NOW + dt.timedelta(minutes=30))  # arrives meanwhile
    retry = digest.deliver_group(week, settings(tmp_path), lab(max_papers=4), now=NOW + dt.timedelta(hours=1),
                                 mailer=smtp(smtp_sink))
    assert retry.status == "retried" and len(smtp_sink.received) == 1  # overflow and news wait for next Monday
    nxt = digest.deliver_group(week, settings(tmp_path), lab(max_papers=4), now=NOW + dt.timedelta(days=7),
                               mailer=smtp(smtp_sink))
    assert (nxt.status, nxt.recovered) == ("sent", 0)
    first, second = smtp_sink.messages()
    assert first["Message-ID"] == failed.message_id and second["Message-ID"] != failed.message_id
    text = parts(first)[0]
    assert "2 more new papers did not fit" in text and "Patients over 75" not in text
    assert len(text.split("\n* ")) - 1 == 4
    assert "Patients over 75" in parts(second)[0]


@pytest.mark.parametrize("reply", ["451 4.7.1 greylisted, try again later", "554 5.7.1 rejected as spam"])
def test_a_refused_message_is_sent_again_next_run(week: Engine, smtp_sink: Sink, tmp_path: Path, reply: str) -> None:
    smtp_sink.data_reply = reply
    failed = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    assert failed.status == "failed" and reply.split()[0] in (failed.error or "")
    with week.connect() as conn:
        sent = conn.execute(sa.select(sa.func.count()).select_from(ITEMS.join(DIGESTS)).where(
            DIGESTS.c.status == "recorded")).scalar()
    assert sent == 0
    smtp_sink.data_reply = None
    again = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW + dt.timedelta(days=1), mailer=smtp(smtp_sink))
    assert again.recovered == 1
    assert [m["Message-ID"] for m in smtp_sink.messages()] == [failed.message_id]
    assert ledger(week)[0] == ("recorded", failed.message_id, 2)


def test_a_refused_recipient_does_not_stop_the_others_and_is_retried_alone(week: Engine, smtp_sink: Sink,
                                                                           tmp_path: Path) -> None:
    smtp_sink.refuse_rcpt["lab@example.org"] = "550 5.1.1 <lab@example.org>: user unknown"
    first = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    assert (first.status, first.error) == ("sent", None)
    assert first.refused == ("lab@example.org: 550 5.1.1 <lab@example.org>: user unknown",)
    mid = first.message_id
    for hours in (1, 2, 3):  # three retries while the address is still refused
        again = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW + dt.timedelta(hours=hours),
                                     mailer=smtp(smtp_sink))
        assert (again.status, again.recovered_ids, again.refused) == ("retried", (mid,), first.refused)
    assert smtp_sink.copies() == {("ana@example.org", mid): 1}
    assert smtp_sink.rcpt_seen.count("lab@example.org") == 4 and smtp_sink.rcpt_seen.count("ana@example.org") == 1

    del smtp_sink.refuse_rcpt["lab@example.org"]
    fixed = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW + dt.timedelta(hours=4), mailer=smtp(smtp_sink))
    assert (fixed.status, fixed.refused) == ("retried", ())
    assert smtp_sink.copies() == {("ana@example.org", mid): 1, ("lab@example.org", mid): 1}
    assert smtp_sink.received[-1][1] == ["lab@example.org"]
    assert ledger(week) == [("recorded", mid, 5)]
    assert digest.deliver_group(week, settings(tmp_path), lab(), now=NOW + dt.timedelta(hours=5),
                                mailer=smtp(smtp_sink)).status == "nothing-new"


def test_an_address_taken_out_of_the_group_is_no_longer_tried(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    smtp_sink.refuse_rcpt["lab@example.org"] = "550 5.1.1 <lab@example.org>: user unknown"
    first = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    ana_only = lab(recipients=("Ana Ruiz <ana@example.org>",))
    later = digest.deliver_group(week, settings(tmp_path), ana_only, now=NOW + dt.timedelta(hours=1),
                                 mailer=smtp(smtp_sink))
    assert (later.status, later.refused) == ("retried", ())
    assert smtp_sink.copies() == {("ana@example.org", first.message_id): 1}
    assert digest.pending_digests(week, ["headache-lab"]) == {}


def test_a_digest_nobody_got_goes_to_the_group_as_fixed(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    smtp_sink.refuse_rcpt.update({"ana@example.org": "550 5.1.1 unknown", "lab@example.org": "550 5.1.1 unknown"})
    failed = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    assert failed.status == "failed" and smtp_sink.received == []
    smtp_sink.refuse_rcpt.pop("ana@example.org")
    fixed = lab(recipients=("Ana Ruiz <ana@example.org>", "lab-list@example.org"))
    digest.deliver_group(week, settings(tmp_path), fixed, now=NOW + dt.timedelta(days=1), mailer=smtp(smtp_sink))
    [msg] = smtp_sink.messages()
    assert msg["Message-ID"] == failed.message_id
    assert smtp_sink.received[0][1] == ["ana@example.org", "lab-list@example.org"]
    assert msg["To"] == "Ana Ruiz <ana@example.org>, lab-list@example.org"


@pytest.mark.parametrize("crash_at", ["accepted", "recorded"])
def test_a_crash_after_the_server_accepted_never_sends_twice(week: Engine, smtp_sink: Sink, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, crash_at: str) -> None:
    real_set = digest_ledger.set_row

    def crashing_set(engine: Engine, digest_id: int, **values: object) -> None:
        if values.get("status") == crash_at:
            raise StoreError("the database went away")
        real_set(engine, digest_id, **values)

    monkeypatch.setattr(digest_ledger, "set_row", crashing_set)
    with pytest.raises(StoreError):
        digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    monkeypatch.setattr(digest_ledger, "set_row", real_set)
    assert len(smtp_sink.received) == 1
    with week.begin() as conn:  # the lease of the crashed process ran out long ago
        conn.execute(models.table(models.Lease).delete())

    rerun = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW + dt.timedelta(hours=1),
                                 mailer=smtp(smtp_sink))
    assert (rerun.recovered, rerun.status) == (1, "retried")
    assert len(smtp_sink.received) == 1
    assert ledger(week)[0][0] == "recorded"
    assert list((tmp_path / "outbox" / ".state").iterdir()) == []


@pytest.mark.parametrize("left_as, copies", [("failed", 1), ("accepted", 0)])
def test_a_digest_left_before_the_per_recipient_ledger_is_finished_once(week: Engine, smtp_sink: Sink, tmp_path: Path,
                                                                       left_as: str, copies: int) -> None:
    dead = SmtpMailer("127.0.0.1", free_port(), tls="none", timeout=5)
    old = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=dead)
    with week.begin() as conn:  # as revision 0005 left it: no digest_recipients rows
        conn.execute(models.table(models.DigestRecipient).delete())
        conn.execute(DIGESTS.update().values(status=left_as))
    again = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW + dt.timedelta(hours=1), mailer=smtp(smtp_sink))
    assert again.recovered_ids == (old.message_id,)
    assert smtp_sink.copies() == ({("ana@example.org", old.message_id): 1, ("lab@example.org", old.message_id): 1}
                                  if copies else {})
    assert ledger(week)[0][0] == "recorded"


def test_a_paper_retracted_after_it_was_sent_gets_a_notice_once(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    with week.begin() as conn:
        conn.execute(PAPERS.update().where(PAPERS.c.pmid == GREEK).values(retracted=True))
        conn.execute(models.table(models.Correction).insert().values(
            paper_pmid=GREEK, position=99, ref_type="RetractionIn", ref_pmid=40000001, ref_source="Antimicrob Agents"))
    later = NOW + dt.timedelta(days=7)
    receipt = digest.deliver_group(week, settings(tmp_path), lab(), now=later, mailer=smtp(smtp_sink))
    assert (receipt.status, receipt.papers, receipt.retraction_notices) == ("sent", 0, 1)
    msg = smtp_sink.messages()[-1]
    assert msg["Subject"] == "[litwatch] headache-lab: 1 retraction notice (Mon 9 Mar 2026)"
    text, html = parts(msg)
    assert "RETRACTED SINCE WE SENT IT" in text and "OXA-48-Like" in text and "sent Mon 2 Mar 2026" in text
    assert "https://pubmed.ncbi.nlm.nih.gov/40000001/" in html
    # 993 was already retracted when sent (and marked so): no notice for it
    assert "993" not in text.split("RETRACTED SINCE WE SENT IT")[1].split("Saved query")[0]
    assert digest.deliver_group(week, settings(tmp_path), lab(), now=later + dt.timedelta(days=7),
                                mailer=smtp(smtp_sink)).status == "nothing-new"


def test_overflow_is_counted_and_comes_first_next_time(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    receipt = digest.deliver_group(week, settings(tmp_path), lab(max_papers=4), now=NOW, mailer=smtp(smtp_sink))
    assert (receipt.papers, receipt.overflow) == (4, 2)
    text, html = parts(smtp_sink.messages()[0])
    assert "2 more new papers did not fit (at most 4 per digest); they come first in the next digest." in text
    assert "2 more new papers</b> did not fit" in html
    nxt = digest.deliver_group(week, settings(tmp_path), lab(max_papers=4), now=NOW + dt.timedelta(days=7),
                               mailer=smtp(smtp_sink))
    assert (nxt.papers, nxt.overflow) == (2, 0)
    text2, _ = parts(smtp_sink.messages()[1])
    assert "Includes 2 papers held over from the last digest." in text2
    pmids = lambda t: {int(u.rstrip("/").split("/")[-1]) for u in t.split() if "pubmed.ncbi" in u}  # noqa: E731
    assert pmids(text) | pmids(text2) == {ERRATUM, UPDATED, GREEK, RETRACTED, COLLECTIVE, MANY_AUTHORS}
    assert not pmids(text) & pmids(text2)


def test_tags_filter_and_group_by_tag(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    group = lab(tags=("il-1 signalling", "migraine"), group_by="tag")
    receipt = digest.deliver_group(week, settings(tmp_path), group, now=NOW, mailer=smtp(smtp_sink))
    assert receipt.papers == 2
    text, _ = parts(smtp_sink.messages()[0])
    assert "== il-1 signalling (1) ==" in text and "== migraine (1) ==" in text
    assert "Social anxiety" in text.split("== migraine")[0] and "Guideline Development" in text.split("== migraine")[1]


def test_an_empty_week_sends_nothing_unless_asked(store: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    quiet = digest.deliver_group(store, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    assert quiet.status == "nothing-new" and smtp_sink.received == []
    asked = digest.deliver_group(store, settings(tmp_path), lab(notify_empty=True), now=NOW + dt.timedelta(days=7),
                                 mailer=smtp(smtp_sink))
    assert asked.status == "sent" and asked.papers == 0
    msg = smtp_sink.messages()[0]
    assert msg["Subject"] == "[litwatch] headache-lab: nothing new (Mon 9 Mar 2026)"
    assert "Nothing new for this group in this period." in parts(msg)[0]


def test_preview_writes_files_and_leaves_the_ledger_alone(week: Engine, tmp_path: Path) -> None:
    paths = digest.preview_group(week, settings(tmp_path), lab(), now=NOW, out_dir=tmp_path / "preview")
    assert [p.name for p in paths] == ["headache-lab.html", "headache-lab.txt", "headache-lab.eml"]
    assert "Social anxiety disorder" in paths[0].read_text(encoding="utf-8")
    assert ledger(week) == []
    assert digest.preview_group(week, settings(tmp_path), lab(queries=()), now=NOW, out_dir=tmp_path / "p2") == []


def test_without_smtp_the_outbox_is_the_delivery(week: Engine, tmp_path: Path) -> None:
    receipt = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW)
    outbox = tmp_path / "outbox"
    files = sorted(p.name for p in outbox.iterdir() if p.is_file())
    stem = receipt.message_id.strip("<>").split("@")[0]  # type: ignore[union-attr]
    assert files == [f"{stem}.eml", f"{stem}.html"]
    parsed = email.message_from_bytes((outbox / f"{stem}.eml").read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == receipt.message_id
    assert ledger(week)[0][0] == "recorded"
    assert digest.deliver_group(week, settings(tmp_path), lab(), now=NOW).status == "nothing-new"


def test_due_follows_the_schedule_in_the_group_timezone(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    group = lab()  # Mondays 07:00 Europe/Madrid
    job = build_plan([], [group], []).digest_job(group.name)
    worker = jobs.Worker(week, settings(tmp_path), clock=lambda: NOW)
    assert worker.is_due(job, NOW) and jobs.due_at(week, job) is None  # never sent: due at once
    digest.deliver_group(week, settings(tmp_path), group, now=NOW, mailer=smtp(smtp_sink))
    assert jobs.due_at(week, job) == dt.datetime(2026, 3, 9, 6, 0, tzinfo=dt.UTC)
    assert not worker.is_due(job, dt.datetime(2026, 3, 9, 5, 59, tzinfo=dt.UTC))
    assert worker.is_due(job, dt.datetime(2026, 3, 9, 6, 0, tzinfo=dt.UTC))


def test_bad_input_raises(week: Engine, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="timezone-aware"):
        digest.deliver_group(week, settings(tmp_path), lab(), now=dt.datetime(2026, 3, 2))
    with pytest.raises(InputError, match="LITWATCH_MAIL_FROM"):
        digest.deliver_group(week, Settings(mail_from="not an address"), lab(), now=NOW)


def _cli(tmp_path: Path, database_url: str, *args: str, env: dict[str, str] | None = None,
         group: str = "") -> tuple[int, str, str]:
    queries = tmp_path / "queries"
    queries.mkdir(exist_ok=True)
    (queries / "migraine-immunology.toml").write_text('term = "migraine[tiab]"\ngroups = ["headache-lab"]\n')
    (queries / "groups.toml").write_text('[groups.headache-lab]\nrecipients = ["lab@example.org"]\n' + group)
    result = CliRunner().invoke(main, list(args), env={
        "LITWATCH_DATABASE_URL": database_url, "LITWATCH_QUERIES_DIR": str(queries),
        "LITWATCH_OUTBOX": str(tmp_path / "outbox"), **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def test_the_digest_command(week: Engine, database_url: str, tmp_path: Path) -> None:
    since = ("--since", "2026-02-01")  # the fixture's papers were found before NOW, not this week
    code, out, _ = _cli(tmp_path, database_url, "digest", *since)
    assert code == 0 and out.splitlines()[1].split()[:2] == ["headache-lab", "1"]
    assert out.splitlines()[1].split()[-5:] == ["4", "0", "0", "0", "0"]  # new, older, retractions, published, to retry
    code, out, _ = _cli(tmp_path, database_url, "digest", "--preview", str(tmp_path / "pv"), *since)
    assert code == 0 and (tmp_path / "pv" / "headache-lab.html").is_file()
    code, _, err = _cli(tmp_path, database_url, "digest", "--group", "nope")
    assert code == 2 and "no valid group named 'nope'" in err

    dead = {"LITWATCH_SMTP_HOST": "127.0.0.1", "LITWATCH_SMTP_PORT": str(free_port()), "LITWATCH_SMTP_TLS": "none",
            "LITWATCH_SMTP_USER": "digest", "LITWATCH_SMTP_PASSWORD": PASSWORD}
    code, out, err = _cli(tmp_path, database_url, "digest", "--send", *since, env=dead)
    assert code == 1 and "cannot connect" in err
    assert "(it is sent again, unchanged, at the next scheduled time, Mon " in err and "now with --send --force)" in err
    assert PASSWORD not in out + err
    code, out, _ = _cli(tmp_path, database_url, "digest", "--send", *since)  # a failed digest waits for its schedule
    assert code == 0 and out.splitlines()[1].split()[:3] == ["headache-lab", "not", "due"]

    code, out, err = _cli(tmp_path, database_url, "digest", "--send", "--force", *since)
    assert code == 0, err
    [retried] = out.splitlines()[1:]
    assert retried.split()[:2] == ["headache-lab", "retried"] and retried.endswith(".eml")
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    code, out, _ = _cli(tmp_path, database_url, "digest", "--send")
    assert code == 0 and "not due" in out


@pytest.fixture
def fresh(store: Engine, fake_eutils: FakeEutils) -> Engine:
    """Three of the lab's papers found an hour ago by the real clock, which the commands read; the
    commands' E-utilities is the loopback fake (``run-due`` runs the saved query first: it finds nothing)."""
    found(store, "migraine-immunology", [ERRATUM, UPDATED, GREEK], leases.utcnow() - dt.timedelta(hours=1))
    return store


def _eutils(fake: FakeEutils, **more: str) -> dict[str, str]:
    return {"LITWATCH_EUTILS_URL": fake.url, "LITWATCH_EMAIL": "librarian@example.org", **more}


def test_digest_send_and_run_due_agree_that_a_digest_that_failed_an_hour_ago_waits_for_its_schedule(
        fresh: Engine, database_url: str, fake_eutils: FakeEutils, tmp_path: Path) -> None:
    now = leases.utcnow()
    fire = (now + dt.timedelta(days=3)).replace(hour=7, minute=0, second=0, microsecond=0)
    weekly = f'schedule = "0 7 * * {fire.isoweekday() % 7}"\n'  # weekly, three days from now (the Wednesday example)
    dead = {"LITWATCH_SMTP_HOST": "127.0.0.1", "LITWATCH_SMTP_PORT": str(free_port()), "LITWATCH_SMTP_TLS": "none"}
    code, _, err = _cli(tmp_path, database_url, "digest", "--send", env=_eutils(fake_eutils, **dead), group=weekly)
    assert code == 1 and "cannot connect" in err
    with fresh.begin() as conn:
        conn.execute(DIGESTS.update().values(created_at=now - dt.timedelta(hours=1)))

    code, out, err = _cli(tmp_path, database_url, "digest", "--send", env=_eutils(fake_eutils), group=weekly)
    assert code == 0, err
    assert out.splitlines()[1].split()[:3] == ["headache-lab", "not", "due"]
    assert out.splitlines()[1].endswith(f"next: {fire:%a} {fire.day} {fire:%b %H:%M}")
    code, out, err = _cli(tmp_path, database_url, "run-due", env=_eutils(fake_eutils), group=weekly)
    assert code == 0, err
    assert "query:migraine-immunology: ok" in out and "digest:" not in out  # the digest was not due
    assert [row[0] for row in ledger(fresh)] == ["failed"] and list((tmp_path / "outbox").glob("*.eml")) == []

    code, out, err = _cli(tmp_path, database_url, "digest", "--send", "--force", env=_eutils(fake_eutils), group=weekly)
    assert code == 0, err
    assert out.splitlines()[1:] and [line.split()[:2] for line in out.splitlines()[1:]] == [["headache-lab", "retried"]]
    assert [row[0] for row in ledger(fresh)] == ["recorded"]  # sent alone: the next waits for its schedule
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


@pytest.mark.parametrize("first, second", [("digest --send", "run-due"), ("run-due", "digest --send")])
def test_a_digest_sent_by_one_command_is_not_sent_again_by_the_other(
        fresh: Engine, database_url: str, fake_eutils: FakeEutils, tmp_path: Path, first: str, second: str) -> None:
    code, out, err = _cli(tmp_path, database_url, *first.split(), env=_eutils(fake_eutils))
    assert code == 0, err
    assert ("digest:headache-lab: sent: 3 new, 0 older" in out) if first == "run-due" else \
        (out.splitlines()[1].split()[:3] == ["headache-lab", "sent", "3"])
    code, out, err = _cli(tmp_path, database_url, *second.split(), env=_eutils(fake_eutils))
    assert code == 0, err
    # (its last line names the jobs due next, which may be this digest's next time)
    assert ("query:migraine-immunology: ok" in out and "digest:headache-lab: sent" not in out) if second == "run-due" else \
        (out.splitlines()[1].split()[:3] == ["headache-lab", "not", "due"])
    assert [row[0] for row in ledger(fresh)] == ["recorded"]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_digest_send_and_run_due_take_the_same_lease(fresh: Engine, database_url: str, fake_eutils: FakeEutils,
                                                     tmp_path: Path) -> None:
    leases.acquire(fresh, "digest:headache-lab", holder="other-host:4242:ab", ttl=300, now=leases.utcnow())
    code, out, err = _cli(tmp_path, database_url, "digest", "--send", env=_eutils(fake_eutils))
    assert (code, err) == (0, "")
    assert "skipped (sending in other-host:4242:ab)" in out.splitlines()[1]
    code, out, err = _cli(tmp_path, database_url, "run-due", env=_eutils(fake_eutils))
    assert ("digest:headache-lab: skipped (running in other-host:4242:ab): digest:headache-lab is held by "
            "other-host:4242:ab since ") in out and code == 0
    assert ledger(fresh) == [] and not (tmp_path / "outbox").exists()


@pytest.mark.parametrize("fault, next_step", [
    ("refused", "a digest that failed goes again, unchanged, at its next scheduled time (or now with "
                "`litwatch digest --send --force`)"),
    ("dropped after DATA", "an uncertain digest is never sent again by itself (`litwatch digest` says what to do)"),
])
def test_run_due_says_what_becomes_of_a_failed_digest(fresh: Engine, database_url: str, fake_eutils: FakeEutils,
                                                      smtp_sink: Sink, tmp_path: Path, fault: str, next_step: str) -> None:
    smtp_sink.drop_after_data = fault == "dropped after DATA"
    port = smtp_sink.port if smtp_sink.drop_after_data else free_port()
    code, out, err = _cli(tmp_path, database_url, "run-due", env=_eutils(
        fake_eutils, LITWATCH_SMTP_HOST="127.0.0.1", LITWATCH_SMTP_PORT=str(port), LITWATCH_SMTP_TLS="none"))
    assert code == 1 and "query:migraine-immunology: ok" in out and "digest:headache-lab: failed" in out
    assert err.splitlines()[-1] == f"litwatch: error: 1 job(s) failed; {next_step}"


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="needs headless Chromium (Debian package `chromium`; .ci/run installs it)")
@pytest.mark.parametrize("width", [390, 800])
def test_the_html_renders_in_a_browser(week: Engine, tmp_path: Path, width: int) -> None:
    [html, _, _] = digest.preview_group(week, settings(tmp_path), lab(), now=NOW, out_dir=tmp_path / "pv")
    shot = tmp_path / f"digest-{width}.png"
    profile = tmp_path / "chromium-profile"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={profile}", f"--window-size={width},1400", f"--screenshot={shot}", html.as_uri()],
        check=True, capture_output=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert shot.is_file() and _png_size(shot) == (width, 1400)
    from PIL import Image  # matplotlib's own dependency

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, links, chips: not a blank page
    if os.environ.get("KEEP_DIGEST_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["KEEP_DIGEST_SCREENSHOTS"]) / shot.name)
