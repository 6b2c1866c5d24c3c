"""Handing a digest to the outside world: an SMTP server, or files in an outbox folder.

This is the only module that imports ``smtplib``. A :class:`Mailer` hands a message to the
envelope recipients it is given and says which of them the server took (:class:`Handed`); a
recipient refused at RCPT TO does not stop the others. Before the content is sent (DATA) it calls
``before_data`` with the accepted recipients, so the ledger can record who is about to get it: a
refusal before or at DATA is :class:`~litwatch.errors.MailError` (nobody got it), while a
connection that breaks after DATA began, before the server's answer, is
:class:`~litwatch.errors.MailUncertain` (the server may have it; SMTP cannot be asked later).

The SMTP password never reaches a message, a log line or an exception: server replies are
scrubbed of it (and of its base64 forms) before they are quoted.
"""

from __future__ import annotations

import base64
import email.policy
import email.utils
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from litwatch.config import Settings
from litwatch.errors import MailError, MailUncertain
from litwatch.files.atomic import write_atomically

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


BeforeData = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class Handed:
    """Which envelope recipients got the message, and the server's reply to each one refused."""

    accepted: tuple[str, ...]
    refused: dict[str, str] = field(default_factory=dict)


class Mailer(Protocol):
    """Hands one message to ``recipients`` (default: its To, Cc and Bcc); MailError when nobody got it."""

    def send(self, message: EmailMessage, recipients: Sequence[str] | None = None,
             before_data: BeforeData | None = None) -> Handed: ...


def envelope(message: EmailMessage) -> list[str]:
    """The bare addresses of the message's To, Cc and Bcc headers."""
    return [addr for _, addr in email.utils.getaddresses(
        [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])])]


def build_message(*, subject: str, sender: str, recipients: tuple[str, ...], text: str, html: str,
                  message_id: str, date: str, headers: dict[str, str] | None = None) -> EmailMessage:
    """One ``multipart/alternative`` message: the plain text first, the HTML last (preferred)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = date
    msg["Message-ID"] = message_id
    msg["MIME-Version"] = "1.0"
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def outbox_stem(message_id: str) -> str:
    """The outbox file name stem for a Message-ID: its left part, in safe characters."""
    return _UNSAFE.sub("-", message_id.strip("<> ").split("@")[0]).strip("-.")


def file_stem(message: EmailMessage) -> str:
    """A safe file name stem made from the message's Message-ID."""
    stem = outbox_stem(str(message.get("Message-ID", "")))
    if not stem:
        raise MailError("the message has no Message-ID to name its outbox file after")
    return stem


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    return "" if part is None else str(part.get_content())


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class OutboxMailer:
    """Writes ``<stem>.eml`` (the whole message) and ``<stem>.html`` (to open in a browser).

    The embedded default when no SMTP host is set: a written file counts as delivered.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def send(self, message: EmailMessage, recipients: Sequence[str] | None = None,
             before_data: BeforeData | None = None) -> Handed:
        stem = file_stem(message)
        to = tuple(recipients) if recipients is not None else tuple(envelope(message))
        if before_data is not None:
            before_data(to)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"{stem}.html", html_part(message).encode("utf-8"))
            write_atomically(self.folder / f"{stem}.eml", message.as_bytes(policy=email.policy.SMTP))
        except OSError as exc:
            raise MailError(f"cannot write the digest to the outbox {self.folder}: {exc.strerror}; "
                            "fix: check the folder (LITWATCH_OUTBOX) exists and is writable") from exc
        log.info("digest %s written to %s", stem, self.folder)
        return Handed(to)


class SmtpMailer:
    """Sends through an SMTP server with STARTTLS, implicit TLS (``ssl``) or none, and login."""

    def __init__(self, host: str, port: int | None = None, *, user: str | None = None,
                 password: str | None = None, tls: str = "starttls", timeout: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if tls not in DEFAULT_PORTS:
            raise MailError(f"LITWATCH_SMTP_TLS must be none, starttls or ssl, got {tls!r}")
        self.host = host
        self.port = port or DEFAULT_PORTS[tls]
        self.user = user
        self._password = password
        self.tls = tls
        self.timeout = timeout
        self._context = ssl_context

    def __repr__(self) -> str:
        return f"SmtpMailer({self.host!r}, {self.port}, user={self.user!r}, tls={self.tls!r})"

    def scrub(self, text: str) -> str:
        """``text`` with the password and its base64 forms (AUTH PLAIN / LOGIN) blotted out."""
        secret = self._password
        if not secret:
            return text
        forms = {secret, base64.b64encode(secret.encode()).decode()}
        if self.user:
            forms.add(base64.b64encode(f"\0{self.user}\0{secret}".encode()).decode())
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "***")
        return text

    def _fail(self, what: str, exc: BaseException | None = None) -> MailError:
        where = f"SMTP server {self.host}:{self.port}"
        return MailError(self.scrub(f"{where}: {what}" + (f": {exc}" if exc is not None else "")))

    def _connect(self) -> smtplib.SMTP:
        context = self._context or ssl.create_default_context()
        if self.tls == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        smtp.ehlo()
        if self.tls == "starttls":
            if not smtp.has_extn("starttls"):
                smtp.close()
                raise self._fail("it does not offer STARTTLS; fix: set LITWATCH_SMTP_TLS=ssl (port 465) "
                                 "or none for a trusted local relay")
            smtp.starttls(context=context)
            smtp.ehlo()
        if self.user:
            try:
                smtp.login(self.user, self._password or "")
            except smtplib.SMTPException as exc:
                smtp.close()
                code = getattr(exc, "smtp_code", "")
                text = _text(getattr(exc, "smtp_error", b""))
                raise self._fail(f"login as {self.user!r} refused ({code} {text}".rstrip() + "); fix: check "
                                 "LITWATCH_SMTP_USER and LITWATCH_SMTP_PASSWORD") from None
        return smtp

    def _open(self) -> smtplib.SMTP:
        try:
            return self._connect()
        except MailError:
            raise
        except ssl.SSLError as exc:
            raise self._fail("TLS failed; fix: check LITWATCH_SMTP_TLS (starttls on 587, ssl on 465)",
                             exc) from exc
        except smtplib.SMTPResponseException as exc:
            raise self._fail(f"refused the session ({exc.smtp_code} {_text(exc.smtp_error)})") from exc
        except smtplib.SMTPServerDisconnected as exc:  # a reset before the greeting reads like a refusal
            raise self._fail("cannot connect", exc) from exc
        except smtplib.SMTPException as exc:
            raise self._fail("the session failed", exc) from exc
        except (OSError, socket.timeout) as exc:
            raise self._fail("cannot connect", exc) from exc

    def send(self, message: EmailMessage, recipients: Sequence[str] | None = None,
             before_data: BeforeData | None = None) -> Handed:
        sender = email.utils.parseaddr(str(message["From"]))[1]
        to = list(recipients) if recipients is not None else envelope(message)
        if not to:
            raise MailError("the digest has no recipients")
        del message["Bcc"]
        data = message.as_bytes(policy=email.policy.SMTP)
        smtp = self._open()
        try:
            handed = self._transaction(smtp, sender, to, data, before_data)
        except BaseException:
            smtp.close()
            raise
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()  # a failed goodbye changes nothing: the outcome is known already
        log.info("digest %s accepted by %s:%s for %d of %d recipient(s)", message["Message-ID"], self.host,
                 self.port, len(handed.accepted), len(to))
        return handed

    def _transaction(self, smtp: smtplib.SMTP, sender: str, to: list[str], data: bytes,
                     before_data: BeforeData | None) -> Handed:
        """MAIL, RCPT for each address, then DATA for those accepted; see the module docstring."""
        try:
            code, reply = smtp.mail(sender)
            if code != 250:
                raise self._fail(f"sender {sender} refused ({code} {_text(reply)})")
            accepted, refused = [], {}
            for rcpt in to:
                code, reply = smtp.rcpt(rcpt)
                if code in (250, 251):
                    accepted.append(rcpt)
                else:
                    refused[rcpt] = self.scrub(f"{code} {_text(reply)}")
            if not accepted:
                smtp.rset()
                return Handed((), refused)
        except MailError:
            raise
        except smtplib.SMTPResponseException as exc:
            raise self._fail(f"refused the message ({exc.smtp_code} {_text(exc.smtp_error)})") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise self._fail("the connection broke before the message was sent", exc) from exc
        if before_data is not None:
            before_data(accepted)
        try:
            code, reply = smtp.data(data)
        except smtplib.SMTPResponseException as exc:  # DATA itself refused: no content went
            raise self._fail(f"refused the message ({exc.smtp_code} {_text(exc.smtp_error)})") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailUncertain(self.scrub(f"SMTP server {self.host}:{self.port}: the connection broke after the "
                                           f"message was sent, before the server answered: {exc}")) from exc
        if code != 250:  # smtplib returns (not raises) the reply that follows the content
            raise self._fail(f"refused the message ({code} {_text(reply)})")
        return Handed(tuple(accepted), refused)


def mailer_from_settings(settings: Settings) -> Mailer:
    """The SMTP mailer when ``LITWATCH_SMTP_HOST`` is set, else the outbox folder."""
    if settings.smtp_host:
        return SmtpMailer(settings.smtp_host, settings.smtp_port, user=settings.smtp_user,
                          password=settings.smtp_password, tls=settings.smtp_tls)
    return OutboxMailer(settings.outbox)
