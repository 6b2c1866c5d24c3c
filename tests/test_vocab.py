"""Vocabulary files: the shipped starter set loads, mistakes are reported by file and line, and the
HGNC importer turns HGNC's table into a genes file."""

from __future__ import annotations

from pathlib import Path

import pytest

from litwatch.errors import QueryFileError
from litwatch.files.vocab import check_vocabulary, load_vocabulary
from litwatch.tagging.hgnc import LOCUS_GROUPS, ambiguous_alias, import_hgnc
from litwatch.tagging.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "queries" / "vocab"
HGNC_SAMPLE = Path(__file__).parent / "fixtures" / "vocab" / "hgnc_complete_set_sample.txt"

GENES_HEADER = "symbol\tname\taliases\tprevious\tnames\n"


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def test_shipped_vocabulary_is_valid_and_covers_the_field() -> None:
    assert check_vocabulary(SHIPPED) == []
    vocab = load_vocabulary(SHIPPED)
    genes = set(vocab.tags("gene"))
    assert {"TRIM32", "SLC44A4", "FOXP3", "NFATC1", "NFATC2", "NFATC3", "NFATC4", "NFAT5", "IL1A", "IL1B",
            "TNF", "CALCA", "CALCB", "MAPK1", "MAPK3", "TP53", "ESR1"} <= genes
    assert {"IL-1 signalling", "TNF-alpha signalling", "MAPK/ERK signalling", "CGRP signalling",
            "regulatory T cells / FOXP3", "NFAT signalling", "central sensitization"} <= set(vocab.tags("pathway"))
    assert {"migraine", "endometriosis", "fibromyalgia", "autoimmune disease"} <= set(vocab.tags("condition"))
    assert {"CAT", "SET", "ERA"} <= vocab.stoplist
    assert len(vocab.version) == 12


def test_terms_remember_where_they_were_defined() -> None:
    vocab = load_vocabulary(SHIPPED)
    p53 = next(t for t in vocab.terms if t.phrase == "p53")
    assert (p53.tag, p53.kind, p53.case_sensitive, p53.role) == ("TP53", "gene", True, "alias")
    assert p53.source_file.name == "genes.tsv"
    line = p53.source_file.read_text(encoding="utf-8").splitlines()[p53.source_line - 1]
    assert line.startswith("TP53\t")
    migraine = next(t for t in vocab.terms if t.phrase == "Migraine Disorders")
    assert (migraine.tag, migraine.kind, migraine.case_sensitive) == ("migraine", "condition", False)
    header = migraine.source_file.read_text(encoding="utf-8").splitlines()[migraine.source_line - 1]
    assert header == "[condition.migraine]"


def test_version_changes_when_a_file_changes(tmp_path: Path) -> None:
    folder = write(tmp_path / "vocab", {"genes.tsv": GENES_HEADER + "TNF\ttumor necrosis factor\t\t\t\n"})
    before = load_vocabulary(folder).version
    assert load_vocabulary(folder).version == before
    (folder / "stoplist.txt").write_text("CAT\n", encoding="utf-8")
    assert load_vocabulary(folder).version != before


def test_the_same_gene_in_two_files_is_merged(tmp_path: Path) -> None:
    folder = write(tmp_path / "vocab", {
        "genes.tsv": GENES_HEADER + "TNF\ttumor necrosis factor\tTNF-α\t\t\n",
        "hgnc.tsv": GENES_HEADER + "TNF\ttumor necrosis factor\tTNFSF2\tTNFA\t\n",
    })
    phrases = {t.phrase for t in load_vocabulary(folder).terms if t.tag == "TNF"}
    assert {"TNF-α", "TNFSF2", "TNFA", "tumor necrosis factor"} <= phrases


BAD_FILES = [
    ("genes.tsv", GENES_HEADER + "TNF\ttumor necrosis factor\tTNF-α\n", 2,
     "expected 5 tab-separated columns"),
    ("genes.tsv", GENES_HEADER + "TNF    tumor necrosis factor\t\t\t\t\n", 2, "must be one word"),
    ("genes.tsv", GENES_HEADER + "\tno symbol here\t\t\t\n", 2, "must be one word"),
    ("genes.tsv", "# genes\n" + GENES_HEADER + "TNF\t\t\t\t\nIL6\t\t\t\t\nTNF\t\t\t\t\n", 5,
     "already defined on line 3"),
    ("genes.tsv", "symbol\tname\tsynonyms\n", 1, "bad header"),
    ("pathways.toml", '[pathways."IL-1 signalling"]\nkeywords = ["IL-1"]\n', 1, "unknown kind 'pathways'"),
    ("pathways.toml", '# CGRP\n\n[pathway.CGRP]\nkeywords = "CGRP"\n', 4, "must be a list of strings"),
    ("pathways.toml", '[pathway.CGRP]\nkeywords = ["CGRP", 7]\n', 2, "must be a list of strings"),
    ("pathways.toml", '[pathway.CGRP]\nkeywords = ["CGRP"]\nsynonyms = ["x"]\n', 3, "unknown key 'synonyms'"),
    ("pathways.toml", '[pathway.CGRP]\ndescription = "no keywords"\n', 1, "has no keywords"),
    ("pathways.toml", '[pathway.CGRP]\nkeywords = ["CGRP"\n', 2, "not valid TOML"),
    ("conditions.toml", '[condition.migraine]\nkeywords = ["migraine"]\n\n[condition.migraine]\n'
                        'keywords = ["migraines"]\n', 4, "not valid TOML"),
    ("genes.tsv", b"symbol\tname\nTNF\ttumour necrosis factor \xe9\n", None, "not UTF-8"),
]


@pytest.mark.parametrize(("name", "content", "line", "message"), BAD_FILES)
def test_mistakes_name_file_and_line(tmp_path: Path, name: str, content: str | bytes, line: int | None,
                                     message: str) -> None:
    folder = write(tmp_path / "vocab", {name: content})
    with pytest.raises(QueryFileError) as caught:
        load_vocabulary(folder)
    error = caught.value
    assert error.path == folder / name
    assert error.line == line
    assert message in error.message
    assert str(error).startswith(f"{folder / name}:{line}: " if line else f"{folder / name}: ")


def test_check_reports_every_problem_at_once(tmp_path: Path) -> None:
    folder = write(tmp_path / "vocab", {
        "genes.tsv": GENES_HEADER + "TNF\ttumor necrosis factor\n" + "IL6\tinterleukin 6\t\t\t\n",
        "pathways.toml": '[pathway.CGRP]\nkeywords = "CGRP"\n\n[disease.migraine]\nkeywords = ["migraine"]\n',
        "conditions.toml": '[condition.IL6]\nkeywords = ["interleukin 6 disease"]\n',
    })
    problems = check_vocabulary(folder)
    where = sorted((p.path.name, p.line) for p in problems)
    assert where == [("genes.tsv", 2), ("genes.tsv", 3), ("pathways.toml", 2), ("pathways.toml", 4)]
    conflict = next(p for p in problems if p.line == 3)
    assert "'IL6' is a gene here but a condition at" in conflict.message


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    problems = check_vocabulary(tmp_path / "nowhere")
    assert len(problems) == 1 and "not found" in problems[0].message


def test_import_hgnc_writes_a_genes_file(tmp_path: Path) -> None:
    folder = tmp_path / "vocab"
    written = import_hgnc(HGNC_SAMPLE, folder / "hgnc.tsv")
    assert written == 10  # the sample's pseudogene and withdrawn entry are left out
    vocab = load_vocabulary(folder)
    terms = {(t.tag, t.phrase, t.role) for t in vocab.terms}
    assert ("TNF", "TNF-alpha", "alias") in terms
    assert ("TNF", "TNFA", "previous") in terms
    assert ("FOXP3", "IPEX", "previous") in terms
    assert ("SLC44A4", "C6orf29", "previous") in terms
    assert ("SLC44A4", "chromosome 6 open reading frame 29", "name") in terms
    assert ("CALCA", "calcitonin gene-related peptide", "name") in terms
    assert ("TP53", "p53", "alias") in terms
    assert "TESTP1" not in vocab.tags() and "OLDTEST1" not in vocab.tags()
    esr1 = {t.phrase for t in vocab.terms if t.tag == "ESR1"}
    assert "ESRA" in esr1 and "ER" not in esr1 and "Era" not in esr1  # too ambiguous to import
    assert not any(t.phrase in ("CT", "KC") for t in vocab.terms)


def test_imported_hgnc_tags_text_with_the_shipped_stoplist(tmp_path: Path) -> None:
    folder = tmp_path / "vocab"
    import_hgnc(HGNC_SAMPLE, folder / "hgnc.tsv")
    (folder / "stoplist.txt").write_bytes((SHIPPED / "stoplist.txt").read_bytes())
    tagger = Tagger(load_vocabulary(folder))
    text = ("Heat-inducible CAT activity was detectable; the SET-EIA kit; TNF-alpha and IL-1beta rose, "
            "5-HT2A did not.")
    assert [(m.tag, m.text) for m in tagger.match(text)] == [("TNF", "TNF-alpha"), ("IL1B", "IL-1beta")]


def test_import_rejects_a_file_that_is_not_hgnc(tmp_path: Path) -> None:
    other = tmp_path / "genes.csv"
    other.write_text("gene,description\nTNF,tumor necrosis factor\n", encoding="utf-8")
    with pytest.raises(QueryFileError, match="not an HGNC complete set") as caught:
        import_hgnc(other, tmp_path / "vocab" / "hgnc.tsv")
    assert caught.value.line == 1


@pytest.mark.parametrize(("alias", "ambiguous"), [
    ("ER", True), ("Era", True), ("delta", True), ("Protease", True), ("beta2", True), ("E2", True),
    ("P19", True), ("ESRA", False), ("p53", False), ("TNF-alpha", False), ("IL1beta", False), ("CGRP", False),
])
def test_ambiguous_alias_shapes(alias: str, ambiguous: bool) -> None:
    assert ambiguous_alias(alias) is ambiguous


COMPLETE_EXCERPT = Path(__file__).parent / "fixtures" / "vocab" / "hgnc_complete_set_excerpt.txt"
CUSTOM_EXCERPT = Path(__file__).parent / "fixtures" / "vocab" / "hgnc_custom_download_excerpt.tsv"


def test_import_reads_the_real_complete_set_columns(tmp_path: Path) -> None:
    folder = tmp_path / "vocab"
    assert import_hgnc(COMPLETE_EXCERPT, folder / "hgnc.tsv") == 3  # A1BG, A1CF, AARS1
    vocab = load_vocabulary(folder)
    assert vocab.tags() == ["A1BG", "A1CF", "AARS1"]  # no antisense RNA, no pseudogene AACSP1
    assert vocab.ncbi_gene == {"A1BG": "1", "A1CF": "29974", "AARS1": "16"}
    terms = {(t.tag, t.phrase, t.role) for t in vocab.terms}
    assert ("AARS1", "AARS", "previous") in terms and ("AARS1", "alanyl-tRNA synthetase 1", "name") in terms
    assert ("AARS1", "alanine tRNA ligase 1, cytoplasmic", "name") in terms
    assert not any(t.curated for t in vocab.terms)


def test_locus_groups_are_imported_when_asked(tmp_path: Path) -> None:
    dest = tmp_path / "vocab" / "hgnc.tsv"
    assert import_hgnc(COMPLETE_EXCERPT, dest, locus_groups=frozenset({"non-coding RNA"})) == 2
    assert load_vocabulary(dest.parent).tags() == ["A1BG-AS1", "AASDH-DT"]
    assert import_hgnc(COMPLETE_EXCERPT, dest, locus_groups=frozenset(LOCUS_GROUPS)) == 6


def test_import_reads_a_custom_download_and_leaves_pseudogenes_out(tmp_path: Path) -> None:
    folder = tmp_path / "vocab"
    import_hgnc(CUSTOM_EXCERPT, folder / "hgnc.tsv")
    vocab = load_vocabulary(folder)
    p16 = {t.tag for t in vocab.terms if t.phrase == "p16"}
    assert p16 == {"CDKN2A"}  # not the histone pseudogene H3P10
    assert "A1BG-AS1" not in vocab.tags() and vocab.ncbi_gene["TNF"] == "7124"
    assert {t.phrase for t in vocab.terms if t.tag == "MAPK1"} >= {"ERK", "ERK2", "PRKM1", "mitogen-activated protein kinase 1"}


def test_an_unknown_locus_group_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    dest = tmp_path / "vocab" / "hgnc.tsv"
    with pytest.raises(QueryFileError, match="unknown locus group protein coding"):
        import_hgnc(COMPLETE_EXCERPT, dest, locus_groups=frozenset({"protein coding"}))
    assert not dest.exists()


def test_cli_import_takes_locus_groups(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from litwatch.cli.app import main

    out = tmp_path / "hgnc.tsv"
    result = CliRunner().invoke(main, ["vocab", "import-hgnc", str(COMPLETE_EXCERPT), "-o", str(out), "--all"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote 6 genes to {out}")
    result = CliRunner().invoke(main, ["vocab", "import-hgnc", str(COMPLETE_EXCERPT), "-o", str(out),
                                       "--locus-group", "pseudogene"])
    assert result.output.startswith(f"wrote 1 genes to {out}")
