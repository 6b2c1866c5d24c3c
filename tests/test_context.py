"""The context rules of gene tagging, on real sentences, with a vocabulary imported from a real
HGNC excerpt (``fixtures/vocab/hgnc_custom_download_excerpt.tsv``) beside the shipped one.

Sentences marked BC2GM are quoted from the BioCreative II gene-mention corpus (shared fixtures,
genes/bc2gm, spyysalo/bc2gm-corpus @ 01816168, by sentence id); PMID 36644330 is a recorded
PubMed record of the shared fixtures (pubmed/metapub). The field stop-list is left out of the
vocabulary here, so each rule is seen on its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from litwatch.files.vocab import load_vocabulary
from litwatch.tagging import context
from litwatch.tagging.hgnc import import_hgnc
from litwatch.tagging.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent
EXCERPT = ROOT / "tests" / "fixtures" / "vocab" / "hgnc_custom_download_excerpt.tsv"


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Tagger:
    folder = tmp_path_factory.mktemp("vocab")
    for name in ("genes.tsv", "stoplist.txt"):
        shutil.copy(ROOT / "queries" / "vocab" / name, folder)
    import_hgnc(EXCERPT, folder / "hgnc.tsv")
    return Tagger(load_vocabulary(folder))


def genes(tagger: Tagger, text: str) -> list[tuple[str, str]]:
    return [(m.tag, m.text) for m in tagger.match(text) if m.kind == "gene"]


def why(tagger: Tagger, text: str, written: str) -> set[str]:
    return {e.status for e in tagger.explain(text) if e.match.kind == "gene" and e.match.text == written}


@pytest.mark.parametrize(("text", "written", "status"), [
    # BC2GM P07026328A0369: Ca2 is the mouse-style form of CA2 (carbonic anhydrase 2)
    ("In the diabetics, Ca2+ infusions induced a rise of plasma Ca2+ up to 3.2 +/- 0.1 mmol/1.", "Ca2",
     "not a gene: ion"),
    # BC2GM P08631822A0677: VEGF is an alias of VEGFA, but here the receptors are meant
    ("The isolated plasmin fragments of VEGF were compared with respect to heparin binding, interaction with "
     "soluble VEGF receptors, and ability to promote endothelial cell mitogenesis.", "VEGF", "tagged"),
    ("The isolated plasmin fragments of VEGF were compared with respect to heparin binding, interaction with "
     "soluble VEGF receptors, and ability to promote endothelial cell mitogenesis.", "VEGF", "inside a longer name"),
    # BC2GM P09837907A0857: "TNF receptors" is not TNF; "TNF-induced" is
    ("The decrease of TNF receptors by IL-4 was accompanied by down-regulation of TNF-induced activities.", "TNF",
     "inside a longer name"),
    # PMID 36644330: FH (fumarate hydratase) is defined as a disease; no FH is a gene in that abstract
    ("Familial hypercholesterolemia (FH), a prevalent genomic disorder that increases risk of coronary heart "
     "disease, remains significantly underdiagnosed. Clinical decision support (CDS) tools have the potential "
     "to increase FH detection.", "FH", "defined as 'Familial hypercholesterolemia'"),
])
def test_a_match_the_context_contradicts_is_dropped(tagger: Tagger, text: str, written: str, status: str) -> None:
    assert status in why(tagger, text, written)


def test_only_the_vegf_standing_alone_is_tagged(tagger: Tagger) -> None:
    text = ("The isolated plasmin fragments of VEGF were compared with respect to heparin binding, interaction "
            "with soluble VEGF receptors, and ability to promote endothelial cell mitogenesis.")
    assert [(m.tag, m.start) for m in tagger.match(text) if m.kind == "gene"] == [("VEGFA", 34)]


def test_a_longer_name_in_the_vocabulary_is_tagged_instead() -> None:
    tagger = Tagger(load_vocabulary(ROOT / "queries" / "vocab"))
    assert genes(tagger, "Serum IL-1 receptor antagonist rose; IL-1-like activity did not.") == [
        ("IL1RN", "IL-1 receptor antagonist")]


@pytest.mark.parametrize(("text", "expected"), [
    # BC2GM P01394200A0592: CD25 is IL2RA in genes.tsv and also an HGNC alias of ISG20
    ("upregulation of the subset markers CD25 (interleukin 2 receptor) and CD45RO (T-memory cells).",
     [("IL2RA", "CD25")]),
    # COX2 is an HGNC alias of PTGS2 and of MT-CO2; genes.tsv lists it for PTGS2
    ("COX2 expression rose.", [("PTGS2", "COX2")]),
    # CGRP: CALCA in genes.tsv, also an HGNC alias of S100A12
    ("CGRP release from trigeminal neurons", [("CALCA", "CGRP")]),
])
def test_curated_genes_win_over_imported_ones(tagger: Tagger, text: str, expected: list[tuple[str, str]]) -> None:
    assert genes(tagger, text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    # ERK is listed for MAPK1 and MAPK3 (genes.tsv) and is a previous symbol of EPHB2 (HGNC)
    ("ERK phosphorylation was measured.", []),
    ("ERK phosphorylation was measured; MAPK3 knock-down abolished it.", [("MAPK3", "ERK"), ("MAPK3", "MAPK3")]),
])
def test_an_ambiguous_form_needs_its_gene_named_in_the_paper(tagger: Tagger, text: str,
                                                            expected: list[tuple[str, str]]) -> None:
    assert genes(tagger, text) == expected


def test_an_imported_acronym_alias_needs_its_gene_named(tagger: Tagger) -> None:
    # BC2GM test BC2GM032470094: LSD is an HGNC alias of DNASE1L3; here it is the drug
    text = ("It is concluded that the predominant action of LSD on the female copulatory response is not "
            "mediated by increased dopamine receptor activity.")
    assert genes(tagger, text) == []
    assert genes(tagger, text + " DNASE1L3 was not measured.") == [("DNASE1L3", "LSD"), ("DNASE1L3", "DNASE1L3")]


def test_evidence_and_definitions_span_title_and_abstract(tagger: Tagger) -> None:
    from litwatch.records import AbstractSection, PaperRecord

    record = PaperRecord(pmid=36644330, title="ERK and FH in practice",
                         abstract_sections=[AbstractSection(None, "Familial hypercholesterolemia (FH) is common. "
                                                                  "MAPK1 was measured.")])
    assert {(t.tag, t.source) for t in tagger.tag_record(record) if t.kind == "gene"} == {
        ("MAPK1", "title"), ("MAPK1", "abstract")}


@pytest.mark.parametrize(("text", "start", "end", "reason"), [
    ("BiP670 retains basal and Ca2+ ionophore A23187-inducible activities.", 25, 28, "ion"),  # BC2GM P01480470A0323
    # BC2GM test BC2GM088377969: NO3 is an HGNC alias; NO3- is nitrate
    ("Ke was 50% greater than for NO3- enriched medium.", 28, 31, "ion"),
    ("a 3'-polyadenylation site 504bp downstream of the TGA stop codon", 50, 53, "codon or genotype"),  # P09795170A0774
    ("carriers of the C/C genotype", 16, 19, "codon or genotype"),
    ("the TT genotype was rare", 4, 6, "codon or genotype"),
    ("Long-range mapping of the 11q23 region involved in chromosome aberrations", 26, 31, "chromosome band"),  # P07509624T0000
    ("lamina VII and in lamina VIII", 7, 10, "number"),  # BC2GM test BC2GM000019979
    ("TNF-alpha and IL-1beta rose", 0, 3, None),
    ("the GCG gene", 4, 7, None),
])
def test_shapes_that_are_never_a_gene(text: str, start: int, end: int, reason: str | None) -> None:
    assert context.not_a_gene(text, start, end) == reason


@pytest.mark.parametrize(("text", "defined"), [
    ("Familial hypercholesterolemia (FH), a prevalent genomic disorder", {"FH": "Familial hypercholesterolemia"}),
    # BC2GM P00033873T0001
    ("Gamma glutamyl transpeptidase (GGTP) activity in the seminal fluid", {"GGTP": "Gamma glutamyl transpeptidase"}),
    # BC2GM P00055040A0000: IF is defined; the long form is found from the letters, not the word count
    ("were examined with direct immunofluorescence (IF) technique", {"IF": "immunofluorescence"}),
    ("values (n = 12) were lower", {}),
])
def test_definitions_follow_schwartz_hearst(text: str, defined: dict[str, str]) -> None:
    assert context.definitions(text) == defined


@pytest.mark.parametrize(("long", "gene"), [
    ("Gamma glutamyl transpeptidase", True), ("tumor necrosis factor", True), ("interleukin 2 receptor", True),
    ("calcitonin gene-related peptide", True), ("Familial hypercholesterolemia", False),
    ("spinal muscular atrophy", False), ("cognitive behavioral therapy", False), ("traumatic brain injury", False),
])
def test_gene_like_long_forms(long: str, gene: bool) -> None:
    assert context.gene_like(long) is gene


def test_rules_can_be_turned_off_for_comparison(tagger: Tagger) -> None:
    plain = Tagger(tagger.vocab, rules=False)
    assert genes(plain, "plasma Ca2+ rose") == [("CA2", "Ca2")]
    assert genes(tagger, "plasma Ca2+ rose") == []
