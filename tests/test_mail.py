"""The mail module against a real SMTP server in this process (aiosmtpd on 127.0.0.1).

The ``smtp_sink`` fixture (conftest.py, built on ``smtp_sink.py``) records every message it
accepts and can be told to refuse a recipient or the message with a given reply.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from smtp_sink import PASSWORD, Sink, free_port

from litwatch.config import Settings
from litwatch.delivery.mail import (
    OutboxMailer,
    SmtpMailer,
    build_message,
    mailer_from_settings,
)
from litwatch.errors import MailError, MailUncertain, StoreError


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the TLS tests need the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"digest" and auth_data.password == PASSWORD.encode()
    if ok:
        return AuthResult(success=True)
    # a careless server that quotes what it was given: the mailer must not pass it on
    given = auth_data.password.decode() if isinstance(auth_data, LoginPassword) else ""
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad credentials {given}")


@pytest.fixture(params=["starttls", "ssl"])
def tls_sink(request: pytest.FixtureRequest, tls_files: tuple[Path, Path]) -> Iterator[tuple[Sink, str, ssl.SSLContext]]:
    """An SMTP server that needs a login, over STARTTLS or implicit TLS; yields the client's context."""
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sink = Sink(port=free_port())
    mode = str(request.param)
    if mode == "starttls":
        controller = Controller(sink, hostname="127.0.0.1", port=sink.port, tls_context=server_ctx,
                                require_starttls=True, authenticator=_authenticator, auth_required=True)
    else:
        controller = Controller(sink, hostname="127.0.0.1", port=sink.port, ssl_context=server_ctx,
                                authenticator=_authenticator, auth_require_tls=False)
    controller.start()
    try:
        yield sink, mode, ssl.create_default_context(cafile=str(cert))
    finally:
        controller.stop()


def message(to: tuple[str, ...] = ("Ana Ruiz <ana@example.org>", "lab@example.org")) -> EmailMessage:
    return build_message(subject="[litwatch] headache-lab: 2 new papers", sender="litwatch@example.org",
                         recipients=to, text="Plain text ü\n", html="<p>HTML ü</p>\n",
                         message_id="<litwatch.headache-lab.20260302T070000Z.abcd1234@example.org>",
                         date="Mon, 02 Mar 2026 07:00:00 +0000", headers={"X-Litwatch-Group": "headache-lab"})


def test_a_message_arrives_whole_as_multipart_alternative(smtp_sink: Sink) -> None:
    SmtpMailer("127.0.0.1", smtp_sink.port, tls="none").send(message())
    [(sender, rcpts, _)] = smtp_sink.received
    assert sender == "litwatch@example.org"
    assert rcpts == ["ana@example.org", "lab@example.org"]
    [got] = smtp_sink.messages()
    assert got.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in got.iter_parts()] == ["text/plain", "text/html"]
    assert got["Message-ID"] == "<litwatch.headache-lab.20260302T070000Z.abcd1234@example.org>"
    assert got["To"] == "Ana Ruiz <ana@example.org>, lab@example.org"
    assert got.get_body(("plain",)).get_content().splitlines() == ["Plain text ü"]  # type: ignore[union-attr]


def test_login_over_tls_and_the_password_never_shows(tls_sink: tuple[Sink, str, ssl.SSLContext],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    sink, mode, context = tls_sink
    caplog.set_level(logging.DEBUG, logger="litwatch")
    SmtpMailer("127.0.0.1", sink.port, user="digest", password=PASSWORD, tls=mode, ssl_context=context).send(message())
    assert len(sink.received) == 1

    wrong = SmtpMailer("127.0.0.1", sink.port, user="digest", password=PASSWORD + "x", tls=mode, ssl_context=context)
    with pytest.raises(MailError) as failure:
        wrong.send(message())
    assert "login as 'digest' refused (535" in str(failure.value)
    assert PASSWORD not in str(failure.value) and PASSWORD not in repr(wrong)
    assert failure.value.__cause__ is None and failure.value.__context__ is not None
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("litwatch")]
    assert ours and not any(PASSWORD in line for line in ours)  # (the test server logs it; it is not ours)
    assert len(sink.received) == 1


def test_an_untrusted_certificate_is_refused(tls_sink: tuple[Sink, str, ssl.SSLContext]) -> None:
    sink, mode, _context = tls_sink
    with pytest.raises(MailError, match="TLS failed|CERTIFICATE_VERIFY_FAILED"):
        SmtpMailer("127.0.0.1", sink.port, user="digest", password=PASSWORD, tls=mode, timeout=5).send(message())
    assert sink.received == []


def test_a_server_without_starttls_is_not_used_in_the_clear(smtp_sink: Sink) -> None:
    with pytest.raises(MailError, match="does not offer STARTTLS"):
        SmtpMailer("127.0.0.1", smtp_sink.port, user="digest", password=PASSWORD, tls="starttls").send(message())
    assert smtp_sink.received == []


def test_a_refused_connection_is_a_mail_error() -> None:
    port = free_port()
    with pytest.raises(MailError, match=rf"127\.0\.0\.1:{port}: cannot connect"):
        SmtpMailer("127.0.0.1", port, tls="none", timeout=5).send(message())


def test_a_refused_recipient_does_not_stop_the_others(smtp_sink: Sink) -> None:
    smtp_sink.refuse_rcpt["lab@example.org"] = "550 5.1.1 no such user"
    seen: list[list[str]] = []
    handed = SmtpMailer("127.0.0.1", smtp_sink.port, tls="none").send(message(), before_data=lambda to: seen.append(list(to)))
    assert handed.accepted == ("ana@example.org",)
    assert handed.refused == {"lab@example.org": "550 5.1.1 no such user"}
    assert seen == [["ana@example.org"]]  # told who gets the content before it went
    assert [rcpts for _, rcpts, _ in smtp_sink.received] == [["ana@example.org"]]


def test_only_the_recipients_asked_for_get_it_and_if_all_are_refused_nothing_is_sent(smtp_sink: Sink) -> None:
    mailer = SmtpMailer("127.0.0.1", smtp_sink.port, tls="none")
    assert mailer.send(message(), ["lab@example.org"]).accepted == ("lab@example.org",)
    smtp_sink.refuse_rcpt["lab@example.org"] = "550 5.1.1 no such user"
    handed = mailer.send(message(), ["lab@example.org"], before_data=lambda to: pytest.fail("no DATA for nobody"))
    assert handed.accepted == () and handed.refused == {"lab@example.org": "550 5.1.1 no such user"}
    assert [rcpts for _, rcpts, _ in smtp_sink.received] == [["lab@example.org"]]


def test_when_the_ledger_cannot_note_the_recipients_the_content_is_not_sent(smtp_sink: Sink) -> None:
    def database_down(_to: object) -> None:
        raise StoreError("the database went away")

    with pytest.raises(StoreError):
        SmtpMailer("127.0.0.1", smtp_sink.port, tls="none").send(message(), before_data=database_down)
    assert smtp_sink.received == []


@pytest.mark.parametrize("reply", ["451 4.3.0 mailbox busy, try later", "554 5.6.0 message refused"])
def test_a_refused_message_is_a_mail_error(smtp_sink: Sink, reply: str) -> None:
    smtp_sink.data_reply = reply
    with pytest.raises(MailError, match=reply.split()[0]) as failure:
        SmtpMailer("127.0.0.1", smtp_sink.port, tls="none").send(message())
    assert not isinstance(failure.value, MailUncertain)  # a reply came: nobody has it, for sure
    assert smtp_sink.received == []


@pytest.mark.parametrize("fault, expected", [("greeting", "421 4.3.2 too busy"), ("reset", "cannot connect|session failed")])
def test_a_server_that_refuses_or_resets_the_connection_is_a_mail_error(smtp_sink: Sink, fault: str,
                                                                        expected: str) -> None:
    if fault == "greeting":
        smtp_sink.greeting = "421 4.3.2 too busy"
    else:
        smtp_sink.reset = True
    with pytest.raises(MailError, match=expected) as failure:
        SmtpMailer("127.0.0.1", smtp_sink.port, tls="none", timeout=5).send(message())
    assert not isinstance(failure.value, MailUncertain)
    assert smtp_sink.received == []


def test_a_connection_dropped_after_the_content_is_uncertain(smtp_sink: Sink) -> None:
    smtp_sink.drop_after_data = True
    with pytest.raises(MailUncertain, match="the connection broke after the message was sent, before the server "
                                            "answered"):
        SmtpMailer("127.0.0.1", smtp_sink.port, tls="none", timeout=5).send(message())
    assert len(smtp_sink.received) == 1  # this server did keep it: the client cannot know


def test_the_outbox_writes_the_message_and_its_html(tmp_path: Path) -> None:
    assert OutboxMailer(tmp_path / "outbox").send(message()).accepted == ("ana@example.org", "lab@example.org")
    eml = tmp_path / "outbox" / "litwatch.headache-lab.20260302T070000Z.abcd1234.eml"
    parsed = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "[litwatch] headache-lab: 2 new papers"
    assert eml.with_suffix(".html").read_text(encoding="utf-8") == "<p>HTML ü</p>\n"
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == [eml.with_suffix(".eml").name,
                                                                      eml.with_suffix(".html").name]


def test_an_unwritable_outbox_is_a_mail_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MailError, match="cannot write the digest to the outbox"):
        OutboxMailer(blocker / "outbox").send(message())


def test_settings_choose_smtp_or_the_outbox(tmp_path: Path) -> None:
    assert isinstance(mailer_from_settings(Settings(outbox=tmp_path)), OutboxMailer)
    smtp = mailer_from_settings(Settings(smtp_host="mail.example.org", smtp_tls="ssl", smtp_password=PASSWORD))
    assert isinstance(smtp, SmtpMailer) and smtp.port == 465
    assert PASSWORD not in repr(smtp)


def test_an_outbox_write_that_fails_midway_leaves_no_half_message(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    outbox = tmp_path / "outbox"
    real_fsync = os.fsync
    calls = []

    def disk_fills_up(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the .html went through; the .eml does not
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_fills_up)
    with pytest.raises(MailError, match="cannot write the digest to the outbox .*: No space left on device"):
        OutboxMailer(outbox).send(message())
    assert [p.suffix for p in outbox.iterdir()] == [".html"]  # no .eml, whole or partial, and no temporary file
