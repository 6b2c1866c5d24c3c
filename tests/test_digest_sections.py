"""What a digest tells its readers beyond the new papers: older papers a backfill found (one line
each, after the new ones) and an incomplete week (its feeding queries failed).

Real fixture papers in the store, real messages through the SMTP sink (the ``week`` store and the
helpers of ``test_digest.py``); the unreachable-E-utilities run is ``litwatch run-due`` as a process.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import subprocess
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa
from smtp_sink import Sink, free_port
from sqlalchemy.engine import Engine
from test_digest import (  # noqa: F401  (store and week are fixtures)
    COLLECTIVE,
    ERRATUM,
    GREEK,
    MANY_AUTHORS,
    NOW,
    UPDATED,
    _cli,
    found,
    lab,
    parts,
    settings,
    smtp,
    store,
    week,
)
from test_jobs import LITWATCH, command_env

from litwatch.delivery import digest
from litwatch.delivery.contents import plan_digest
from litwatch.scheduling.jobs import describe_digest
from litwatch.store import models

RUNS = models.table(models.Run)
HITS = models.table(models.QueryHit)
PAPERS = models.table(models.Paper)


def run_receipt(engine: Engine, query: str, status: str, *, started: dt.datetime,
                window_from: dt.date | None = None, error: str | None = None) -> int:
    """A receipt in ``runs`` as a run of ``query`` leaves it."""
    with engine.begin() as conn:
        return int(conn.execute(RUNS.insert().values(
            query_name=query, started_at=started, finished_at=started + dt.timedelta(seconds=3),
            window_from=window_from or started.date() - dt.timedelta(days=3), window_to=started.date(),
            status=status, error=error)).inserted_primary_key[0])


def backfilled(engine: Engine, query: str, pmids: Sequence[int]) -> None:
    """``pmids`` as found by a ``litwatch run --since 2019-01-01`` of ``query`` two days before NOW."""
    when = NOW - dt.timedelta(days=2)
    run_id = run_receipt(engine, query, "ok", started=when, window_from=dt.date(2019, 1, 1))
    with engine.begin() as conn:
        conn.execute(HITS.insert(), [{"query_name": query, "paper_pmid": p, "first_found_at": when,
                                      "last_found_at": when, "run_id": run_id} for p in pmids])


def sent(engine: Engine, sink: Sink, tmp_path: Path, **group: object) -> tuple[EmailMessage, str, str]:
    receipt = digest.deliver_group(engine, settings(tmp_path), lab(**group), now=NOW, mailer=smtp(sink))
    assert receipt.status == "sent", receipt.error
    [msg] = sink.messages()
    text, html = parts(msg)
    return msg, text, html


def subject(msg: EmailMessage) -> str:
    """The Subject as a reader sees it (unfolded)."""
    return " ".join(str(msg["Subject"]).split())


def title(engine: Engine, pmid: int) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.select(PAPERS.c.title).where(PAPERS.c.pmid == pmid)).scalar_one())


# -- older papers -------------------------------------------------------------------------------------


def test_papers_a_backfill_found_follow_the_new_ones_one_line_each(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    old = [36176722, 35649368]  # metapub papers PubMed created in 2022
    backfilled(week, "endometriosis-migraine", old)
    msg, text, html = sent(week, smtp_sink, tmp_path)
    assert subject(msg) == "[litwatch] headache-lab: 6 new papers, 2 older papers (Mon 2 Mar 2026)"
    new_part, older_part = text.split("== Older papers also matched (2) ==")
    assert "6 new papers, 2 older" in text.splitlines()[3]
    for pmid in old:
        assert f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" not in new_part
        line = next(line for line in older_part.splitlines() if line.startswith(f"- {title(week, pmid)[:30]}"))
        assert "(2022)" in older_part and f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" in older_part, line
    assert "Abstract" not in older_part and "PubMed:" not in older_part  # titles and links only
    assert f"https://pubmed.ncbi.nlm.nih.gov/{ERRATUM}/" in new_part
    assert html.index("Older papers also matched") > html.index(f"https://pubmed.ncbi.nlm.nih.gov/{ERRATUM}/")
    assert "&middot; 2022</span>" in html


def test_older_papers_share_max_papers_and_the_new_ones_come_first(week: Engine, tmp_path: Path) -> None:
    old = [36176722, 35649368, 36987902]
    backfilled(week, "endometriosis-migraine", old)
    with week.connect() as conn:
        contents = plan_digest(conn, lab(max_papers=7), now=NOW)
    assert len(contents.papers) == 7 and len(contents.overflow) == 2
    assert set(contents.new) == {ERRATUM, UPDATED, GREEK, COLLECTIVE, MANY_AUTHORS, 993}
    assert contents.older == contents.papers[-1:] and contents.older[0] in old


def test_an_old_paper_a_scheduled_run_finds_is_new(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    """A late-indexed paper: PubMed created it long ago, yet the run searched only recent days."""
    run_id = run_receipt(week, "migraine-immunology", "ok", started=NOW - dt.timedelta(days=1))
    with week.begin() as conn:
        conn.execute(HITS.update().where(HITS.c.query_name == "migraine-immunology").values(run_id=run_id))
    _msg, text, _html = sent(week, smtp_sink, tmp_path)
    assert "Older papers also matched" not in text and "6 new papers" in text


def test_the_status_table_and_the_receipt_line_count_older_papers_apart_from_new(
        week: Engine, database_url: str, smtp_sink: Sink, tmp_path: Path) -> None:
    backfilled(week, "migraine-immunology", [36176722, 35649368])
    code, out, _ = _cli(tmp_path, database_url, "digest", "--since", "2026-02-01")
    assert code == 0 and out.splitlines()[0].split()[-6:] == ["new", "older", "retractions", "published", "to",
                                                              "retry"]
    assert out.splitlines()[1].split()[-5:] == ["4", "2", "0", "0", "0"]  # not 6 new
    receipt = digest.deliver_group(week, settings(tmp_path), lab(), now=NOW, mailer=smtp(smtp_sink))
    assert (receipt.status, receipt.papers, receipt.new, receipt.older) == ("sent", 8, 6, 2)
    assert describe_digest(receipt).startswith(
        "6 new, 2 older, 0 retraction notice(s), 0 now published, 0 overflow, message <litwatch.headache-lab.")


# -- incomplete digests -------------------------------------------------------------------------------


def test_a_week_whose_query_failed_says_incomplete_in_subject_and_at_the_top(
        week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    run_receipt(week, "endometriosis-migraine", "failed", started=NOW - dt.timedelta(days=1),
                error="no E-utilities at http://127.0.0.1:9/: connection refused")
    msg, text, html = sent(week, smtp_sink, tmp_path)
    assert subject(msg) == ("[litwatch] headache-lab: incomplete: 1 of 2 saved queries failed; "
                              "6 new papers (Mon 2 Mar 2026)")
    assert text.splitlines()[3] == "!! incomplete: 1 of 2 saved queries failed; papers may be missing"
    assert text.splitlines()[4].startswith("!! Failed: endometriosis-migraine;")
    assert "Incomplete: 1 of 2 saved queries failed; papers may be missing." in html
    assert html.index("Incomplete:") < html.index("Saved query")


def test_a_week_whose_preprint_search_failed_says_incomplete_too(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    run_receipt(week, "endometriosis-migraine", "ok", started=NOW - dt.timedelta(days=1))
    with week.begin() as conn:  # its PubMed part ran; its Europe PMC step (pipeline/preprints.py) did not
        conn.execute(models.table(models.PreprintRun).insert().values(
            query_name="endometriosis-migraine", source="europepmc", started_at=NOW - dt.timedelta(days=1),
            window_from=dt.date(2026, 2, 20), window_to=dt.date(2026, 3, 1), status="failed",
            error="Europe PMC answered 503 five times"))
    msg, text, _html = sent(week, smtp_sink, tmp_path)
    assert subject(msg).startswith("[litwatch] headache-lab: incomplete: 1 of 2 saved queries failed; ")
    assert text.splitlines()[4].startswith("!! Failed: endometriosis-migraine")


def test_an_empty_week_whose_queries_failed_is_sent_and_never_says_nothing_new(
        store: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    for query in ("migraine-immunology", "endometriosis-migraine"):
        run_receipt(store, query, "failed", started=NOW - dt.timedelta(hours=2), error="connection refused")
    msg, text, html = sent(store, smtp_sink, tmp_path)  # notify_empty is false: sent all the same
    assert subject(msg) == ("[litwatch] headache-lab: incomplete: 2 of 2 saved queries failed; "
                              "0 new papers (Mon 2 Mar 2026)")
    assert "nothing new" not in (subject(msg) + text + html).lower()
    assert "No new papers were found, but not every saved query ran: papers may be missing." in text


def test_a_failure_a_later_run_mended_does_not_make_the_digest_incomplete(
        week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    run_receipt(week, "endometriosis-migraine", "failed", started=NOW - dt.timedelta(days=2))
    run_receipt(week, "endometriosis-migraine", "ok", started=NOW - dt.timedelta(days=1))
    run_receipt(week, "migraine-immunology", "failed", started=NOW - dt.timedelta(days=9))  # before the period
    msg, text, _html = sent(week, smtp_sink, tmp_path)
    assert subject(msg) == "[litwatch] headache-lab: 6 new papers (Mon 2 Mar 2026)"
    assert "incomplete" not in text


def test_run_due_with_e_utilities_unreachable_fails_each_query_in_one_line_and_marks_the_digest(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'litwatch.sqlite'}"
    queries = tmp_path / "queries"
    queries.mkdir()
    for name in ("migraine-immunology", "endometriosis-migraine"):
        (queries / f"{name}.toml").write_text(f'term = "{name.split("-")[0]}[tiab]"\nstart = 2026-01-01\n')
    (queries / "groups.toml").write_text('[groups.headache-lab]\nrecipients = ["lab@example.org"]\n'
                                         'queries = ["migraine-immunology", "endometriosis-migraine"]\n')
    dead = f"http://127.0.0.1:{free_port()}/entrez/eutils/"
    env = command_env(tmp_path, _NoFake(), url, LITWATCH_EUTILS_URL=dead)
    subprocess.run([*LITWATCH, "init"], env=env, check=True, capture_output=True, timeout=60)
    done = subprocess.run([*LITWATCH, "run-due"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    failed = [line for line in done.stdout.splitlines() if line.startswith("query:")]
    assert len(failed) == 2
    for line in failed:
        assert ": failed: " in line and ", 1 requests, " in line
        assert line.endswith(f"error: no E-utilities at {dead}: connection refused (not retried: check "
                             f"LITWATCH_EUTILS_URL, which holds {dead}; NCBI's is "
                             "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/)")
    assert "retrying" not in done.stderr and "HTTPConnectionPool" not in done.stdout + done.stderr
    assert done.stderr.splitlines()[-1] == ("litwatch: error: 2 job(s) failed; a failed query runs again at its next "
                                            "scheduled time and searches the dates it missed")
    [eml] = (tmp_path / "outbox").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert subject(msg).startswith("[litwatch] headache-lab: incomplete: 2 of 2 saved queries failed; ")
    assert "digest:headache-lab: sent" in done.stdout


class _NoFake:
    """command_env wants a fake's URL; this run's URL is overridden with one nobody listens on."""

    url = "http://127.0.0.1:9/"
