"""The Europe PMC client: the query it sends, paging to the end, and how it fails.

End-to-end over real loopback sockets against ``fake_europepmc.FakeEuropePmc``, which serves real
recorded Europe PMC answers (``tests/fixtures/europepmc/``). Reading results is in
``test_europepmc_results.py``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests
from fake_europepmc import FakeEuropePmc, Fault
from urllib3.exceptions import MaxRetryError, NameResolutionError

from litwatch.config import EUROPEPMC_URL, load_settings
from litwatch.errors import ConfigError, EuropePmcError
from litwatch.sources.europepmc import SETTING, EuropePmcClient, preprint_query

FIXTURES = Path(__file__).parent / "fixtures" / "europepmc"
LITE = FIXTURES / "search_lite_preprints.json"
EMAIL = "librarian@example.org"
# The 13 preprints of the recorded answer first indexed 2025-06-13 .. 2025-06-18.
WINDOW = (date(2025, 6, 13), date(2025, 6, 18))
IN_WINDOW = [
    "PPR1033861", "PPR1033905", "PPR1033939", "PPR1033982", "PPR1034227", "PPR1034404", "PPR1034481",
    "PPR1034939", "PPR1036674", "PPR1036694", "PPR1037166", "PPR1037209", "PPR1037228",
]  # fmt: skip


class Sleeps:
    """Records the waits the client asks for, without waiting (the rate limiter's and backoff's)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.seconds.append(seconds)


@pytest.fixture
def fake() -> Iterator[FakeEuropePmc]:
    """A loopback Europe PMC serving the 30 recorded lite results (24 preprints)."""
    with FakeEuropePmc() as server:
        server.add_results_from_file(LITE)
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def client_for(url: str, sleeps: Sleeps, **options: object) -> EuropePmcClient:
    return EuropePmcClient(url, EMAIL, sleep=sleeps, **options)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the query and the settings ------------------------------------------------------------------


def test_the_query_for_a_window_asks_for_preprints_first_indexed_in_it() -> None:
    assert preprint_query("  CRISPR[title] OR base editing ", date(2025, 6, 1), date(2025, 6, 7)) == (
        "(CRISPR[title] OR base editing) AND SRC:PPR AND FIRST_IDATE:[2025-06-01 TO 2025-06-07]"
    )


@pytest.mark.parametrize(
    ("query", "start", "end", "message"),
    [
        ("cancer", date(2025, 6, 7), date(2025, 6, 1), "window ends (2025-06-01) before it starts (2025-06-07)"),
        ("  ", date(2025, 6, 1), date(2025, 6, 7), "a Europe PMC search needs a query"),
    ],
)
def test_a_window_backwards_or_an_empty_query_is_refused(query: str, start: date, end: date, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        preprint_query(query, start, end)


def test_the_url_is_a_setting_with_the_public_default() -> None:
    assert load_settings(env={}).europepmc_url == EUROPEPMC_URL == "https://www.ebi.ac.uk/europepmc/webservices/rest/"
    settings = load_settings(env={SETTING: "http://127.0.0.1:9/rest/", "LITWATCH_EMAIL": EMAIL})
    client = EuropePmcClient.from_settings(settings)
    assert (client.base_url, client.email) == ("http://127.0.0.1:9/rest/", EMAIL)


def test_without_a_contact_email_no_client_is_made() -> None:
    with pytest.raises(ConfigError, match="set LITWATCH_EMAIL"):
        EuropePmcClient.from_settings(load_settings(env={}))


def test_a_url_that_is_not_http_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=f"^{SETTING} must start with http:// or https://, got 'ebi.ac.uk'$"):
        EuropePmcClient("ebi.ac.uk", EMAIL)


# -- paging --------------------------------------------------------------------------------------


def test_a_window_gives_every_preprint_in_it_paging_to_the_empty_page(fake: FakeEuropePmc, sleeps: Sleeps) -> None:
    with client_for(fake.url, sleeps, page_size=5) as client:
        answer = client.search_preprints("cancer", *WINDOW)
    assert sorted(r["id"] for r in answer.results) == IN_WINDOW
    assert len({r["id"] for r in answer.results}) == 13
    receipt = answer.receipt
    assert (receipt.hit_count, receipt.results, receipt.pages, receipt.requests, receipt.retries) == (13, 13, 4, 4, 0)
    assert receipt.query == "(cancer) AND SRC:PPR AND FIRST_IDATE:[2025-06-13 TO 2025-06-18]"
    # 5 + 5 + 3 results, then the page past the end comes back empty and paging stops there.
    cursors = [r.params["cursorMark"] for r in fake.requests]
    assert cursors[0] == "*" and len(set(cursors)) == 4


def test_each_request_asks_for_core_json_with_the_cursor_and_the_email(fake: FakeEuropePmc, sleeps: Sleeps) -> None:
    with client_for(fake.url, sleeps, page_size=10) as client:
        client.search_preprints("cancer", *WINDOW)
    first, second = fake.requests[0], fake.requests[1]
    assert first.path == "/europepmc/webservices/rest/search"
    assert first.params == {
        "query": "(cancer) AND SRC:PPR AND FIRST_IDATE:[2025-06-13 TO 2025-06-18]",
        "resultType": "core",
        "format": "json",
        "pageSize": "10",
        "cursorMark": "*",
        "email": EMAIL,
    }
    assert all(r.params["email"] == EMAIL for r in fake.requests)
    assert second.params["cursorMark"] != "*"


def test_pages_of_1000_by_default_so_a_week_of_preprints_is_one_request_and_the_empty_page(
    fake: FakeEuropePmc, sleeps: Sleeps
) -> None:
    with client_for(fake.url, sleeps) as client:
        answer = client.search_preprints("cancer", date(2025, 6, 1), date(2025, 6, 30))
    assert (answer.receipt.results, answer.receipt.requests) == (24, 2)
    assert fake.requests[0].params["pageSize"] == "1000"


def test_a_repeated_cursor_ends_paging_without_looping(fake: FakeEuropePmc, sleeps: Sleeps) -> None:
    fake.repeat_cursor = True  # the last full page names its own cursor as the next one
    with client_for(fake.url, sleeps, page_size=5) as client:
        answer = client.search_preprints("cancer", *WINDOW)
    assert sorted(r["id"] for r in answer.results) == IN_WINDOW
    assert (answer.receipt.pages, fake.count()) == (3, 3)


def test_fewer_results_than_europe_pmc_counted_is_a_warning_on_the_receipt(fake: FakeEuropePmc, sleeps: Sleeps) -> None:
    fake.hit_count_extra = 2
    with client_for(fake.url, sleeps) as client:
        answer = client.search_preprints("cancer", *WINDOW)
    assert answer.receipt.results == 13
    assert answer.receipt.warnings == ("Europe PMC counted 15 results but paging gave 13",)


def test_a_window_without_preprints_is_an_empty_answer_not_an_error(fake: FakeEuropePmc, sleeps: Sleeps) -> None:
    with client_for(fake.url, sleeps) as client:
        answer = client.search_preprints("cancer", date(2025, 7, 1), date(2025, 7, 7))
    assert answer.results == []
    assert (answer.receipt.hit_count, answer.receipt.requests) == (0, 1)


def test_the_fake_answers_in_the_shape_of_the_recorded_answers(fake: FakeEuropePmc, sleeps: Sleeps) -> None:
    recorded = json.loads(LITE.read_text(encoding="utf-8"))
    served = requests.get(fake.url + "search", params={"query": "cancer", "pageSize": "3"}, timeout=5).json()
    assert list(served) == list(recorded)
    assert list(served["request"]) == list(recorded["request"])
    assert served["hitCount"] == 30 and [r["id"] for r in served["resultList"]["result"]] == ["39709209", "39709208", "40468710"]


# -- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        (Fault.http(500), "HTTP 500"),
        (Fault.http(503), "HTTP 503"),
        (Fault(truncate=True), "truncated answer"),
        (Fault(malformed=True), "malformed JSON"),
    ],
    ids=["500", "503", "truncated", "malformed-json"],
)
def test_a_passing_fault_is_retried_and_the_search_completes(
    fake: FakeEuropePmc, sleeps: Sleeps, fault: Fault, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject(fault, times=2)
    with client_for(fake.url, sleeps, page_size=5, backoff=0.5) as client:
        answer = client.search_preprints("cancer", *WINDOW)
    assert sorted(r["id"] for r in answer.results) == IN_WINDOW
    assert (answer.receipt.retries, answer.receipt.requests, fake.count()) == (2, 6, 6)
    assert cause in caplog.text and "retrying in" in caplog.text


@pytest.mark.parametrize(
    ("fault", "cause"),
    [(Fault.http(500), "HTTP 500 Internal Server Error"), (Fault(truncate=True), "truncated answer")],
    ids=["500", "truncated"],
)
def test_a_fault_that_lasts_is_a_loud_error_never_no_preprints(
    fake: FakeEuropePmc, sleeps: Sleeps, fault: Fault, cause: str
) -> None:
    fake.inject(fault)
    with client_for(fake.url, sleeps, max_retries=2, backoff=0.5) as client:
        with pytest.raises(EuropePmcError) as caught:
            client.search_preprints("cancer", *WINDOW)
    message = str(caught.value)
    assert message.startswith(f"Europe PMC search at {fake.url} failed after 3 attempts: {cause}")
    assert message.endswith("(Europe PMC may be busy or down: run again later)")
    assert "\n" not in message and caught.value.exit_code == 1
    assert fake.count() == 3


def test_a_refusal_that_asking_again_cannot_change_is_not_retried(fake: FakeEuropePmc, sleeps: Sleeps) -> None:
    fake.inject(Fault.http(400))
    with client_for(fake.url, sleeps) as client, pytest.raises(EuropePmcError) as caught:
        client.search_preprints("cancer", *WINDOW)
    assert str(caught.value) == (
        f"Europe PMC search at {fake.url} failed after 1 attempt: HTTP 400 Bad Request: 400 "
        "(not retried: asking again would not help)"
    )
    assert fake.count() == 1


def test_a_429_waits_as_long_as_retry_after_says(fake: FakeEuropePmc, sleeps: Sleeps) -> None:
    fake.inject(Fault.http(429, retry_after="7"), times=1)
    with client_for(fake.url, sleeps, page_size=1000) as client:
        answer = client.search_preprints("cancer", *WINDOW)
    assert answer.receipt.results == 13 and answer.receipt.retries == 1
    assert 7.0 in sleeps.seconds


def unreachable(client: EuropePmcClient) -> str:
    """The message a search through ``client`` fails with."""
    with client, pytest.raises(EuropePmcError) as caught:
        client.search_preprints("cancer", *WINDOW)
    return str(caught.value)


def not_retried(url: str, cause: str) -> str:
    return f"no Europe PMC search at {url}: {cause} (not retried: check LITWATCH_EUROPEPMC_URL, default {EUROPEPMC_URL})"


def test_a_refused_connection_fails_at_once_naming_the_setting(sleeps: Sleeps) -> None:
    url = f"http://127.0.0.1:{free_port()}/europepmc/webservices/rest/"
    client = client_for(url, sleeps)
    assert unreachable(client) == not_retried(url, "connection refused")
    assert client.requests_made == 1 and client.retries == 0


def test_a_wrong_path_fails_at_once_naming_the_setting(fake: FakeEuropePmc, sleeps: Sleeps) -> None:
    wrong = fake.url.replace("/rest/", "/rst/")
    assert unreachable(client_for(wrong, sleeps)) == not_retried(wrong, f"HTTP 404 Not Found for {wrong}search")
    assert fake.count() == 1


class UnresolvableSession(requests.Session):
    """What requests raises when the host name does not resolve, without asking any DNS server."""

    def get(self, url: str | bytes, **kwargs: object) -> requests.Response:
        reason = NameResolutionError("europepmc.example", None, socket.gaierror(-2, "Name or service not known"))  # type: ignore[arg-type]
        raise requests.ConnectionError(MaxRetryError(None, url, reason))  # type: ignore[arg-type]


def test_a_host_that_does_not_resolve_fails_at_once_naming_the_setting(sleeps: Sleeps) -> None:
    url = "https://europepmc.example/rest/"
    client = EuropePmcClient(url, EMAIL, session=UnresolvableSession(), sleep=sleeps)
    assert unreachable(client) == not_retried(url, "host not found")
    assert client.requests_made == 1 and sleeps.seconds == []


# -- politeness ------------------------------------------------------------------------------------


def test_at_most_ten_requests_arrive_in_any_second(fake: FakeEuropePmc) -> None:
    with EuropePmcClient(fake.url, EMAIL, page_size=1) as client:  # the real clock and sleep
        answer = client.search_preprints("cancer", date(2025, 6, 1), date(2025, 6, 30))
    assert (answer.receipt.results, fake.count()) == (24, 25)
    assert fake.busiest_second() <= 10
