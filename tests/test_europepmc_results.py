"""Reading Europe PMC results: what a real result becomes, field by field.

Every result here is a real one from ``tests/fixtures/europepmc/`` (core: 6 journal articles;
lite: 24 preprints), except where a test says it adds a link no recorded answer carries.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from litwatch.records import AbstractSection, Author, Chemical, Correction
from litwatch.sources.europepmc_results import LinkedWork, read_result

FIXTURES = Path(__file__).parent / "fixtures" / "europepmc"


def recorded(name: str) -> dict[str, dict[str, Any]]:
    answer = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return {r["id"]: r for r in answer["resultList"]["result"]}


CORE = recorded("search_core.json")
LITE = recorded("search_lite_preprints.json")
PREPRINTS = [r for r in LITE.values() if r["source"] == "PPR"]


def test_a_medrxiv_preprint_is_a_preprint_paper_on_its_server() -> None:
    record = read_result(LITE["PPR1036674"])
    assert (record.source, record.source_id, record.server, record.version) == ("PPR", "PPR1036674", "medRxiv", None)
    assert record.is_preprint and record.published == [] and record.links == []
    paper = record.paper
    assert (paper.kind, paper.pmid, paper.journal) == ("preprint", 0, "medRxiv")
    assert paper.doi == "10.1101/2025.06.13.25329599"
    assert paper.title.startswith("Red meat intake interacts with a TGF-β-pathway-based polygenic risk score")
    assert (paper.pub_date, record.first_index_date, paper.pub_year) == (dt.date(2025, 6, 16), dt.date(2025, 6, 18), 2025)
    assert [t.name for t in paper.publication_types] == ["preprint"]
    # A lite result names its authors only in authorString: "Mendez JS, Queme B, ..., Stern MC."
    assert len(paper.authors) == 72
    assert paper.authors[0] == Author(last_name="Mendez", initials="JS")
    assert paper.authors[-1] == Author(last_name="Stern", initials="MC")
    assert Author(last_name="van Duijnhoven", initials="FJ") in paper.authors


@pytest.mark.parametrize(
    ("source_id", "server", "version", "doi"),
    [
        ("PPR1037166", "Research Square", 1, "10.21203/rs.3.rs-6664819/v1"),
        ("PPR1037864", "Preprints.org", 1, "10.20944/preprints202506.1245.v1"),
        ("PPR1036694", "bioRxiv", None, "10.1101/2025.06.10.658949"),
    ],
)
def test_server_version_and_doi_of_real_preprints(source_id: str, server: str, version: int | None, doi: str) -> None:
    record = read_result(LITE[source_id])
    assert (record.server, record.paper.journal, record.version, record.paper.doi) == (server, server, version, doi)


def test_every_recorded_preprint_reads_as_a_preprint_with_a_server_and_a_doi() -> None:
    records = [read_result(r) for r in PREPRINTS]
    assert len(records) == 24 and all(r.is_preprint and r.paper.pmid == 0 for r in records)
    assert sorted({r.server or "" for r in records}) == ["Preprints.org", "Research Square", "bioRxiv", "medRxiv"]
    assert all(r.paper.doi and r.first_index_date for r in records)
    assert sum(r.version is not None for r in records) == 16


def test_an_author_string_entry_that_is_not_surname_and_initials_is_kept_whole() -> None:
    authors = read_result(LITE["PPR1033861"]).paper.authors
    assert Author(collective_name="wang r") in authors  # as Europe PMC wrote it, lower case


def test_a_core_journal_article_with_a_structured_abstract_mesh_keywords_and_orcid() -> None:
    record = read_result(CORE["40468710"])
    paper = record.paper
    assert (record.source, record.source_id, record.is_preprint, record.server) == ("MED", "40468710", False, None)
    assert (paper.pmid, paper.kind, paper.doi) == (40468710, "article", "10.1111/bjhp.12807")
    assert paper.title == (
        "The role of psychological flexibility in relation to health outcomes in people in remission from cancer."
    )
    assert [s.label for s in paper.abstract_sections] == ["Objective", "Design", "Methods", "Results", "Conclusions"]
    assert paper.abstract.startswith("Objective: This study investigated whether psychological flexibility")
    assert "<h4>" not in paper.abstract
    assert (paper.journal, paper.journal_abbrev, paper.issn) == ("British journal of health psychology", "Br J Health Psychol", "1359-107X")
    assert (paper.volume, paper.issue, paper.pages) == ("30", "3", "e12807")
    assert (paper.pub_date, paper.pub_date_text, paper.languages) == (dt.date(2025, 9, 1), "2025 Sep", ["eng"])
    assert (record.first_index_date, paper.date_completed, paper.date_revised) == (
        dt.date(2025, 6, 11), dt.date(2025, 6, 5), dt.date(2025, 6, 9),
    )  # fmt: skip
    first = paper.authors[0]
    assert (first.last_name, first.fore_name, first.initials, first.orcid) == ("Al-Abbadey", "Miznah", "M", "0000-0002-6307-9196")
    assert first.affiliations[1] == "Chronic Pain Service, Hampshire and Isle of Wight NHS Foundation Trust, Hampshire, England."
    assert len(paper.authors) == 7
    neoplasms = next(m for m in paper.mesh if m.name == "Neoplasms")
    assert neoplasms.major_topic and [q.name for q in neoplasms.qualifiers] == ["psychology", "therapy"]
    assert len(paper.mesh) == 18
    assert [k.text for k in paper.keywords] == [
        "Cancer", "Acceptance And Commitment Therapy", "Longitudinal", "Psychological Flexibility", "Cancer Survivorship", "Act",
    ]  # fmt: skip


def test_chemicals_keep_their_registry_numbers() -> None:
    chemicals = read_result(CORE["40511629"]).paper.chemicals
    assert Chemical(None, "Paclitaxel", "P88XT4IS4D") in chemicals and len(chemicals) == 5


def test_a_result_without_doi_or_abstract_headings() -> None:
    paper = read_result(CORE["39038316"]).paper
    assert paper.doi is None
    assert paper.abstract_sections[0] == AbstractSection(
        "Objective",
        "The aim was to investigate the factors associated with cough persistence after thoracoscopic lung "
        "cancer resection in elderly lung cancer patients and preventive strategies.",
    )
    assert read_result(CORE["39709209"]).paper.abstract_sections == []


def test_an_erratum_links_the_article_it_corrects_as_pubmed_does() -> None:
    record = read_result(CORE["39709208"])
    citation = "Lancet. 2024 Sep 28;404(10459):1227-1239. doi: 10.1016/S0140-6736(24)01653-2."
    assert record.links == [LinkedWork("Erratum for", "MED", "39293462", "10.1016/s0140-6736(24)01653-2", citation)]
    assert record.paper.corrections == [Correction("ErratumFor", 39293462, citation)]
    assert record.paper.pmcid == "PMC12124214" and record.paper.authors == []
    assert [t.name for t in record.paper.publication_types] == ["Published Erratum", "correction"]
    assert record.published == []  # an erratum is not a published version


def test_a_preprint_linked_to_its_journal_article_names_the_published_version() -> None:
    # No recorded answer has such a link: a real preprint is given one in the shape Europe PMC
    # uses ({"type": "Preprint of", "source": "MED", "id": PMID}, as other projects recorded it).
    result = copy.deepcopy(LITE["PPR1036674"])
    result["commentCorrectionList"] = {"commentCorrection": [{"id": "40468710", "source": "MED", "type": "Preprint of", "orderIn": 1}]}
    record = read_result(result)
    assert record.published == [LinkedWork("Preprint of", "MED", "40468710")]
    assert record.paper.corrections == []  # the journal version is not a correction


def test_a_lite_result_lists_its_publication_types_from_one_string() -> None:
    paper = read_result(LITE["40493882"]).paper
    assert [t.name for t in paper.publication_types] == ["journal article", "observational study"]
