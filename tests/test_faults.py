"""Runs under faults: what NCBI's ERROR answers mean, and `litwatch run` under 20% injected faults.

The seeded runs go through the CLI (its exit code and lines) against the loopback fake, with the
client's seams set so that nothing waits for real: a fake clock for rate limit and backoff, and a
short timeout that a stall outlasts.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import fault_corpus
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fake_clock import FakeClock
from fake_europepmc import FakeEuropePmc
from fake_eutils import FakeEutils, Fault

from litwatch.cli import main
from litwatch.cli import run as cli_run
from litwatch.config import Settings
from litwatch.errors import EutilsError, HistoryLost
from litwatch.files.queries import SavedQuery
from litwatch.pipeline import run as runner
from litwatch.sources.eutils import EutilsClient
from litwatch.store import engine as db

TODAY = dt.date.today()
TIMEOUT = 0.25  # seconds; a stall lasts longer
QUERY = SavedQuery("q", "q[tiab]", "q", None, TODAY - dt.timedelta(days=30), (), Path("q.toml"))


def quick_client(fake: FakeEutils, **options: object) -> EutilsClient:
    clock = FakeClock()
    return EutilsClient(fake.url, "librarian@example.org", timeout=TIMEOUT, backoff=0.0,
                        sleep=clock.sleep, clock=clock, **options)  # type: ignore[arg-type]


@pytest.fixture
def fake() -> Iterator[FakeEutils]:
    with FakeEutils() as running:
        yield running


# -- what an ERROR answer means ------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["Unable to obtain query #1", "Search Backend failed: read timeout",
                                     "Database is not supported: pubmed"])
def test_a_transient_error_is_asked_again_when_the_request_reads_no_history(fake: FakeEutils, message: str) -> None:
    fake.add_records_from_file(next(iter(sorted(fault_corpus.METAPUB.glob("*.xml")))), crdt=TODAY)
    fake.inject(Fault(error=message), times=1)
    client = quick_client(fake)
    assert client.esearch("anything").count > 0
    fake.inject(Fault(error=message), times=1)
    assert b"<PubmedArticle>" in client.efetch([next(iter(fake.records))])
    assert (client.requests_made, client.retries) == (4, 2)


@pytest.mark.parametrize("message", ["Invalid db name specified: pubmd", "API key invalid",
                                     "Empty term and query_key - nothing todo"])
def test_a_permanent_error_fails_at_once_with_the_reason_in_one_line(fake: FakeEutils, message: str) -> None:
    fake.inject(Fault(error=message))
    client = quick_client(fake)
    with pytest.raises(EutilsError) as caught:
        client.esearch("anything")
    text = str(caught.value)
    assert message in text and "\n" not in text and "failed after 1 attempt:" in text
    assert (client.requests_made, client.retries) == (1, 0)


def test_a_lost_history_search_fails_at_once_saying_search_again(fake: FakeEutils) -> None:
    client = quick_client(fake)
    with pytest.raises(HistoryLost, match=r"Unable to obtain query #1 \(the history server lost the search: "
                                          r"run the search again\)$"):
        client.efetch_history("MCID_gone", "1", 0, 20)
    assert (client.requests_made, client.retries) == (1, 0)


def test_the_run_searches_again_when_the_history_is_lost(tmp_path: Path, fake: FakeEutils) -> None:
    for path in sorted(fault_corpus.METAPUB.glob("*.xml")):
        fake.add_records_from_file(path, crdt=TODAY - dt.timedelta(days=1))
    engine = db.make_engine(f"sqlite:///{tmp_path}/h.sqlite")
    db.migrate(engine)
    client = quick_client(fake)
    calls = [0]
    real_efetch = client.efetch

    def efetch_losing_once(pmids: Sequence[int]) -> bytes:  # as a history fetch meets it, after one batch
        calls[0] += 1
        if calls[0] == 2:
            raise HistoryLost("E-utilities efetch.fcgi: NCBI answered ERROR: Unable to obtain query #1")
        return real_efetch(pmids)

    client.efetch = efetch_losing_once  # type: ignore[method-assign]
    receipt = runner.run_query(engine, client, QUERY, today=TODAY, batch_size=3)
    assert receipt.ok, receipt.error
    assert receipt.retries == 1 and receipt.search_count == len(fake.records)
    # the receipt adds up: the first batch, stored before the history was lost, counts as new, once
    assert (receipt.new, receipt.known, receipt.missing) == (len(fake.records), 0, [])
    searches = [r.params["term"] for r in fake.requests if r.endpoint == "esearch.fcgi"]
    assert sum("[crdt]" in t for t in searches) == 2 and sum("[mdat]" in t for t in searches) == 1  # + update pass
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM papers")).scalar_one() == len(fake.records)


# -- `litwatch run` under faults ------------------------------------------------------------------------


@pytest.fixture
def europepmc(fake_europepmc: FakeEuropePmc, monkeypatch: pytest.MonkeyPatch) -> FakeEuropePmc:
    """The shipped queries search Europe PMC too: a loopback fake with no preprints answers."""
    monkeypatch.setenv("LITWATCH_EUROPEPMC_URL", fake_europepmc.url)
    return fake_europepmc


def cli_run_once(tmp_path: Path, fake: FakeEutils, monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[int, str, set[int]]:
    monkeypatch.setenv("LITWATCH_DATABASE_URL", f"sqlite:///{tmp_path / name}.sqlite")
    monkeypatch.setenv("LITWATCH_QUERIES_DIR", str(fault_corpus.QUERIES))
    monkeypatch.setenv("LITWATCH_EUTILS_URL", fake.url)
    monkeypatch.setenv("LITWATCH_EMAIL", "librarian@example.org")
    monkeypatch.setenv("LITWATCH_FETCH_BATCH", "5")
    monkeypatch.chdir(tmp_path)
    cli = CliRunner()
    assert cli.invoke(main, ["init"], catch_exceptions=False).exit_code == 0
    result = cli.invoke(main, ["run"], catch_exceptions=False)
    engine = db.make_engine(f"sqlite:///{tmp_path / name}.sqlite")
    with engine.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT pmid FROM papers")).scalars())
    engine.dispose()
    return result.exit_code, result.output, stored


@pytest.mark.usefixtures("europepmc")
def test_ten_seeded_first_runs_under_20_percent_faults_all_store_everything(
    tmp_path: Path, fake: FakeEutils, monkeypatch: pytest.MonkeyPatch
) -> None:
    def from_settings(settings: Settings, **_kw: object) -> EutilsClient:
        return quick_client(fake)

    monkeypatch.setattr(cli_run.EutilsClient, "from_settings", staticmethod(from_settings))
    total = fault_corpus.fill(fake, TODAY, per_query=40)
    code, output, expected = cli_run_once(tmp_path, fake, monkeypatch, "clean")
    assert code == 0 and len(expected) == total, output
    clean = fake.count()
    made = []
    for seed in fault_corpus.SEEDS:
        fake.requests.clear()
        fake.inject_seeded(fault_corpus.faults(stall=TIMEOUT * 2), rate=fault_corpus.RATE, seed=seed)
        code, output, stored = cli_run_once(tmp_path, fake, monkeypatch, f"seed{seed}")
        fake.clear_faults()
        assert code == 0, f"seed {seed}:\n{output}"
        assert stored == expected, f"seed {seed}: {len(stored)} of {len(expected)} stored"
        assert not re.search(r"failed", output)
        made.append(fake.count())
    print(f"requests per run: fault-free {clean}, under faults {made}")
    assert clean * len(made) < sum(made) <= 1.3 * clean * len(made), (made, clean)


@pytest.mark.usefixtures("europepmc")
def test_a_permanent_error_fails_its_query_only_and_the_run_exits_1(
    tmp_path: Path, fake: FakeEutils, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_run.EutilsClient, "from_settings", staticmethod(lambda _s, **_kw: quick_client(fake)))
    fault_corpus.fill(fake, TODAY, per_query=3)
    fake.inject(Fault(error="API key invalid"), times=1)  # the first query's search
    code, output, stored = cli_run_once(tmp_path, fake, monkeypatch, "bad")
    assert code == 1
    failed = [line for line in output.splitlines() if "API key invalid" in line]
    assert len(failed) == 1 and "failed after 1 attempt: NCBI answered ERROR: API key invalid" in failed[0]
    assert len(stored) == 3 * (len(fake.terms) - 1)  # every other query stored its papers
