"""A web server that a hostile DOCTYPE points at (an external DTD, a parameter entity, an entity):
every GET is logged and answered with an entity declaration carrying ``MARKER``, so a test can
assert both that nothing was asked and that the marker never reached a record."""

from __future__ import annotations

from typing import ClassVar

from loopback import Loopback, Reply


class FakeDtdHost(Loopback):
    name = "fake-dtd-host"
    MARKER: ClassVar[str] = "FETCHED-OVER-HTTP"

    def answer(self, method: str, path: str, params: dict[str, str]) -> Reply:
        self.take_fault(path)
        return Reply(200, f'<!ENTITY web "{self.MARKER}">'.encode(), content_type="application/xml-dtd")
