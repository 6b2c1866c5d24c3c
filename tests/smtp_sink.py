"""An SMTP server in the test process (aiosmtpd on 127.0.0.1) that records what it accepts.

Tests get it as the ``smtp_sink`` fixture (conftest.py); it can be told to refuse a recipient or
the message with a given reply.
"""

from __future__ import annotations

import email
import email.policy
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

PASSWORD = "s3cret-Pa55word!"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sink:
    """What the test SMTP server received, and how it should answer."""

    port: int = 0
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # address -> reply such as "550 ..."
    data_reply: str | None = None  # e.g. "451 4.3.0 try later"
    rcpt_seen: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        self.rcpt_seen.append(address)
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        out = []
        for _, _, content in self.received:
            msg = email.message_from_bytes(content, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out
