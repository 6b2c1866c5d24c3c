"""Shared fixtures: a fresh database built from the real migrations, on SQLite and on PostgreSQL.

PostgreSQL tests run when LITWATCH_TEST_POSTGRES_URL names a server (``.ci/run`` sets it); each test
gets its own database, created and dropped around it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from fake_europepmc import FakeEuropePmc
from fake_eutils import FakeEutils
from smtp_sink import Sink, SinkController, free_port
from sqlalchemy.engine import Engine

from litwatch.store import engine as db

FIXTURES = Path(__file__).parent / "fixtures"
PG_ENV = "LITWATCH_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def _quiet_europepmc() -> Iterator[FakeEuropePmc]:
    """One loopback Europe PMC with no preprints for the whole session: the shipped queries have
    ``preprints`` searches, and a run whose Europe PMC step cannot reach Europe PMC fails."""
    with FakeEuropePmc() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory,
                       _quiet_europepmc: FakeEuropePmc) -> None:
    """No test sees the developer's own litwatch settings or secrets, nor shares the machine's
    NCBI rate budget (``~/.cache/litwatch/ncbi-rate``) with real runs: commands, in-process or
    not, spend this test session's own. Europe PMC is the session's quiet fake unless a test
    points LITWATCH_EUROPEPMC_URL at its own."""
    for name in list(os.environ):
        if (name.startswith("LITWATCH_") and name != PG_ENV) or name == "NCBI_API_KEY":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("LITWATCH_EUROPEPMC_URL", _quiet_europepmc.url)
    monkeypatch.setenv("LITWATCH_PUBTATOR", "off")  # never the real PubTator3: its tests point it at a fake


def _postgres_database() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)")
    name = f"litwatch_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database's URL, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'litwatch.sqlite'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A database migrated to the newest schema, on each backend."""
    eng = db.make_engine(database_url)
    db.migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def fake_eutils() -> Iterator[FakeEutils]:
    """A loopback fake E-utilities with an empty PubMed, running for the test."""
    with FakeEutils() as fake:
        yield fake


@pytest.fixture
def fake_europepmc() -> Iterator[FakeEuropePmc]:
    """A loopback fake Europe PMC with no preprints, running for the test."""
    with FakeEuropePmc() as fake:
        yield fake


@pytest.fixture
def smtp_sink() -> Iterator[Sink]:
    """A plain SMTP server on 127.0.0.1 that accepts everything unless told otherwise (smtp_sink.py)."""
    sink = Sink(port=free_port())
    controller = SinkController(sink)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
