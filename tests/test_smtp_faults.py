"""Each digest reaches each recipient once under SMTP faults and kills: what every mailbox holds.

A real SMTP server on 127.0.0.1 (smtp_sink.py) refuses one recipient, answers 451 to DATA, says
421 at its greeting, resets the connection, or takes the message and hangs up before answering;
``litwatch digest --send`` runs in-process and, for the kill, as a subprocess SIGKILLed while the
server takes the message. The assertions count copies per Message-ID per address.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_eutils import FakeEutils
from smtp_sink import Sink, free_port
from sqlalchemy.engine import Engine
from test_digest import ERRATUM, GREEK, NOW, UPDATED, found, lab, ledger, settings, smtp, store, week  # noqa: F401
from test_digest_sections import backfilled
from test_jobs import LITWATCH, command_env

from litwatch.cli import main
from litwatch.delivery import digest
from litwatch.delivery.mail import SmtpMailer
from litwatch.scheduling.jobs import describe_digest
from litwatch.store import leases

ANA, LAB = "ana@example.org", "lab@example.org"
HEALED: dict[str, int] = {ANA: 1, LAB: 1}


def break_sink(sink: Sink, mode: str) -> SmtpMailer:
    """Make the sink misbehave as ``mode`` says; returns the mailer that meets the fault."""
    if mode == "connection refused":
        return SmtpMailer("127.0.0.1", free_port(), tls="none", timeout=5)
    if mode == "reset":
        sink.reset = True
    elif mode == "421 at greeting":
        sink.greeting = "421 4.3.2 too busy, try later"
    elif mode == "451 on DATA":
        sink.data_reply = "451 4.3.0 mailbox busy, try later"
    elif mode == "550 for lab@ only":
        sink.refuse_rcpt[LAB] = "550 5.1.1 <lab@example.org>: user unknown"
    elif mode == "drop after DATA":
        sink.drop_after_data = True
    return smtp(sink)


def heal(sink: Sink) -> None:
    sink.reset = sink.drop_after_data = False
    sink.greeting = sink.data_reply = None
    sink.refuse_rcpt.clear()


def test_a_retry_after_a_451_with_overflow_sends_that_digest_only(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    smtp_sink.data_reply = "451 4.3.0 mailbox busy, try later"
    failed = digest.deliver_group(week, settings(tmp_path), lab(max_papers=4), now=NOW, mailer=smtp(smtp_sink))
    assert (failed.status, failed.overflow) == ("failed", 2)
    smtp_sink.data_reply = None
    digest.deliver_group(week, settings(tmp_path), lab(max_papers=4), now=NOW + dt.timedelta(minutes=5),
                         mailer=smtp(smtp_sink))
    assert [m["Message-ID"] for m in smtp_sink.messages()] == [failed.message_id]
    monday = digest.deliver_group(week, settings(tmp_path), lab(max_papers=4), now=NOW + dt.timedelta(days=7),
                                  mailer=smtp(smtp_sink))
    assert (monday.status, monday.papers) == ("sent", 2)  # the overflow, on its own schedule


def test_a_digest_that_fails_again_is_counted_from_its_ledger(week: Engine, smtp_sink: Sink, tmp_path: Path) -> None:
    """The second try sends the frozen digest: its receipt still tells its older papers apart."""
    backfilled(week, "endometriosis-migraine", [36176722, 35649368])
    smtp_sink.data_reply = "451 4.3.0 mailbox busy, try later"
    first = digest.deliver_group(week, settings(tmp_path), lab(max_papers=7), now=NOW, mailer=smtp(smtp_sink))
    again = digest.deliver_group(week, settings(tmp_path), lab(max_papers=7), now=NOW + dt.timedelta(minutes=5),
                                 mailer=smtp(smtp_sink))
    assert (again.status, again.message_id) == ("failed", first.message_id)
    assert describe_digest(again) == describe_digest(first) and describe_digest(again).startswith(
        "6 new, 1 older, 0 retraction notice(s), 0 now published, 1 overflow, message <")


def _cli(tmp_path: Path, database_url: str, smtp_port: int, *args: str) -> tuple[int, str, str]:
    queries = tmp_path / "queries"
    queries.mkdir(exist_ok=True)
    (queries / "migraine-immunology.toml").write_text('term = "migraine[tiab]"\ngroups = ["headache-lab"]\n')
    (queries / "groups.toml").write_text(f'[groups.headache-lab]\nrecipients = ["{ANA}", "{LAB}"]\n')
    result = CliRunner().invoke(main, ["digest", *args], env={
        "LITWATCH_DATABASE_URL": database_url, "LITWATCH_QUERIES_DIR": str(queries),
        "LITWATCH_OUTBOX": str(tmp_path / "outbox"), "LITWATCH_SMTP_HOST": "127.0.0.1",
        "LITWATCH_SMTP_PORT": str(smtp_port), "LITWATCH_SMTP_TLS": "none"})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def fresh(store: Engine) -> Engine:  # noqa: F811
    """Three of the lab's papers found an hour ago by the real clock, which the commands read."""
    found(store, "migraine-immunology", [ERRATUM, UPDATED, GREEK], leases.utcnow() - dt.timedelta(hours=1))
    return store


@pytest.mark.parametrize("mode, status, first, message", [
    ("connection refused", "failed", {}, ": cannot connect: [Errno 111] Connection refused (it is sent again, unchanged"),
    ("reset", "failed", {}, ": cannot connect"),
    ("421 at greeting", "failed", {}, ": refused the session (421 4.3.2 too busy, try later) (it is sent again"),
    ("451 on DATA", "failed", {}, ": refused the message (451 4.3.0 mailbox busy, try later) (it is sent again"),
    ("550 for lab@ only", "sent", {ANA: 1}, ": not delivered to lab@example.org: 550 5.1.1 <lab@example.org>: user"),
    ("drop after DATA", "uncertain", HEALED, f"@localhost> may not have reached {ANA}, {LAB} (SMTP server 127.0.0.1:"),
])
def test_digest_send_under_each_fault_loses_nothing_and_the_retry_doubles_nothing(
        fresh: Engine, database_url: str, smtp_sink: Sink, tmp_path: Path, mode: str, status: str,
        first: dict[str, int], message: str) -> None:
    faulty = break_sink(smtp_sink, mode)
    code, out, err = _cli(tmp_path, database_url, faulty.port, "--send")
    assert code == 1 and out.splitlines()[1].split()[1] == status
    [line] = err.splitlines()
    assert line.startswith("litwatch: error: group headache-lab") and message in line
    sent = {mid for _, mid in smtp_sink.copies()}
    assert {address: n for (address, _), n in smtp_sink.copies().items()} == first

    heal(smtp_sink)
    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, "--send", "--force")  # the retry
    uncertain = mode == "drop after DATA"  # nothing to retry: it is not sent again by itself
    assert code == 0 and [row.split()[1] for row in out.splitlines()[1:]] == ["nothing-new" if uncertain else "retried"]
    assert err.startswith("litwatch: warning: ") if uncertain else err == ""
    [mid] = {mid for _, mid in smtp_sink.copies()} | sent
    assert smtp_sink.copies() == {(ANA, mid): 1, (LAB, mid): 1}
    assert ledger(fresh)[0][:2] == ("recorded", mid)


def test_digest_send_names_a_refused_recipient_and_retries_it_alone(fresh: Engine, database_url: str,
                                                                    smtp_sink: Sink, tmp_path: Path) -> None:
    smtp_sink.refuse_rcpt[LAB] = "550 5.1.1 <lab@example.org>: user unknown"
    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, "--send")
    assert code == 1
    assert err.splitlines() == [
        "litwatch: error: group headache-lab: not delivered to lab@example.org: 550 5.1.1 <lab@example.org>: user "
        "unknown (the others got it; it is sent again to this address alone at the next scheduled time, "
        + err.split("next scheduled time, ")[1].split(",")[0] + ", or now with --send --force)"]
    assert out.splitlines()[1].split()[1:3] == ["sent", "3"]
    [(_, mid)] = smtp_sink.copies()
    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, "--send", "--force")
    assert code == 1 and "not delivered to lab@example.org: 550" in err  # still refused: still reported
    del smtp_sink.refuse_rcpt[LAB]
    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, "--send", "--force")
    assert (code, err) == (0, "") and [line.split()[1] for line in out.splitlines()[1:]] == ["retried"]
    assert smtp_sink.copies() == {(ANA, mid): 1, (LAB, mid): 1}
    assert [rcpts for _, rcpts, _ in smtp_sink.received] == [[ANA], [LAB]]


@pytest.mark.parametrize("decision", ["--resend", "--delivered"])
def test_an_uncertain_digest_is_reported_until_a_person_decides(fresh: Engine, database_url: str, smtp_sink: Sink,
                                                                tmp_path: Path, decision: str) -> None:
    smtp_sink.drop_after_data = True
    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, "--send")
    [(_, mid)] = {(None, m) for _, m in smtp_sink.copies()}
    assert code == 1 and out.splitlines()[1].split()[1] == "uncertain"
    assert err.startswith(f"litwatch: error: group headache-lab: digest {mid} may not have reached {ANA}, {LAB} "
                          f"(SMTP server 127.0.0.1:{smtp_sink.port}: the connection broke after the message was sent")
    assert (f"it is not sent again by itself (a second copy is worse than a missing one): ask them, then `litwatch "
            f"digest --resend '{mid}'` sends it to them again, or `litwatch digest --delivered '{mid}'` records") in err

    smtp_sink.drop_after_data = False
    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, "--send", "--force")
    assert code == 0 and err.startswith(f"litwatch: warning: group headache-lab: digest {mid} may not have reached")
    assert smtp_sink.copies() == {(ANA, mid): 1, (LAB, mid): 1}  # not sent again by itself
    code, out, status_err = _cli(tmp_path, database_url, smtp_sink.port)
    assert code == 0 and status_err == err  # the state of each group says it too

    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, decision, mid)
    assert (code, err) == (0, "")
    expected = 2 if decision == "--resend" else 1
    assert smtp_sink.copies() == {(ANA, mid): expected, (LAB, mid): expected}
    if decision == "--delivered":
        assert out == f"headache-lab: {mid} recorded as delivered to {ANA}, {LAB}\n"
    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, "--send", "--force")
    assert (code, err) == (0, "")
    code, _, err = _cli(tmp_path, database_url, smtp_sink.port, decision, mid)
    assert code == 2 and err == f"litwatch: error: digest {mid} has no uncertain recipient: nothing to decide\n"
    code, _, err = _cli(tmp_path, database_url, smtp_sink.port, decision, "<nope@example.org>")
    assert code == 2 and "no digest has the Message-ID '<nope@example.org>'; fix: copy it from the line" in err


def test_a_send_killed_while_the_server_takes_the_message_is_not_sent_twice(
        fresh: Engine, database_url: str, smtp_sink: Sink, fake_eutils: FakeEutils, tmp_path: Path) -> None:
    _cli(tmp_path, database_url, smtp_sink.port)  # writes the query and group files
    smtp_sink.stall_data = True
    env = command_env(tmp_path, fake_eutils, database_url, LITWATCH_SMTP_HOST="127.0.0.1",
                      LITWATCH_SMTP_PORT=str(smtp_sink.port), LITWATCH_SMTP_TLS="none")
    with subprocess.Popen([*LITWATCH, "digest", "--send"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        try:
            assert smtp_sink.data_started.wait(60), "the digest never reached DATA"
        finally:
            proc.kill()
        proc.communicate(timeout=30)
    smtp_sink.stall_data = False
    smtp_sink.release.set()
    [(_, mid)] = {(None, m) for _, m in smtp_sink.copies()}

    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, "--send")
    assert code == 1 and [line.split()[1] for line in out.splitlines()[1:]] == ["retried"]
    assert (f"digest {mid} may not have reached {ANA}, {LAB} (the process stopped while the server was taking the "
            "message)") in err
    code, out, err = _cli(tmp_path, database_url, smtp_sink.port, "--send")
    assert code == 0 and out.splitlines()[1].split()[1:3] == ["not", "due"] and "litwatch: warning:" in err
    assert smtp_sink.copies() == {(ANA, mid): 1, (LAB, mid): 1}
    assert [row[0] for row in ledger(fresh)] == ["recorded"]
