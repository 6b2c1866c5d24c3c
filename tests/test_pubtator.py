"""The PubTator3 client: what a run gets back, how many requests it costs, and how it fails.

The client runs over real loopback sockets against ``fake_pubtator.FakePubtator``, which serves
the 8 recorded real PubTator3 documents in ``fixtures/pubtator3``; the reading of documents is
checked against what those files say.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from fake_clock import FakeClock
from fake_pubtator import FakePubtator, Fault
from smtp_sink import free_port
from urllib3.exceptions import MaxRetryError, NameResolutionError

from litwatch.config import PUBTATOR3_URL, load_settings
from litwatch.errors import ConfigError, PubtatorError
from litwatch.sources.pubtator import (
    Annotations,
    PubtatorClient,
    gene_tags,
    read_answer,
    read_document,
)

FIXTURES = Path(__file__).parent / "fixtures" / "pubtator3"
REAL_PMIDS = [28041912, 31003867, 31053471, 38309274, 33664495, 34546791, 37317646, 24633240]
UNKNOWN = 99999999


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake() -> Iterator[FakePubtator]:
    with FakePubtator() as server:
        server.add_documents_from_dir(FIXTURES)
        yield server


def client(url: str, clock: FakeClock, **options: Any) -> PubtatorClient:
    return PubtatorClient(url, sleep=clock.sleep, clock=clock, **options)


def raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def passage_text(document: dict[str, Any], start: int, end: int) -> str:
    """The document's own text at document offsets ``start:end``."""
    for passage in document["passages"]:
        offset = passage["offset"]
        if offset <= start and end <= offset + len(passage["text"]):
            return str(passage["text"][start - offset : end - offset])
    raise AssertionError(f"no passage holds {start}:{end}")


# -- settings -----------------------------------------------------------------------------------------


def test_settings_default_to_the_real_pubtator3_and_on():
    settings = load_settings(env={})
    assert (settings.pubtator_url, settings.pubtator) == (PUBTATOR3_URL, "on")
    assert PUBTATOR3_URL == "https://www.ncbi.nlm.nih.gov/research/pubtator3-api/"


def test_settings_come_from_the_environment():
    settings = load_settings(env={"LITWATCH_PUBTATOR_URL": "http://127.0.0.1:9/pt/", "LITWATCH_PUBTATOR": "off"})
    assert (settings.pubtator_url, settings.pubtator) == ("http://127.0.0.1:9/pt/", "off")


def test_a_wrong_on_off_value_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"LITWATCH_PUBTATOR": "maybe"})
    assert str(caught.value) == "LITWATCH_PUBTATOR must be on or off, got 'maybe'"
    assert caught.value.exit_code == 2


def test_a_url_without_scheme_names_the_setting():
    with pytest.raises(ConfigError, match="LITWATCH_PUBTATOR_URL must start with http"):
        PubtatorClient("www.ncbi.nlm.nih.gov/research/pubtator3-api/")


# -- what an export returns ---------------------------------------------------------------------------


def test_export_returns_every_real_document_by_pmid(fake, clock):
    export = client(fake.url, clock).export(REAL_PMIDS)
    assert list(export.documents) == REAL_PMIDS and export.missing == []
    assert fake.count() == 1
    assert fake.requests[0].path == "/research/pubtator3-api/publications/export/biocjson"
    assert fake.requests[0].params == {"pmids": ",".join(str(p) for p in REAL_PMIDS)}


def test_an_unknown_pmid_is_reported_missing_not_an_error(fake, clock):
    export = client(fake.url, clock).export([UNKNOWN, 24633240])
    assert list(export.documents) == [24633240]
    assert export.missing == [UNKNOWN]


def test_only_unknown_pmids_give_an_empty_export(fake, clock):
    export = client(fake.url, clock).export([UNKNOWN, UNKNOWN + 1])
    assert (export.documents, export.missing) == ({}, [UNKNOWN, UNKNOWN + 1])


def test_pubtator3s_could_not_retrieve_answer_means_none_annotated(clock):
    with responses.RequestsMock() as mocked:
        mocked.get(PUBTATOR3_URL + "publications/export/biocjson", status=404,
                   json={"detail": "Could not retrieve publications"})
        export = client(PUBTATOR3_URL, clock).export([UNKNOWN])
    assert export.missing == [UNKNOWN]


def test_250_pmids_take_3_requests_of_at_most_100(fake, clock):
    pmids = fake.add_clones(250, first_pmid=40_000_000)
    export = client(fake.url, clock).export(pmids)
    assert len(export.documents) == 250
    assert [len(r.pmids) for r in fake.requests] == [100, 100, 50]


def test_duplicates_are_asked_once(fake, clock):
    export = client(fake.url, clock).export([24633240, 24633240, 37317646])
    assert fake.requests[0].pmids == [24633240, 37317646]
    assert list(export.documents) == [24633240, 37317646]


def test_requests_are_spaced_for_3_per_second(fake, clock):
    pmids = fake.add_clones(400, first_pmid=40_000_000)
    client(fake.url, clock).export(pmids)
    assert fake.count() == 4
    assert clock.now >= 3 * (1 / 3)  # four starts, three gaps of at least 1/3 s


def test_off_makes_no_request(fake, clock):
    settings = load_settings(env={"LITWATCH_PUBTATOR": "off", "LITWATCH_PUBTATOR_URL": fake.url})
    export = PubtatorClient.from_settings(settings).export(REAL_PMIDS)
    assert export.off and export.documents == {} and export.missing == []
    assert fake.count() == 0


# -- retries and failures -----------------------------------------------------------------------------


def test_a_429_waits_as_long_as_retry_after_says(fake, clock):
    fake.inject(Fault.http(429, retry_after="7"), times=2)
    c = client(fake.url, clock)
    assert list(c.export([24633240]).documents) == [24633240]
    assert clock.sleeps[:1] == [7.0] and 7.0 in clock.sleeps[1:3]
    assert (c.requests_made, c.retries, fake.count()) == (3, 2, 3)


@pytest.mark.parametrize(
    "fault",
    [Fault.http(500), Fault.http(503), Fault(truncate=True), Fault(malformed=True)],
    ids=["500", "503", "truncated", "malformed-json"],
)
def test_passing_faults_are_retried_then_succeed(fake, clock, fault):
    fake.inject(fault, times=2)
    c = client(fake.url, clock)
    export = c.export(REAL_PMIDS)
    assert len(export.documents) == 8
    assert (c.retries, fake.count()) == (2, 3)


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        (Fault.http(500), "HTTP 500"),
        (Fault(truncate=True), "ChunkedEncodingError"),
        (Fault(malformed=True), "malformed answer"),
    ],
    ids=["500", "truncated", "malformed-json"],
)
def test_retries_exhausted_is_a_loud_one_line_error(fake, clock, fault, cause):
    fake.inject(fault)
    with pytest.raises(PubtatorError) as caught:
        client(fake.url, clock, max_retries=2).export([24633240])
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_code == 1
    assert message.startswith(f"PubTator3 export of 1 PMID at {fake.url} failed after 3 attempts: ")
    assert cause in message and "LITWATCH_PUBTATOR=off" in message
    assert fake.count() == 3


def test_timeouts_are_retried(clock):
    url = PUBTATOR3_URL + "publications/export/biocjson"
    with responses.RequestsMock() as mocked:
        mocked.get(url, body=requests.Timeout("read timed out"))
        mocked.get(url, json={"PubTator3": [raw("pubtator_8.json")]})
        c = client(PUBTATOR3_URL, clock)
        assert list(c.export([24633240]).documents) == [24633240]
    assert c.retries == 1


def test_a_refused_connection_fails_at_once_naming_the_setting(clock):
    url = f"http://127.0.0.1:{free_port()}/research/pubtator3-api/"
    c = client(url, clock)
    with pytest.raises(PubtatorError) as caught:
        c.export([24633240])
    message = str(caught.value)
    assert message == (
        f"PubTator3 at {url}: cannot connect (connection refused); "
        "check LITWATCH_PUBTATOR_URL, or set LITWATCH_PUBTATOR=off to run without PubTator3"
    )
    assert (c.requests_made, clock.sleeps) == (1, [])


def test_a_wrong_url_fails_at_once_naming_the_setting(fake, clock):
    wrong = fake.url.replace("pubtator3-api", "pubtator-api")
    with pytest.raises(PubtatorError) as caught:
        client(wrong, clock).export([24633240])
    assert "HTTP 404 Not Found" in str(caught.value) and "(no PubTator3 export there)" in str(caught.value)
    assert "check LITWATCH_PUBTATOR_URL" in str(caught.value)
    assert fake.count() == 1


# -- reading the real documents -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pmid", "genes", "diseases", "first_gene", "first_disease"),
    [
        ("10.1016_j.molcel.2016.11.034.json", 28041912, 15, 8,
         ("miR-196b", (442920,), None, 68, "title"), ("Prostate Cancer Castration", "D011471", 108)),
        ("10.1016_j.molcel.2019.03.023.json", 31003867, 11, 1,
         ("REC114", (73673,), "83546", 0, "title"), ("sterility", "D007246", 673)),
        ("10.1016_j.molcel.2019.04.005.json", 31053471, 19, 2,
         ("PD-L1", (29126,), "8560", 0, "title"), ("cancer", "D009369", 448)),
        ("10.1016_j.molcel.2024.01.007.json", 38309274, 14, 1,
         ("IkappaBzeta", (64332,), "12734", 0, "title"), ("lymphoma", "D008223", 747)),
        ("10.1038_s41556-021-00642-9.json", 33664495, 17, 1,
         ("AIDA", (108909,), "11268", 0, "title"), ("hypothermia", "D007035", 768)),
        ("10.1126_scisignal.abf3535.json", 34546791, 24, 11,
         ("IKKbeta", (16150,), "7782", 0, "title"), ("osteoarthritis", "D010003", 84)),
        ("10.15252_embj.2023113616.json", 37317646, 2, 1,
         ("Bld10", (39647,), "45709", 820, "abstract"), ("ciliary defects", "D002925", 586)),
        ("pubtator_8.json", 24633240, 1, 2,
         ("CD34", (947,), "1343", 713, "abstract"), ("tumor", "D009369", 800)),
    ],
)
def test_real_documents_read_as_the_file_says(name, pmid, genes, diseases, first_gene, first_disease):
    document = raw(name)
    annotations = read_document(document)
    assert (annotations.pmid, len(annotations.genes), len(annotations.diseases)) == (pmid, genes, diseases)
    gene = annotations.genes[0]
    assert (gene.text, gene.gene_ids, gene.homologene, gene.start, gene.passage) == first_gene
    disease = annotations.diseases[0]
    assert (disease.text, disease.mesh_id, disease.start) == first_disease
    for mention in annotations.genes + annotations.diseases:
        assert passage_text(document, mention.start, mention.end) == mention.text


def test_a_documents_gene_ids_are_the_ones_pubtator_wrote():
    annotations = read_document(raw("10.1016_j.molcel.2016.11.034.json"))
    by_text = {g.text: (g.gene_ids, g.name) for g in annotations.genes}
    assert by_text["p65"] == ((5970,), "RELA")
    assert by_text["IKKbeta"] == ((3551,), "IKBKB")
    assert by_text["NF-kappaB"] == ((4790,), "NFKB1")
    assert annotations.diseases[-1].identifier == "MESH:D064129"


def test_annotations_without_an_identifier_are_left_out():
    # scisignal.abf3535 has a Disease "proinflammatory" with valid: false and no identifier.
    document = raw("10.1126_scisignal.abf3535.json")
    assert any(a["text"] == "proinflammatory" for p in document["passages"] for a in p["annotations"])
    assert "proinflammatory" not in {d.text for d in read_document(document).diseases}


def test_several_gene_ids_separated_by_semicolons_are_all_kept():
    # A real annotation given the ';'-separated identifier PubTator writes for a mention of two genes.
    document = copy.deepcopy(raw("pubtator_8.json"))
    gene = next(a for p in document["passages"] for a in p["annotations"] if a["infons"]["type"] == "Gene")
    gene["infons"]["identifier"] = "947;12490"
    assert read_document(document).genes[0].gene_ids == (947, 12490)


def test_the_export_answer_shapes_are_all_read():
    document = raw("pubtator_8.json")
    for body in ({"PubTator3": [document]}, [document], {"documents": [document]}):
        assert [a.pmid for a in read_answer(json.dumps(body).encode())] == [24633240]
    with pytest.raises(ValueError):
        read_answer(b'{"PubTator3": "nope"}')


# -- gene tags ----------------------------------------------------------------------------------------

SYMBOLS = {3551: "IKBKB", 4790: "NFKB1", 5970: "RELA", 9662: "CEP135", 947: "CD34"}


def tags_of(annotations: Annotations, **options: Any) -> dict[str, tuple[str | None, int, int | None]]:
    return {t.text: (t.symbol, t.gene_id, t.species) for t in gene_tags(annotations, SYMBOLS, **options)}


def test_human_gene_ids_get_their_hgnc_symbol():
    tags = gene_tags(read_document(raw("10.1016_j.molcel.2016.11.034.json")), SYMBOLS)
    p65 = next(t for t in tags if t.text == "p65")
    assert (p65.symbol, p65.gene_id, p65.species, p65.human_gene_id) == ("RELA", 5970, 9606, 5970)
    assert (p65.source, p65.identifier, p65.start, p65.end) == ("pubtator3", "NCBIGene:5970", 97, 100)


def test_an_orthologue_in_the_same_paper_gives_the_human_symbol():
    # embj.2023113616 names fly Bld10 (39647) and human CEP135 (9662), HomoloGene group 45709.
    tags = tags_of(read_document(raw("10.15252_embj.2023113616.json")))
    assert tags["Bld10"] == ("CEP135", 39647, None)
    assert tags["CEP135"] == ("CEP135", 9662, 9606)


def test_mouse_genes_map_through_a_homologene_table():
    annotations = read_document(raw("10.1126_scisignal.abf3535.json"))
    tags = tags_of(annotations, orthologues={"7782": 3551, "2971": 4790})
    assert tags["IKKbeta"] == ("IKBKB", 16150, None)
    assert tags["NF-kappaB"] == ("NFKB1", 18033, None)
    # group 32064 is not in the table: mouse Rela (PubTator's symbol) spells human RELA
    assert tags["p65"] == ("RELA", 19697, None)
    alone = tags_of(annotations, orthologues={}, by_symbol={})  # neither the table nor a symbol: kept
    assert alone["p65"] == (None, 19697, None)


def test_a_gene_outside_homologene_does_not_map_by_its_symbol():
    # miR-196b (442920) has no HomoloGene group: a symbol spelled like a human one is not evidence
    annotations = read_document(raw("10.1016_j.molcel.2016.11.034.json"))
    mir = next(m for m in annotations.genes if m.text == "miR-196b")
    assert mir.homologene is None
    [tag] = [t for t in gene_tags(annotations, {1: "MIR196B"}) if t.text == "miR-196b"]
    assert (tag.symbol, tag.gene_id) == (None, 442920)


def test_a_gene_with_no_known_human_gene_is_kept_without_symbol():
    tags = gene_tags(read_document(raw("10.1016_j.molcel.2016.11.034.json")), SYMBOLS)
    mir = next(t for t in tags if t.text == "miR-196b")
    assert (mir.symbol, mir.gene_id, mir.human_gene_id, mir.identifier) == (None, 442920, None, "NCBIGene:442920")


def test_no_such_host_fails_at_once_naming_the_setting(clock):
    reason = NameResolutionError("pubtator.invalid", None, OSError("Name or service not known"))  # type: ignore[arg-type]
    url = "http://pubtator.invalid/research/pubtator3-api/"
    with responses.RequestsMock() as mocked:
        mocked.get(url + "publications/export/biocjson", body=requests.ConnectionError(MaxRetryError(None, url, reason)))  # type: ignore[arg-type]
        with pytest.raises(PubtatorError, match=r"cannot connect \(no such host\); check LITWATCH_PUBTATOR_URL"):
            client(url, clock).export([24633240])
    assert clock.sleeps == []


def test_a_refused_request_is_not_retried_and_says_so(fake, clock):
    fake.inject(Fault(status=400, body=b'{"detail":"Bad Request"}'))
    with pytest.raises(PubtatorError) as caught:
        client(fake.url, clock).export([24633240])
    assert str(caught.value) == (
        f"PubTator3 export of 1 PMID at {fake.url} failed: HTTP 400 Bad Request for "
        f"{fake.url}publications/export/biocjson (not retried: asking again would not help)"
    )
    assert fake.count() == 1
