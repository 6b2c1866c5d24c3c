"""The loopback HTTP server the fakes of outside systems are built on (``fake_eutils``,
``fake_pubtator``, ``fake_europepmc``).

:class:`Loopback` runs a ``ThreadingHTTPServer`` on 127.0.0.1, port 0, in a background thread,
keeps the request log and the injected :class:`Fault`, and writes each answer: the fake's own
``answer(method, path, params)`` says what a healthy server would send, then an injected fault
replaces it (an HTTP status with its headers and body), cuts its body off mid-send (``truncate``:
the real length announced, half of it sent, the connection closed), or halves a complete 200
(``malformed``), or answers late (``stall``); ``inject_seeded`` mixes faults at a seeded random
rate. GET query strings and POST forms both arrive as ``params``. ``refuse_over(3)``
polices a rate limit as the real systems do: a request that would make a fourth in one second
gets a 429 (Retry-After: 1) and is counted in ``refused``, not logged.

    class FakeThing(Loopback):
        base_path = "/thing/"

        def answer(self, method, path, params):
            self.log(LoggedRequest(path, params))
            return Reply(200, b"{}")
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

F = TypeVar("F", bound="Fault")
L = TypeVar("L", bound="Loopback")


@dataclass
class Fault:
    """A faulty answer: an HTTP status, a body cut off mid-send, or a complete but broken body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    truncate: bool = False  # announce the real length, send half of it, hang up
    malformed: bool = False  # a 200 whose whole (correctly announced) body is half the real one
    stall: float = 0.0  # seconds to wait before answering (past a client's timeout: it gives up)

    rate_limit_body: ClassVar[bytes | None] = None  # what the system answers a 429 with, if not HTML

    @classmethod
    def http(cls: type[F], status: int, retry_after: str | None = "0") -> F:
        """An HTTP error answer, with ``Retry-After`` unless it is None."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body = cls.rate_limit_body if status == 429 and cls.rate_limit_body else None
        return cls(status=status, headers=headers, body=body or f"<html><body><h1>{status}</h1></body></html>".encode())


@dataclass
class Reply:
    """What a healthy server answers; ``fault`` (set by :meth:`Loopback.take_fault`) spoils it."""

    status: int
    body: bytes
    content_type: str = "application/json"
    fault: Fault | None = None


@dataclass
class _Rule:
    fault: Fault
    every: int
    times: int | None
    seen: int = 0
    served: int = 0
    mix: Sequence[Fault] = ()  # with `rate`: each request gets one of these at random, seeded
    rate: float = 0.0
    rng: random.Random | None = None


class Loopback:
    """A fake outside system on 127.0.0.1; subclasses answer, this class serves and logs."""

    base_path: ClassVar[str] = "/"
    name: ClassVar[str] = "loopback"
    fault_class: ClassVar[type[Fault]] = Fault  # the fake's own Fault, for the 429 of refuse_over

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.refused = 0
        self._per_second: int | None = None
        self._starts: list[float] = []
        self._rule: _Rule | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self: L) -> L:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = None

    def __enter__(self: L) -> L:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.base_path}"

    # -- faults and the request log --------------------------------------------------------------
    def inject(self, fault: Fault, *, every: int = 1, times: int | None = None) -> None:
        """From now on every ``every``-th request gets ``fault`` (at most ``times`` times)."""
        with self._lock:
            self._rule = _Rule(fault, every, times)

    def inject_seeded(self, faults: Sequence[Fault], *, rate: float, seed: int) -> None:
        """From now on each request gets, with probability ``rate``, one of ``faults`` at random;
        the same ``seed`` gives the same faults to the same sequence of requests."""
        with self._lock:
            self._rule = _Rule(faults[0], 1, None, mix=tuple(faults), rate=rate, rng=random.Random(seed))

    def clear_faults(self) -> None:
        with self._lock:
            self._rule = None

    def count(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.requests)

    def refuse_over(self, per_second: int) -> None:
        """From now on a request that would make more than ``per_second`` in one second gets a 429."""
        self._per_second = per_second

    def policed(self) -> Reply | None:
        """The 429 for a request over the rate limit set by :meth:`refuse_over`, else None."""
        if self._per_second is None:
            return None
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._starts if now - t < 1.0]
            self._starts.append(now)
            if len(recent) < self._per_second:
                return None
            self.refused += 1
        return Reply(200, b"", fault=self.fault_class.http(429, retry_after="1"))

    def take_fault(self, logged: object) -> Fault | None:
        """Log one request; the fault it gets, if any."""
        with self._lock:
            self.requests.append(logged)
            rule = self._rule
            if rule is None or (rule.times is not None and rule.served >= rule.times):
                return None
            rule.seen += 1
            if rule.rng is not None:
                if rule.rng.random() >= rule.rate:
                    return None
                rule.served += 1
                return rule.rng.choice(rule.mix)
            if rule.seen % rule.every:
                return None
            rule.served += 1
            return rule.fault

    def answer(self, method: str, path: str, params: dict[str, str]) -> Reply:
        """The answer to one request; subclasses log it with :meth:`take_fault`."""
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    server_version = "LitwatchLoopback/1.0"

    def do_GET(self) -> None:
        self._answer("GET", "")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer("POST", self.rfile.read(length).decode("utf-8"))

    def _answer(self, method: str, form: str) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        params.update(parse_qsl(form, keep_blank_values=True))
        fake: Loopback = self.server.fake  # type: ignore[attr-defined]
        reply = fake.policed() or fake.answer(method, url.path, params)
        status, body, fault = reply.status, reply.body, reply.fault
        if fault is not None and fault.stall:
            time.sleep(fault.stall)
        headers = {"Content-Type": reply.content_type}
        if fault is not None and fault.status != 200:
            status, body = fault.status, fault.body or b""
            headers = {"Content-Type": "application/json" if body.startswith(b"{") else "text/html"} | fault.headers
        elif fault is not None and fault.malformed:
            body = body[: len(body) // 2]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault is not None and fault.truncate:
            body = body[: len(body) // 2]
            self.close_connection = True
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            if fault is None or not fault.stall:
                raise  # a stalled answer finds its client gone: that is the point of the stall

    def log_message(self, format: str, *args: object) -> None:
        pass
