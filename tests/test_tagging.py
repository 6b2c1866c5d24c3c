"""Tagging real sentences: what fires, what must not, and where.

Sentences marked BC2GM are quoted from the training split of the BioCreative II gene-mention corpus
(shared fixtures, genes/bc2gm, by sentence id); those marked PMID are from the recorded PubMed
records of the shared fixtures (pubmed/metapub).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from litwatch.files.vocab import load_vocabulary
from litwatch.records import (
    AbstractSection,
    Chemical,
    Keyword,
    MeshHeading,
    PaperRecord,
)
from litwatch.tagging.forms import normalize
from litwatch.tagging.tagger import Tagger

SHIPPED = Path(__file__).resolve().parent.parent / "queries" / "vocab"


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(load_vocabulary(SHIPPED))


def small_tagger(tmp_path: Path, genes: str, stoplist: str = "", toml: str = "") -> Tagger:
    folder = tmp_path / "vocab"
    folder.mkdir()
    (folder / "genes.tsv").write_text("symbol\tname\taliases\tprevious\tnames\n" + genes, encoding="utf-8")
    (folder / "stoplist.txt").write_text(stoplist, encoding="utf-8")
    if toml:
        (folder / "pathways.toml").write_text(toml, encoding="utf-8")
    return Tagger(load_vocabulary(folder))


def found(tagger: Tagger, text: str, kind: str | None = None) -> list[tuple[str, str]]:
    return [(m.tag, m.text) for m in tagger.match(text) if kind is None or m.kind == kind]


FIRES = [
    # BC2GM P07723247A1161
    ("After 24 hour incubation, total cell-associated IL-1Ra and IL-1 beta were measured by specific "
     "radioimmunoassay.", [("IL1RN", "IL-1Ra"), ("IL1B", "IL-1 beta")]),
    # BC2GM P07537851A0000
    ("Transcription of the vascular cell adhesion molecule 1 (VCAM-1) gene in endothelial cells is induced by "
     "lipopolysaccharide and the inflammatory cytokines interleukin-1 beta and tumor necrosis factor alpha "
     "(TNF-alpha).", [("IL1B", "interleukin-1 beta"), ("TNF", "tumor necrosis factor alpha"), ("TNF", "TNF-alpha")]),
    # BC2GM P07628389A0145
    ("Tumor necrosis factor-alpha (TNF alpha), a proinflammatory cytokine, inhibits cAMP-stimulated "
     "testosterone production in mouse Leydig cells.",
     [("TNF", "Tumor necrosis factor-alpha"), ("TNF", "TNF alpha")]),
    # BC2GM P01398068A0948
    ("Complexes containing wild-type and either his175 or his273 mutant p53 proteins are completely unable to "
     "bind to the RGC DNA sequence.", [("TP53", "p53")]),
    # PMID 39236155 (title; the alpha is U+237A, APL FUNCTIONAL SYMBOL ALPHA, as PubMed has it)
    ("Hematopoietic aging promotes cancer by fueling IL-1\u237a-driven emergency myelopoiesis.", [("IL1A", "IL-1⍺")]),
    # BC2GM P09218520A0075: the vocabulary lists IL1R as a previous symbol of IL1R1
    ("We have initiated studies to identify candidate signal transducers that associate with the cytosolic "
     "domain (cd) of the IL-1R.", [("IL1R1", "IL-1R")]),
    ("Foxp3+ regulatory T cells and Stat3 in the mouse", [("FOXP3", "Foxp3")]),
    ("ERα and ER-alpha, but not the ERA-II group", [("ESR1", "ERα"), ("ESR1", "ER-alpha")]),
    ("serum CGRP and α-CGRP in migraineurs", [("CALCA", "CGRP"), ("CALCA", "α-CGRP")]),
]


@pytest.mark.parametrize(("text", "expected"), FIRES)
def test_genes_fire_on_real_sentences(tagger: Tagger, text: str, expected: list[tuple[str, str]]) -> None:
    assert found(tagger, text, "gene") == expected


SAME_GENE = [
    ("TNF", ["TNF-α", "TNF-alpha", "TNFα", "TNF alpha", "TNF\u2010\u03b1", "TNFalpha", "tumour necrosis factor"]),
    ("IL1B", ["IL-1β", "IL1B", "IL 1 beta", "IL-1 beta", "IL-1beta", "IL1β", "Interleukin-1beta", "interleukin 1β"]),
    ("TP53", ["p53", "TP53", "tumor protein p53"]),
    ("MAPK3", ["ERK1", "ERK-1", "p44MAPK", "p44 MAPK", "PRKM3"]),
    ("NFATC1", ["NFATc1", "NFATC1", "NF-ATc1", "NFAT2"]),
]


@pytest.mark.parametrize(("tag", "writings"), SAME_GENE)
def test_every_writing_of_a_gene_gives_the_same_tag(tagger: Tagger, tag: str, writings: list[str]) -> None:
    for writing in writings:
        text = f"Levels of {writing} were raised."
        assert found(tagger, text, "gene") == [(tag, writing)], writing


DOES_NOT_FIRE = [
    "serum IL-10 levels were normal",  # not IL-1 inside IL-10
    "IL-1RAcP and IL-1R2 expression",  # not IL-1 inside receptor names the vocabulary does not list
    "the alpha4 integrin and α4β7",  # APP's alias A4 is not alpha-4
    "10 μM of the agonist",
]


@pytest.mark.parametrize("text", DOES_NOT_FIRE)
def test_il1_does_not_fire_inside_longer_symbols(tmp_path: Path, text: str) -> None:
    tagger = small_tagger(tmp_path, "IL1\tinterleukin 1\tIL-1\t\t\nAPP\tamyloid beta precursor protein\tA4\t\t\n"
                                    "MMX\tan example\tMM\t\t\n")
    assert found(tagger, text) == []


@pytest.mark.parametrize(("text", "expected"), [
    ("IL-1-induced fever", "IL-1"),
    ("plasma (IL-1) rose", "IL-1"),
    ("IL1 and TNF", "IL1"),
    ("IL 1 and TNF", "IL 1"),
])
def test_il1_fires_where_it_stands_alone(tmp_path: Path, text: str, expected: str) -> None:
    tagger = small_tagger(tmp_path, "IL1\tinterleukin 1\tIL-1\t\t\n")
    assert found(tagger, text) == [("IL1", expected)]


def test_vocabulary_can_say_il1r_is_il1(tmp_path: Path) -> None:
    tagger = small_tagger(tmp_path, "IL1\tinterleukin 1\tIL-1|IL-1R\t\t\n")
    assert found(tagger, "the IL-1R and IL-10") == [("IL1", "IL-1R")]


ENGLISH = [
    # BC2GM P01736093A0731
    "Heat-inducible CAT activity was detectable when additional sequences from the native promoter containing "
    "three CCAAT boxes and a single HSE were present in the constructions.",
    # BC2GM P10592791A0370
    "SET-RPLA and RIDASCREEN kits are suitable for epidemiological investigation of SE types",
    # BC2GM P10102000A1206
    "40 patients had died (35 in the ERA-II group and 5 in the ERA-III group), for a crude mortality rate of 8.0%.",
]


@pytest.mark.parametrize("text", ENGLISH)
def test_stoplisted_symbols_are_not_tagged(tmp_path: Path, text: str) -> None:
    stoplist = (SHIPPED / "stoplist.txt").read_text(encoding="utf-8")
    tagger = small_tagger(tmp_path, "CAT\tcatalase\t\t\t\nSET\tSET nuclear proto-oncogene\t\t\t\n"
                                    "ESR1\testrogen receptor 1\tERA\t\t\n", stoplist)
    assert found(tagger, text) == []
    assert {e.status for e in tagger.explain(text)} == {"stop-list"}


def test_stoplist_entry_with_a_capital_stops_that_form_only(tmp_path: Path) -> None:
    # "CAT" stops CAT only; "tau", in lower case, stops tau in any case
    tagger = small_tagger(tmp_path, "CAT\tcatalase\tCat|cat\t\t\nMAPT\tan example\tTAU|tau\t\t\n", "CAT\ntau\n")
    assert found(tagger, "CAT, Cat, cat, TAU, tau") == [("CAT", "Cat"), ("CAT", "cat")]


def test_offsets_point_into_the_text_as_given(tagger: Tagger) -> None:
    text = ("Regulatory T\u2011cells (Tregs) express FOXP3; IL\u20111\u03b2 and TNF\u2212\u03b1 in "
            "Sj\u00f6gren\u2019s syndrome,\n\tNF-\u03baB and the CGRP receptor in migraines.")
    matches = tagger.match(text)
    assert matches, "nothing matched"
    for m in matches:
        assert text[m.start:m.end] == m.text
    assert ("IL1B", "gene", "IL\u20111\u03b2") in {(m.tag, m.kind, m.text) for m in matches}
    assert ("autoimmune disease", "Sjögren’s syndrome") in {(m.tag, m.text) for m in matches}
    assert ("migraine", "migraines") in {(m.tag, m.text) for m in matches}
    tnf = next(m for m in matches if m.tag == "TNF")
    assert (tnf.start, tnf.end) == (text.index("TNF"), text.index("TNF") + 5)


def test_normalize_keeps_one_character_for_one() -> None:
    text = "IL\u20111\u03b2, TNF-\u03b1 and Sj\u00f6gren\u2019s"
    normal, offsets = normalize(text)
    assert normal == "IL 1B  TNF A and Sjogren s"
    assert offsets == list(range(len(text) + 1))


def test_kinds_do_not_hide_each_other_but_longer_matches_win(tagger: Tagger) -> None:
    explained = tagger.explain("IL-1 beta")
    kept = {(e.match.tag, e.match.kind, e.match.text) for e in explained if e.status == "tagged"}
    assert kept == {("IL1B", "gene", "IL-1 beta"), ("IL-1 signalling", "pathway", "IL-1 beta")}
    assert ("IL-1 signalling", "IL-1", "inside a longer match") in {
        (e.match.tag, e.match.text, e.status) for e in explained}


def test_pathways_and_conditions(tagger: Tagger) -> None:
    text = ("Central sensitization and neuroinflammation in fibromyalgia and endometriosis: "
            "NF-kappaB, JAK/STAT and MAPK/ERK signalling in regulatory T-cells.")
    tags = {(m.tag, m.kind) for m in tagger.match(text)}
    assert {("central sensitization", "pathway"), ("neuroinflammation", "pathway"),
            ("fibromyalgia", "condition"), ("endometriosis", "condition"), ("NF-κB signalling", "pathway"),
            ("JAK-STAT signalling", "pathway"), ("MAPK/ERK signalling", "pathway"),
            ("regulatory T cells / FOXP3", "pathway")} <= tags


def test_tag_record_reads_every_source(tagger: Tagger) -> None:
    record = PaperRecord(
        pmid=39236155,
        title="Hematopoietic aging promotes cancer by fueling IL-1\u237a-driven emergency myelopoiesis.",
        abstract_sections=[AbstractSection(None, "The age-associated decline of DNA methyltransferase 3A "
                                                 "enhances IL-1\u237a production, and disrupting IL-1 receptor 1 "
                                                 "signaling early during tumor development normalized myelopoiesis")],
        keywords=[Keyword("migraine"), Keyword("Tregs")],
        mesh=[MeshHeading("D018919", "Interleukin-1beta"), MeshHeading("D051858", "Forkhead Transcription Factors"),
              MeshHeading("D008881", "Migraine Disorders")],
        chemicals=[Chemical("D014409", "Tumor Necrosis Factor-alpha")],
        gene_symbols=["Foxp3", "CGRP"],
    )
    tags = tagger.tag_record(record)
    got = {(t.tag, t.kind, t.source) for t in tags}
    assert {
        ("IL1A", "gene", "title"), ("IL1A", "gene", "abstract"), ("migraine", "condition", "keyword"),
        ("regulatory T cells / FOXP3", "pathway", "keyword"), ("IL1B", "gene", "mesh"),
        ("regulatory T cells / FOXP3", "pathway", "mesh"), ("migraine", "condition", "mesh"),
        ("TNF", "gene", "chemical"), ("FOXP3", "gene", "gene_symbol"), ("CALCA", "gene", "gene_symbol"),
    } <= got
    assert len(got) == len(tags), "one tag per (tag, source)"
    assert {t.vocab_version for t in tags} == {tagger.vocab.version}
    title = next(t for t in tags if t.source == "title" and t.tag == "IL1A")
    assert title.text == "IL-1\u237a"
    assert next(t for t in tags if t.source == "gene_symbol" and t.tag == "FOXP3").text == "Foxp3"


def test_a_term_never_spans_two_items_of_a_list(tagger: Tagger) -> None:
    # "tumor necrosis factor" is a TNF-alpha term; split over two keywords it names nothing
    split = PaperRecord(pmid=1, keywords=[Keyword("tumor necrosis"), Keyword("factor")],
                        mesh=[MeshHeading(None, "Tumor"), MeshHeading(None, "Necrosis Factor")])
    assert tagger.tag_record(split) == []
    whole = PaperRecord(pmid=1, keywords=[Keyword("burns"), Keyword("tumor necrosis factor")])
    assert {(t.tag, t.source, t.text) for t in tagger.tag_record(whole)} == {
        ("TNF", "keyword", "tumor necrosis factor"), ("TNF-alpha signalling", "keyword", "tumor necrosis factor")}


def test_empty_vocabulary_and_empty_text(tmp_path: Path) -> None:
    folder = tmp_path / "vocab"
    folder.mkdir()
    empty = Tagger(load_vocabulary(folder))
    assert empty.match("IL-6") == []
    assert empty.tag_record(PaperRecord(pmid=1, title="IL-6")) == []
    assert Tagger(load_vocabulary(SHIPPED)).match("") == []


def test_symbols_keep_their_case_and_names_match_in_any_case(tmp_path: Path) -> None:
    """One automaton scans the lower-cased text for both; a symbol's hit counts only in its case."""
    tagger = small_tagger(tmp_path, "CAT\tcatalase\t\t\t\n")
    text = "The cat had CAT activity; Catalase and CATALASE (catalases) were assayed."
    assert found(tagger, text) == [("CAT", "CAT"), ("CAT", "Catalase"), ("CAT", "CATALASE"), ("CAT", "catalases")]


def test_what_a_tagger_remembers_does_not_carry_context_between_papers(tmp_path: Path) -> None:
    """A form defined as a disease in one paper is still a gene in the next, and again after."""
    tagger = small_tagger(tmp_path, "FH\tfumarate hydratase\t\t\t\n")
    gene = "Fumarate hydratase (FH) deficiency causes renal cancer."
    disease = "Statins in familial hypercholesterolaemia (FH) lower LDL."
    assert found(tagger, gene) == [("FH", "Fumarate hydratase"), ("FH", "FH")]
    assert found(tagger, disease) == []
    assert found(tagger, gene) == [("FH", "Fumarate hydratase"), ("FH", "FH")]
    assert found(tagger, disease) == []
