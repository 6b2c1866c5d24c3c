"""An SMTP server in the test process (aiosmtpd on 127.0.0.1) that records what it accepts.

Tests get it as the ``smtp_sink`` fixture (conftest.py). Set its fields to make it misbehave the
way real servers do:

- ``refuse_rcpt[address] = "550 ..."``: refuse one recipient at RCPT TO;
- ``data_reply = "451 ..."``: refuse the message after its content;
- ``greeting = "421 ..."``: answer a new connection with that and hang up;
- ``reset = True``: reset each new connection (TCP RST) before greeting;
- ``drop_after_data = True``: take the message (it is delivered) and hang up without answering;
- ``stall_data = True``: take the message, set ``data_started`` and answer nothing until
  ``release`` is set (a server slow to answer DATA: the moment to kill a client).

``copies()`` counts what each mailbox holds: {(address, Message-ID): copies}.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

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
    greeting: str | None = None  # e.g. "421 4.3.2 too busy"
    reset: bool = False
    drop_after_data: bool = False
    stall_data: bool = False
    data_started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
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
        if self.drop_after_data:
            server.transport.abort()
        if self.stall_data:
            self.data_started.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        out = []
        for _, _, content in self.received:
            msg = email.message_from_bytes(content, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def copies(self) -> Counter[tuple[str, str]]:
        """How many copies of each Message-ID each address received."""
        return Counter((rcpt, str(msg["Message-ID"])) for (_, rcpts, _), msg in zip(self.received, self.messages())
                       for rcpt in rcpts)


class _FaultySMTP(SMTP):
    """aiosmtpd's server, which can refuse a connection at the greeting or reset it."""

    def __init__(self, sink: Sink, **kwargs: Any) -> None:
        super().__init__(sink, **kwargs)
        self.sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.sink.reset:
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                          struct.pack("ii", 1, 0))
            transport.abort()
            return
        if self.sink.greeting:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(f"{self.sink.greeting}\r\n".encode())
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.session is not None:
            super().connection_lost(error)


class SinkController(Controller):
    """Runs a :class:`Sink` on 127.0.0.1 with its fault modes."""

    def __init__(self, sink: Sink, **kwargs: Any) -> None:
        super().__init__(sink, hostname="127.0.0.1", port=sink.port, **kwargs)
        self.sink = sink

    def factory(self) -> SMTP:
        return _FaultySMTP(self.sink, **self.SMTP_kwargs)

    def stop(self, no_assert: bool = False) -> None:
        self.sink.release.set()
        super().stop(no_assert)
