"""The E-utilities client: what a run gets back, what it sends, and how it fails.

Unit behaviour runs on recorded NCBI answers served by ``responses``; the end-to-end tests drive
the client over real loopback sockets against ``fake_eutils.FakeEutils``.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NameResolutionError
from fake_clock import FakeClock
from fake_eutils import RATE_LIMIT_BODY, FakeEutils, Fault

from litwatch.config import Settings
from litwatch.errors import ConfigError, EutilsError
from litwatch.sources.eutils import EutilsClient, SearchResult
from litwatch.sources.rate_limit import RATE_MARGIN, RateLimiter

FIXTURES = Path(__file__).parent / "fixtures" / "eutils"
BASE = "https://eutils.test/entrez/eutils/"
ESEARCH = BASE + "esearch.fcgi"
EFETCH = BASE + "efetch.fcgi"
SECRET = "0123456789abcdef0123456789abcdef0123"  # shaped like an NCBI key (36 hex digits)


def recorded(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mocked() -> responses.RequestsMock:
    with responses.RequestsMock() as rsps:
        yield rsps


def client(clock: FakeClock, base: str = BASE, api_key: str | None = None, **options: object) -> EutilsClient:
    return EutilsClient(base, "librarian@example.org", api_key, sleep=clock.sleep, clock=clock, **options)  # type: ignore[arg-type]


def sent(call: responses.Call) -> dict[str, str]:
    assert call.request.body is not None
    body = call.request.body
    return {k: v[0] for k, v in parse_qs(body if isinstance(body, str) else body.decode()).items()}


# -- what a search returns --------------------------------------------------------------------------


@pytest.mark.parametrize("base", [BASE, BASE.rstrip("/")])
def test_esearch_posts_the_term_with_tool_email_and_key(mocked, clock, base):
    mocked.post(ESEARCH, body=recorded("biopython/esearch1.xml"))
    result = client(clock, base, api_key=SECRET).esearch(
        "biopython", mindate="2025/01/01", maxdate="2025/01/31", retmax=20
    )
    assert result.count == 63
    assert result.ids[:3] == [41282813, 41148224, 41011574] and len(result.ids) == 20
    assert result.query_translation == '"biopython"[All Fields]'
    assert result.warnings == []
    params = sent(mocked.calls[0])
    assert mocked.calls[0].request.method == "POST"
    assert params | {"api_key": "x"} == {
        "db": "pubmed", "term": "biopython", "retmax": "20", "retstart": "0", "datetype": "crdt",
        "mindate": "2025/01/01", "maxdate": "2025/01/31", "tool": "litwatch",
        "email": "librarian@example.org", "api_key": "x",
    }
    assert params["api_key"] == SECRET


def test_esearch_without_key_sends_no_api_key(mocked, clock):
    mocked.post(ESEARCH, body=recorded("biopython/esearch1.xml"))
    client(clock).esearch("biopython")
    assert "api_key" not in sent(mocked.calls[0])


def test_esearch_with_history_returns_webenv_and_query_key(mocked, clock):
    mocked.post(ESEARCH, body=recorded("biopython/esearch2.xml"))
    result = client(clock).esearch("cancer", usehistory=True, retmax=100)
    assert sent(mocked.calls[0])["usehistory"] == "y"
    assert (result.count, len(result.ids)) == (42249, 100)
    assert (result.webenv, result.query_key) == ("MCID_6927d6e7fee3e90f880ec190", "1")


def test_phrase_not_found_is_a_warning_while_ids_still_come_back(mocked, clock):
    # NCBI 2012 answer carrying Count, ids AND an ErrorList at once.
    mocked.post(ESEARCH, body=recorded("ncbi-2012-samples/esearch.error.xml"))
    result = client(clock).esearch("obstetrics[MeSH Terms] OR fleegle[MeSH Terms]", retmax=20)
    assert result.count == 5163 and len(result.ids) == 20
    assert result.warnings == ['phrase not found: "fleegle[MeSH Terms]"']


def test_nothing_found_is_an_empty_result_with_readable_warnings(mocked, clock):
    mocked.post(ESEARCH, body=recorded("biopython/esearch8.xml"))
    result = client(clock).esearch("abcXYZ")
    assert result == SearchResult(
        count=0, ids=[], query_translation="(abcXYZ[All Fields])",
        warnings=['phrase not found: "abcXYZ"', "No items found."],
    )


def test_esearch_needs_both_dates(clock):
    with pytest.raises(ValueError, match="both mindate and maxdate"):
        client(clock).esearch("x", mindate="2025/01/01")


def test_parsing_never_touches_the_network(mocked, clock, monkeypatch):
    """Bio.Entrez.read would download a DTD it lacks; an old http:// or a future DTD stays offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    future = recorded("biopython/esearch1.xml").replace(b"20060628/esearch.dtd", b"20300101/esearch.dtd")
    mocked.post(ESEARCH, body=recorded("ncbi-2012-samples/esearch.error.xml"))
    mocked.post(ESEARCH, body=future)
    assert client(clock).esearch("a", retmax=20).count == 5163
    assert client(clock).esearch("b", retmax=20).count == 63


# -- fetching -----------------------------------------------------------------------------------------


def test_efetch_posts_ids_and_returns_the_raw_xml(mocked, clock):
    body = recorded("biopython/pubmed2.xml")
    mocked.post(EFETCH, body=body)
    assert client(clock).efetch([11748933, 11700088]) == body
    assert sent(mocked.calls[0]) | {"email": ""} == {
        "db": "pubmed", "id": "11748933,11700088", "retmode": "xml", "tool": "litwatch", "email": "",
    }


def test_efetch_of_unknown_pmids_is_the_real_empty_set(mocked, clock):
    body = recorded("pubmed/37909814.xml")
    mocked.post(EFETCH, body=body)
    assert client(clock).efetch([37909814]) == body


def test_efetch_history_pages_through_the_history_server(mocked, clock):
    mocked.post(EFETCH, body=recorded("biopython/pubmed1.xml"))
    client(clock).efetch_history("MCID_1", "1", 200, 100)
    assert sent(mocked.calls[0])["WebEnv"] == "MCID_1"
    assert {k: sent(mocked.calls[0])[k] for k in ("query_key", "retstart", "retmax")} == {
        "query_key": "1", "retstart": "200", "retmax": "100",
    }


def test_efetch_needs_ids(clock):
    with pytest.raises(ValueError):
        client(clock).efetch([])


# -- retries ------------------------------------------------------------------------------------------


def test_429_waits_as_long_as_retry_after_says(mocked, clock):
    mocked.post(ESEARCH, status=429, body=RATE_LIMIT_BODY, headers={"Retry-After": "7"})
    mocked.post(ESEARCH, status=429, body=RATE_LIMIT_BODY, headers={"Retry-After": "2"})
    mocked.post(ESEARCH, body=recorded("biopython/esearch1.xml"))
    c = client(clock)
    assert c.esearch("biopython").count == 63
    assert clock.sleeps == [7.0, 2.0]
    assert (c.requests_made, c.retries) == (3, 2)


@pytest.mark.parametrize(("offset", "low", "high"), [(30, 28.0, 30.0), (-30, 0.0, 0.0), (3600, 120.0, 120.0)])
def test_retry_after_as_an_http_date(mocked, clock, offset, low, high):
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=offset), usegmt=True)
    mocked.post(ESEARCH, status=503, headers={"Retry-After": when})
    mocked.post(ESEARCH, body=recorded("biopython/esearch1.xml"))
    client(clock).esearch("biopython")
    assert low <= clock.sleeps[0] <= high  # then, after a zero wait, the rate limit's 1/3 s


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_back_off_exponentially_then_succeed(mocked, clock, status):
    mocked.post(ESEARCH, status=status)
    mocked.post(ESEARCH, status=status)
    mocked.post(ESEARCH, body=recorded("biopython/esearch1.xml"))
    c = client(clock, backoff=1.0)
    assert c.esearch("biopython").count == 63
    first, second = clock.sleeps
    assert 1.0 <= first <= 1.1 and 2.0 <= second <= 2.2
    assert c.retries == 2


@pytest.mark.parametrize(
    "fault",
    [requests.exceptions.ReadTimeout("read timed out"), requests.exceptions.ConnectTimeout("connect"),
     requests.ConnectionError("connection reset by peer")],
)
def test_timeouts_and_connection_errors_are_retried(mocked, clock, fault):
    mocked.post(ESEARCH, body=fault)
    mocked.post(ESEARCH, body=recorded("biopython/esearch1.xml"))
    c = client(clock)
    assert c.esearch("biopython").count == 63
    assert (c.requests_made, c.retries) == (2, 1)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (recorded("biopython/esearch1.xml")[:400], {}),  # cut mid-document
        (recorded("biopython/einfo4.xml"), {}),  # recorded truncated answer
        (recorded("biopython/esearch1.xml")[:400], {"Content-Length": "718"}),  # shorter than declared
        (b"<eInfoResult><DbList/></eInfoResult>", {}),  # XML, but not what was asked
    ],
)
def test_truncated_or_unparsable_answers_are_retried(mocked, clock, body, headers):
    mocked.post(ESEARCH, body=body, headers=headers)
    mocked.post(ESEARCH, body=recorded("biopython/esearch1.xml"))
    c = client(clock)
    assert c.esearch("biopython").count == 63
    assert c.retries == 1


def test_truncated_efetch_is_retried(mocked, clock):
    body = recorded("biopython/pubmed2.xml")
    mocked.post(EFETCH, body=body[: len(body) // 2])
    mocked.post(EFETCH, body=body)
    assert client(clock).efetch([11748933]) == body


def test_an_efetch_body_broken_in_the_middle_is_fetched_again(mocked, clock, caplog):
    """Its end looks complete, yet a tag in the middle does not close: the client asks again and
    hands back only the good answer, so the run never sees the broken one."""
    body = recorded("biopython/pubmed2.xml")
    broken = body.replace(b"</ArticleTitle>", b"</ArticleTitel>", 1)
    assert broken != body and broken.rstrip().endswith(b"</PubmedArticleSet>")
    mocked.post(EFETCH, body=broken)
    mocked.post(EFETCH, body=body)
    c = client(clock)
    assert c.efetch([11748933, 11700088]) == body
    assert (c.requests_made, c.retries) == (2, 1)
    assert "efetch.fcgi attempt 1/6 failed (malformed XML (mismatched tag: line" in caplog.text


def test_a_count_without_ids_is_not_taken_for_an_answer(mocked, clock):
    broken = re.sub(rb"<IdList>.*</IdList>", b"<IdList/>", recorded("biopython/esearch1.xml"), flags=re.S)
    mocked.post(ESEARCH, body=broken)
    mocked.post(ESEARCH, body=recorded("biopython/esearch1.xml"))
    assert len(client(clock).esearch("biopython").ids) == 20


# -- ERROR answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ncbi-2012-samples/esearch.baderror.xml", "Invalid db name specified: fleegle"),
        ("ncbi-2012-samples/einfo.error.xml", "Can not retrieve DbInfo for db=fleegle"),
        ("ncbi-2012-samples/esummary.error.xml", "Invalid db name specified: fleegle"),
        ("biopython/epost2.xml", "Invalid db name specified: nothing"),
        ("biopython/epost3.xml", "Empty ID list; Nothing to store"),
        ("biopython/esummary8.xml", "Neither query_key nor id specified"),
        ("json-edgecases/esearch_json_empty_term_ERROR.json", "Empty term and query_key - nothing todo"),
        # says "Search Backend failed" yet can never succeed: not retried
        ("json-edgecases/esearch_json_retstart_over_9998_ERROR.INVALID_JSON.txt", "cannot be larger than 9998"),
    ],
)
@pytest.mark.parametrize("endpoint", ["esearch", "efetch"])
def test_a_permanent_error_in_a_200_answer_fails_at_once(mocked, clock, name, message, endpoint):
    mocked.post(BASE + f"{endpoint}.fcgi", body=recorded(name))
    c = client(clock)
    with pytest.raises(EutilsError, match=re.escape(message)) as caught:
        c.esearch("x") if endpoint == "esearch" else c.efetch([1])
    assert f"{endpoint}.fcgi" in str(caught.value)
    assert (c.requests_made, c.retries, clock.sleeps) == (1, 0, [])


@pytest.mark.parametrize(
    "body",
    [
        recorded("ncbi-2012-samples/esearch.baderror.xml").replace(
            b"Invalid db name specified: fleegle", b"Search Backend failed: read timeout"
        ),
        b'{"header":{"type":"esearch","version":"0.3"},"esearchresult":{"ERROR":"Database is temporarily unavailable"}}',
    ],
)
def test_a_transient_error_in_a_200_answer_is_retried(mocked, clock, body):
    mocked.post(ESEARCH, body=body)
    mocked.post(ESEARCH, body=recorded("biopython/esearch1.xml"))
    c = client(clock)
    assert c.esearch("biopython").count == 63
    assert c.retries == 1


def test_a_json_answer_without_error_is_still_not_xml(mocked, clock):
    mocked.post(ESEARCH, body=recorded("json-edgecases/esearch_json_phrasesnotfound_errorlist.json"))
    with pytest.raises(EutilsError, match="JSON where XML was asked for"):
        client(clock, max_retries=1).esearch("nobody")


def test_a_4xx_answer_is_not_retried(mocked, clock):
    mocked.post(ESEARCH, status=400, body=recorded("ncbi-2012-samples/esearch.baderror.xml"))
    c = client(clock)
    with pytest.raises(EutilsError, match="HTTP 400 Bad Request: Invalid db name"):
        c.esearch("x")
    assert c.requests_made == 1


# -- giving up -----------------------------------------------------------------------------------------


def test_after_the_last_retry_the_search_raises_and_never_returns_empty(mocked, clock):
    mocked.post(ESEARCH, body=requests.ConnectionError("connection refused"))
    c = client(clock, max_retries=2)
    result: SearchResult | None = None
    with pytest.raises(EutilsError) as caught:
        result = c.esearch("migraine")
    assert result is None
    message = str(caught.value)
    assert "esearch.fcgi" in message and "3 attempts" in message and "connection refused" in message
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert (c.requests_made, c.retries, len(clock.sleeps)) == (3, 2, 2)


def test_the_api_key_never_shows_in_errors_logs_events_or_repr(mocked, clock, caplog):
    """NCBI's 429 body echoes the key (biocommons/bioutils#16); it must be masked everywhere."""
    caplog.set_level(logging.DEBUG)
    body = RATE_LIMIT_BODY.replace(b"127.0.0.1", SECRET.encode())
    mocked.post(ESEARCH, status=429, body=body, headers={"Retry-After": "0"})
    mocked.post(ESEARCH, body=requests.ConnectionError(f"{ESEARCH}?api_key={SECRET}&term=x refused"))
    mocked.post(ESEARCH, status=429, body=body, headers={"Retry-After": "0"})
    events: list[tuple[str, dict[str, object]]] = []
    c = client(clock, api_key=SECRET, max_retries=2, on_event=lambda e, d: events.append((e, d)))
    with pytest.raises(EutilsError) as caught:
        c.esearch("x")
    assert "API rate limit exceeded" in str(caught.value)
    for text in (str(caught.value), repr(caught.value), caplog.text, repr(events), repr(c)):
        assert SECRET not in text
    assert "api_key=***" in caplog.text
    assert repr(c) == (
        "EutilsClient(base_url='https://eutils.test/entrez/eutils/', "
        "email='librarian@example.org', api_key='***')"
    )


def test_a_dead_server_fails_at_once_naming_the_setting_and_never_the_key(clock):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = client(clock, f"http://127.0.0.1:{port}/entrez/eutils", api_key=SECRET, max_retries=3, timeout=2)
    with pytest.raises(EutilsError, match=r"connection refused \(not retried: check LITWATCH_EUTILS_URL") as caught:
        c.efetch([1, 2, 3])
    assert (c.requests_made, clock.sleeps) == (1, [])
    assert SECRET not in str(caught.value) and SECRET not in str(caught.value.__cause__)


class UnresolvableSession(requests.Session):
    """What requests raises when the host name does not resolve, without asking any DNS server."""

    def request(self, method: str | bytes, url: str | bytes, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
        reason = NameResolutionError("eutils.example", None, socket.gaierror(-2, "Name or service not known"))  # type: ignore[arg-type]
        raise requests.ConnectionError(MaxRetryError(None, str(url), reason))  # type: ignore[arg-type]


def test_a_host_that_does_not_resolve_fails_at_once_naming_the_setting(clock):
    base = "https://eutils.example/entrez/eutils/"
    c = client(clock, base, session=UnresolvableSession(), max_retries=5)
    with pytest.raises(EutilsError) as caught:
        c.esearch("migraine")
    assert str(caught.value) == (
        f"no E-utilities at {base}: no such host (not retried: check LITWATCH_EUTILS_URL, which holds {base}; "
        "NCBI's is https://eutils.ncbi.nlm.nih.gov/entrez/eutils/)"
    )
    assert (c.requests_made, clock.sleeps) == (1, [])


@pytest.mark.parametrize(("status", "body", "cause"), [
    (200, b"<!DOCTYPE html>\n<html><head><title>PubMed</title></head><body>Search</body></html>",
     "answered a web page (HTML), not an API answer"),
    (200, b"<html><body>Proxy Error</body></html>", "answered a web page (HTML), not an API answer"),
    (404, b"<html><body>Not Found</body></html>", "HTTP 404 Not Found"),
])
def test_an_answer_that_is_not_e_utilities_fails_at_once_naming_the_setting(mocked, clock, status, body, cause):
    mocked.post(ESEARCH, status=status, body=body, content_type="text/html")
    c = client(clock)
    with pytest.raises(EutilsError) as caught:
        c.esearch("migraine")
    assert str(caught.value) == (
        f"no E-utilities at {BASE}: {cause} (not retried: check LITWATCH_EUTILS_URL, which holds {BASE}; "
        "NCBI's is https://eutils.ncbi.nlm.nih.gov/entrez/eutils/)"
    )
    assert (c.requests_made, c.retries) == (1, 0)


def test_from_settings_needs_an_email():
    with pytest.raises(ConfigError, match="LITWATCH_EMAIL"):
        EutilsClient.from_settings(Settings())
    c = EutilsClient.from_settings(
        Settings(email="me@example.org", api_key=SECRET, eutils_url="http://localhost:9/eutils", max_retries=2)
    )
    assert (c.base_url, c.email, c.max_retries) == ("http://localhost:9/eutils/", "me@example.org", 2)
    assert SECRET not in repr(c)


# -- rate limit ----------------------------------------------------------------------------------------


def request_times(mocked: responses.RequestsMock, clock: FakeClock, n: int, *clients: EutilsClient) -> list[float]:
    times: list[float] = []

    def answer(request: object) -> tuple[int, dict[str, str], bytes]:
        times.append(clock.now)
        return 200, {}, recorded("biopython/esearch1.xml")

    mocked.add_callback(responses.POST, ESEARCH, callback=answer)
    for i in range(n):
        clients[i % len(clients)].esearch("biopython")
    return times


def most_in_one_second(times: list[float]) -> int:
    return max(sum(1 for u in times if t <= u < t + 1.0 - 1e-9) for t in times)


def test_three_requests_per_second_without_a_key(mocked, clock):
    times = request_times(mocked, clock, 10, client(clock))
    assert most_in_one_second(times) == 3
    assert times[-1] == pytest.approx(3.0 * RATE_MARGIN)


def test_ten_requests_per_second_with_a_key(mocked, clock):
    times = request_times(mocked, clock, 25, client(clock, api_key=SECRET))
    assert most_in_one_second(times) == 10


def test_two_clients_share_one_rate_limit(mocked, clock):
    times = request_times(mocked, clock, 9, client(clock), client(clock))
    assert most_in_one_second(times) == 3


def test_threads_share_one_rate_limit(clock):
    starts: list[float] = []
    limiters = [RateLimiter("https://shared.test/", 3.0, clock=clock, sleep=lambda s: None) for _ in range(2)]

    def work(limiter: RateLimiter) -> None:
        for _ in range(5):
            starts.append(limiter.wait())

    threads = [threading.Thread(target=work, args=(limiters[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    assert len(starts) == 20 and min(gaps) == pytest.approx(RATE_MARGIN / 3)


# -- end to end over real sockets against the fake -------------------------------------------------


def loaded(fake: FakeEutils) -> list[int]:
    """Five real records: two created 2025-01-06, two 2025-01-14, one 2025-02-03."""
    pmids = fake.add_records_from_file(FIXTURES / "biopython/pubmed1.xml", crdt=date(2025, 1, 6))
    pmids += fake.add_records_from_file(FIXTURES / "biopython/pubmed2.xml", crdt=date(2025, 1, 14))
    pmids += fake.add_records_from_file(FIXTURES / "pubmed/38962805.xml", crdt=date(2025, 2, 3))
    return pmids


def test_fake_splits_recorded_sets_and_clones_records(fake_eutils):
    assert fake_eutils.add_records_from_file(
        FIXTURES / "ncbi-2012-samples/efetch.pubmed.xml", crdt=date(2012, 11, 26)
    ) == [17284678, 9997]
    fake_eutils.add_records_from_file(FIXTURES / "pubmed/38962805.xml", crdt=date(2024, 7, 4))
    fake_eutils.clone_record(38962805, 90000001, date(2025, 3, 1))
    clone = fake_eutils.records[90000001][1]
    assert b'<PMID Version="1">90000001</PMID>' in clone and b">38962805<" not in clone
    assert b"10.5555/litwatch.fake.90000001" in clone and b"10.1080/09540121.2024.2374185" not in clone
    assert b'<PubMedPubDate PubStatus="pubmed"><Year>2025</Year><Month>3</Month><Day>1</Day>' in clone


def test_esearch_window_over_real_sockets(fake_eutils):
    loaded(fake_eutils)
    c = EutilsClient(fake_eutils.url, "librarian@example.org", sleep=lambda s: None)
    term = '(migraine) AND ("2025/01/10"[crdt] : "2025/02/28"[crdt])'
    result = c.esearch(term)
    assert (result.count, result.ids) == (3, [38962805, 11748933, 11700088])
    assert result.query_translation == "(migraine) AND 2025/01/10:2025/02/28[Date - Create]"
    same = c.esearch("migraine", mindate="2025/01/10", maxdate="2025/02/28")
    assert same.ids == result.ids
    assert [r.method for r in fake_eutils.requests] == ["POST", "POST"]
    assert fake_eutils.requests[0].params["tool"] == "litwatch"


def test_fake_answers_get_requests_too(fake_eutils):
    loaded(fake_eutils)
    answer = requests.get(fake_eutils.url + "esearch.fcgi", params={"db": "pubmed", "term": "x"}, timeout=5)
    assert answer.status_code == 200 and answer.text.count("<Id>") == 5


def test_efetch_of_three_ids_over_real_sockets(fake_eutils):
    loaded(fake_eutils)
    c = EutilsClient(fake_eutils.url, "librarian@example.org", sleep=lambda s: None)
    xml = c.efetch([12091962, 11748933, 38962805, 99999999])
    assert xml.startswith(b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet')
    assert re.findall(rb'<MedlineCitation[^>]*><PMID Version="1">(\d+)', xml) == [b"12091962", b"11748933", b"38962805"]
    assert c.efetch([99999999]).endswith(b"<PubmedArticleSet>\n</PubmedArticleSet>")


@pytest.mark.parametrize(
    "fault",
    [Fault.http(429), Fault.http(500), Fault.http(503), Fault(truncate=True),
     Fault(error="Search Backend failed: Exception: temporarily unavailable")],
    ids=["429", "500", "503", "truncated", "error"],
)
def test_a_fault_on_every_third_request_still_completes(fake_eutils, fault):
    pmids = loaded(fake_eutils)
    fake_eutils.inject(fault, every=3)
    c = EutilsClient(fake_eutils.url, "librarian@example.org", sleep=lambda s: None)
    for _ in range(4):
        assert c.esearch("migraine").count == 5
        assert c.efetch(pmids).count(b"<PubmedArticle>") == 5
    assert c.retries >= 2 and c.requests_made == fake_eutils.count() == 8 + c.retries


def test_retmax_caps_at_9999_and_history_pages_past_it(fake_eutils):
    fake_eutils.add_records_from_file(FIXTURES / "pubmed/38962805.xml", crdt=date(2024, 7, 4))
    fake_eutils.add_records_from_file(FIXTURES / "pubmed/11636720.xml", crdt=date(2024, 7, 5))
    fake_eutils.add_clones(10_050, first_pmid=80_000_000, crdt=lambda i: date(2025, 1, 1) + timedelta(days=i % 30))
    c = EutilsClient(fake_eutils.url, "librarian@example.org", sleep=lambda s: None)
    result = c.esearch("everything", usehistory=True)
    assert (result.count, len(result.ids), len(set(result.ids))) == (10_052, 9_999, 9_999)
    assert result.webenv and result.query_key == "1"
    with pytest.raises(EutilsError, match="cannot be larger than 9998"):
        c.esearch("everything", retstart=9_999)
    page = c.efetch_history(result.webenv, result.query_key, 10_000, 52)
    assert page.count(b"<PubmedArticle>") == 52
    assert b"<PMID Version=\"1\">11636720</PMID>" in page  # the oldest record comes last


def test_the_real_rate_limit_spaces_requests_in_wall_time(fake_eutils):
    loaded(fake_eutils)
    c = EutilsClient(fake_eutils.url, "librarian@example.org", api_key=SECRET)
    began = time.monotonic()
    for _ in range(6):
        c.esearch("migraine")
    assert time.monotonic() - began >= 0.5 - 0.01


def test_clients_in_several_threads_share_one_rate_limit(fake_eutils, clock):
    loaded(fake_eutils)
    starts: list[float] = []

    def record(event: str, details: dict[str, object]) -> None:
        if event == "request":
            starts.append(float(details["at"]))  # type: ignore[arg-type]

    clients = [
        EutilsClient(fake_eutils.url, "librarian@example.org", sleep=clock.sleep, clock=clock, on_event=record)
        for _ in range(2)
    ]
    threads = [threading.Thread(target=lambda c=c: [c.esearch("x") for _ in range(3)]) for c in clients * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == fake_eutils.count() == 12
    assert most_in_one_second(starts) == 3
