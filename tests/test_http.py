"""The one HTTP door (``litwatch.sources.http``): every client's session, retries and failures.

Each client's own behaviour over the door is in its test file (``test_eutils.py``,
``test_pubtator.py``, ``test_europepmc.py``); here is what the door promises all of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import requests
import urllib3
from fake_pubtator import FakePubtator, Fault
from smtp_sink import free_port

from litwatch.errors import EuropePmcError, EutilsError, PubtatorError
from litwatch.sources.europepmc import EuropePmcClient
from litwatch.sources.eutils import EutilsClient
from litwatch.sources.http import Failure, HttpDoor, retry_after
from litwatch.sources.pubtator import PubtatorClient

SRC = Path(__file__).resolve().parent.parent / "src" / "litwatch"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def test_only_the_door_imports_requests() -> None:
    importers = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if any(module.split(".")[0] == "requests" for module, _ in imports(path))
    )
    assert importers == ["sources/http.py"]


def test_no_source_client_imports_another_modules_private_names() -> None:
    private = [
        f"{path.relative_to(SRC)}: {module}.{name}"
        for path in (SRC / "sources").rglob("*.py")
        for module, names in imports(path)
        if module.startswith("litwatch")
        for name in names
        if name.startswith("_")
    ]
    assert private == []


def test_a_session_given_stays_open_and_an_own_one_is_closed() -> None:
    given = requests.Session()
    closed: list[str] = []
    given.close = lambda: closed.append("given")  # type: ignore[method-assign]
    with PubtatorClient("http://127.0.0.1:9/", session=given):
        pass
    own = HttpDoor("http://127.0.0.1:9/", 3.0)
    own.session.close = lambda: closed.append("own")  # type: ignore[method-assign]
    own.close()
    assert closed == ["own"]


@pytest.mark.parametrize(("value", "seconds"), [("3", 3.0), ("0", 0.0), ("-5", 0.0), ("9999", 120.0), ("soon", None), (None, None)])
def test_retry_after_is_read_in_seconds_and_capped(value: str | None, seconds: float | None) -> None:
    assert retry_after(value) == seconds


def test_a_refused_connection_fails_at_once_naming_each_clients_setting() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    sleeps: list[float] = []
    pubtator = PubtatorClient(url, sleep=sleeps.append, max_retries=3)
    europepmc = EuropePmcClient(url, "me@example.org", sleep=sleeps.append, max_retries=3)
    with pytest.raises(PubtatorError, match="cannot connect \\(connection refused\\); check LITWATCH_PUBTATOR_URL") as p:
        pubtator.export([1])
    with pytest.raises(EuropePmcError, match="connection refused \\(not retried: check LITWATCH_EUROPEPMC_URL") as e:
        europepmc.search("x")
    assert isinstance(p.value.__cause__, requests.ConnectionError) and isinstance(e.value.__cause__, requests.ConnectionError)
    assert (pubtator.requests_made, europepmc.requests_made, pubtator.retries, europepmc.retries) == (1, 1, 0, 0)


def test_e_utilities_fails_a_refused_connection_at_once_naming_its_setting() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    sleeps: list[float] = []
    client = EutilsClient(url, "me@example.org", sleep=sleeps.append, max_retries=5)
    with pytest.raises(EutilsError) as caught:
        client.efetch([1])
    assert str(caught.value) == (
        f"no E-utilities at {url}: connection refused (not retried: check LITWATCH_EUTILS_URL, which holds "
        f"{url}; NCBI's is https://eutils.ncbi.nlm.nih.gov/entrez/eutils/)"
    )
    assert (client.requests_made, client.retries, sleeps) == (1, 0, [])


def test_a_dropped_connection_is_retried_and_worded_without_urllib3s_text() -> None:
    dropped = requests.ConnectionError(urllib3.exceptions.MaxRetryError(
        None, "/x", urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))))
    door = HttpDoor("http://127.0.0.1:9/", 1000.0, sleep=lambda s: None, max_retries=1)
    door.session.request = lambda *a, **k: (_ for _ in ()).throw(dropped)  # type: ignore[method-assign]
    with pytest.raises(Failure) as caught:
        door.run(lambda n: door.send("GET", "http://127.0.0.1:9/x"), on_retry=lambda *a: None)
    assert caught.value.cause == "ConnectionError: connection dropped (ConnectionResetError: [Errno 104] reset by peer)"
    assert (caught.value.attempts, door.retries) == (2, 1)


def test_a_cut_off_body_is_retried_and_said_to_be_truncated() -> None:
    with FakePubtator() as fake:
        fake.inject(Fault(truncate=True))
        client = PubtatorClient(fake.url, sleep=lambda s: None, max_retries=1)
        with pytest.raises(PubtatorError, match="after 2 attempts: truncated answer \\(ChunkedEncodingError"):
            client.export([1])
    assert fake.count() == 2

