"""One NCBI budget per machine (and per API key across hosts): ``sources/rate_limit.py`` and
``store/rate_budget.py``.

The promise users notice: litwatch processes started together never get a 429 from NCBI. It is
shown with real processes (two ``litwatch run-due`` and a ``litwatch schedule`` daemon, each with
its own store) against the loopback
fake policing 3 requests in any one second, as NCBI does; the same run with a budget file each
gets 429s, so the test can fail.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from fake_clock import FakeClock
from fake_eutils import FakeEutils
from sqlalchemy.engine import Engine
from test_jobs import LITWATCH, command_env

from litwatch.config import Settings
from litwatch.errors import ConfigError
from litwatch.sources.eutils import EutilsClient
from litwatch.sources.rate_limit import RATE_MARGIN, FileBudget, budget_key
from litwatch.store import models
from litwatch.store.rate_budget import DatabaseBudget, budget_for

FIXTURES = Path(__file__).parent / "fixtures"
INTERVAL = RATE_MARGIN / 3


def test_processes_sharing_the_file_take_turns(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "cache" / "ncbi-rate"
    one, other = FileBudget(path, clock=clock), FileBudget(path, clock=clock)  # as two processes open it
    waits = [budget.reserve("ncbi", INTERVAL) for budget in (one, other, one, other)]
    assert waits == pytest.approx([0.0, INTERVAL, 2 * INTERVAL, 3 * INTERVAL])
    assert other.reserve("ncbi key 0123", INTERVAL / 3) == 0.0  # another budget (an API key's) is its own
    clock.sleep(10.0)
    assert one.reserve("ncbi", INTERVAL) == 0.0  # long after the last start: at once


@pytest.mark.parametrize("content", [b"{\"ncbi\": 12", b"[1, 2]", b"{\"ncbi\": \"soon\"}", b"{\"ncbi\": 1e12}"])
def test_a_damaged_file_or_a_reset_clock_starts_afresh(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ncbi-rate"
    path.write_bytes(content)  # a write cut off by a crash, garbage, a start from before a reboot
    assert FileBudget(path, clock=FakeClock()).reserve("ncbi", INTERVAL) == 0.0


def test_a_rate_file_litwatch_cannot_write_is_a_setting_to_fix(tmp_path: Path) -> None:
    (tmp_path / "ncbi-rate").mkdir()
    with pytest.raises(ConfigError, match=r"^LITWATCH_RATE_FILE .*/ncbi-rate: cannot open the shared NCBI "
                                          r"rate budget \(Is a directory\); set it to a file litwatch may write$"):
        FileBudget(tmp_path / "ncbi-rate").reserve("ncbi", INTERVAL)


def test_clients_from_settings_share_the_file_and_keep_the_key_out_of_it(tmp_path: Path, fake_eutils: FakeEutils) -> None:
    secret = "0123456789abcdef0123456789abcdef0123"
    settings = Settings(email="me@example.org", eutils_url=fake_eutils.url, rate_file=tmp_path / "ncbi-rate",
                        api_key=secret)
    EutilsClient.from_settings(settings).esearch("x")
    text = (tmp_path / "ncbi-rate").read_text()
    assert budget_key(fake_eutils.url, secret) in text and secret not in text


def _queries(folder: Path, terms: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    for name, term in terms.items():
        (folder / f"{name}.toml").write_text(f'term = "{term}"\nstart = 2025-01-01\n')


QUERIES = 4  # saved queries per process


def _three_processes(fake: FakeEutils, tmp_path: Path, shared: bool) -> list[subprocess.CompletedProcess[str]]:
    """Two `litwatch run-due` and a `litwatch schedule` daemon started together, each with its own store
    and queries, on one machine; the daemon is stopped (SIGTERM) once it has caught up."""
    envs = []
    for n in range(3):
        home = tmp_path / f"{'shared' if shared else 'own'}-{n}"
        _queries(home / "queries", {f"q{n}-{i}": f"term{n}{i}[tiab]" for i in range(QUERIES)})
        url = f"sqlite:///{home / 'litwatch.sqlite'}"
        envs.append(command_env(home, fake, url, LITWATCH_RATE_FILE=str(tmp_path / "ncbi-rate" if shared else home / "rate")))
        subprocess.run([*LITWATCH, "init"], env=envs[-1], check=True, capture_output=True, timeout=60)
    commands = [[*LITWATCH, "run-due"], [*LITWATCH, "run-due"], [*LITWATCH, "schedule", "--watch-interval", "60"]]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for command, env in zip(commands, envs)]
    daemon, log = procs[2], []
    assert daemon.stdout is not None
    timer = threading.Timer(180, daemon.kill)  # a daemon that never catches up fails the test, not the suite
    timer.start()
    with daemon.stdout:
        for line in daemon.stdout:
            log.append(line)
            if "caught up" in line:
                daemon.send_signal(signal.SIGTERM)
    timer.cancel()
    done = []
    for proc in procs[:2]:
        out, _ = proc.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, ""))
    done.append(subprocess.CompletedProcess(daemon.args, daemon.wait(timeout=60), "".join(log), ""))
    return done


def test_three_processes_at_once_get_no_429_from_a_server_counting_3_per_second(tmp_path: Path) -> None:
    with FakeEutils() as fake:
        fake.add_records_from_file(FIXTURES / "eutils" / "biopython" / "pubmed2.xml", crdt=dt.date.today())
        fake.refuse_over(3)
        for result in _three_processes(fake, tmp_path, shared=False):  # each its own budget: over NCBI's
            assert result.returncode == 0, result.stdout
        assert fake.refused > 0
        fake.refused, before = 0, fake.count()
        results = _three_processes(fake, tmp_path, shared=True)
        assert fake.refused == 0
        # per process: a create-date and an update search per query, the first query's fetch, and each later
        # query's update pass fetching again the paper the first one stored (it is revised today)
        assert fake.count() - before == 3 * (2 * QUERIES + QUERIES)
    for result in results:
        assert result.returncode == 0, result.stdout
        assert result.stdout.count(": ok: ") == QUERIES and "retrying" not in result.stdout


# -- hosts sharing one PostgreSQL store -------------------------------------------------------------


@pytest.mark.postgres
def test_hosts_on_one_postgresql_store_take_turns_on_the_keys_budget(database_url: str, engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several hosts share a budget through PostgreSQL only")
    hosts = [DatabaseBudget(sa.create_engine(database_url)) for _ in range(2)]
    budget = models.table(models.RateBudget)

    def last_start() -> float:
        with engine.connect() as conn:
            return float(conn.execute(sa.select(budget.c.last_start)).scalar_one())

    assert hosts[0].reserve("ncbi key 0123", 5.0) == 0.0  # the first start: at once
    first = last_start()
    threads = [threading.Thread(target=lambda h=host: [h.reserve("ncbi key 0123", 5.0) for _ in range(3)])
               for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert last_start() == pytest.approx(first + 6 * 5.0)  # six more, each its own turn
    assert hosts[1].reserve("ncbi key 0123", 5.0) == pytest.approx(7 * 5.0, abs=1.0)
    for host in hosts:
        host.engine.dispose()


@pytest.mark.postgres
def test_two_hosts_with_one_key_on_one_postgresql_store_get_no_429(database_url: str, engine: Engine,
                                                                   tmp_path: Path) -> None:
    """Two `run-due` with their own rate files (as on two hosts), one store and one API key,
    against a server counting the key's 10 requests in any second."""
    if engine.dialect.name != "postgresql":
        pytest.skip("several hosts share a budget through PostgreSQL only")
    _queries(tmp_path / "queries", {f"q{i}": f"term{i}[tiab]" for i in range(12)})
    with FakeEutils() as fake:
        fake.add_records_from_file(FIXTURES / "eutils" / "biopython" / "pubmed2.xml", crdt=dt.date.today())
        fake.refuse_over(10)
        envs = [command_env(tmp_path, fake, database_url, LITWATCH_RATE_FILE=str(tmp_path / f"host{n}-rate"),
                            NCBI_API_KEY="0123456789abcdef0123456789abcdef0123") for n in range(2)]
        procs = [subprocess.Popen([*LITWATCH, "run-due"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for env in envs]
        outs = [proc.communicate(timeout=180) for proc in procs]
        assert fake.refused == 0
    assert [proc.returncode for proc in procs] == [0, 0], outs
    ran = [line.split(":")[1] for out, _err in outs for line in out.splitlines() if ": ok: " in line]
    assert sorted(ran) == sorted(f"q{i}" for i in range(12))  # each query once, on one host or the other


def test_the_database_budget_is_for_an_api_key_on_postgresql_only(engine: Engine) -> None:
    keyed = budget_for(engine, Settings(api_key="k"))
    assert (keyed is not None) == (engine.dialect.name == "postgresql")
    assert budget_for(engine, Settings()) is None
