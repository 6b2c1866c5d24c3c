"""Write PubMed-baseline-sized test files from every real record the project has, under fresh ids.

PubMed's annual baseline files hold about 30,000 records each; real ones cannot be downloaded here,
so these are built from every recorded record: all of ``tests/fixtures/pubmed`` and, when present,
``../shared/fixtures/pubmed`` (single-record efetch answers with MeSH, chemicals and long reference
lists, a book, a retraction notice, and an old ``MedlineCitationSet`` file), each distinct PMID once.
The copies are drawn in a shuffled order; each gets a new unique PMID, and its DOI and PMCID are
suffixed so deduplication by DOI does not merge them. References and comments keep their real ids.

Records keep their file kind: ``PubmedArticle`` and ``PubmedBookArticle`` records go to
``articles.xml`` (a ``PubmedArticleSet``), bare ``MedlineCitation`` records to ``citations.xml``
(a ``MedlineCitationSet``, as MEDLINE shipped them until 2017), in the proportion the fixtures hold
them, so ``litwatch ingest FOLDER`` meets the real mix.

    python bench/make_baseline.py FOLDER [n] [seed] [--gzip]
"""

from __future__ import annotations

import gzip
import random
import sys
from collections import Counter
from pathlib import Path
from typing import BinaryIO, cast

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (ROOT / "tests/fixtures/pubmed", ROOT.parent.parent / "shared/fixtures/pubmed",
           Path("/work/shared/fixtures/pubmed"))
FIRST_PMID = 50_000_001
DOCTYPE = b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd"'
SETS = {  # file kind: (what opens the file, what closes it)
    "articles": (b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
                 + DOCTYPE + b">\n<PubmedArticleSet>\n", b"</PubmedArticleSet>\n"),
    "citations": (b"<MedlineCitationSet>\n", b"</MedlineCitationSet>\n"),
}
KINDS = {"PubmedArticle": "articles", "PubmedBookArticle": "articles", "MedlineCitation": "citations"}
MARK = "\ue000"  # a private-use character: never in real records
PMID, DOI, PMC = f"{MARK}PMID{MARK}", f"{MARK}DOI{MARK}", f"{MARK}PMC{MARK}"


def source_files() -> list[Path]:
    """Every PubMed XML fixture file, the project's own and the shared ones (when present)."""
    files = [p for folder in dict.fromkeys(s.resolve() for s in SOURCES if s.is_dir())
             for p in sorted(folder.rglob("*.xml*")) if p.suffix in (".xml", ".gz")]
    if not files:
        raise FileNotFoundError(f"no PubMed XML fixtures in any of {[str(s) for s in SOURCES]}")
    return files


def _relabel(record: etree._Element) -> str | None:
    """Put the placeholders in for the record's own PMID, DOI and PMCID; return its DOI."""
    doi = None
    own = record if record.tag == "MedlineCitation" else record[0]  # MedlineCitation or BookDocument
    for el in own.iterfind("PMID"):
        el.text = PMID
    for el in own.iterfind(".//ELocationID[@EIdType='doi']"):
        doi, el.text = el.text, DOI
    for ids in (*record.iterfind("PubmedData/ArticleIdList"), *record.iterfind("PubmedBookData/ArticleIdList"),
                *own.iterfind("ArticleIdList")):
        for el in ids.iterfind("ArticleId"):
            kind = el.get("IdType")
            if kind == "pubmed":
                el.text = PMID
            elif kind == "doi":
                doi, el.text = el.text, DOI
            elif kind == "pmc":
                el.text = PMC
    return doi


def templates() -> list[tuple[str, list[str], str | None]]:
    """Each distinct real record as (file kind, text split at its own PMID/DOI/PMCID, its DOI)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    out, seen = [], set()
    for path in source_files():
        opened = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
        with opened as handle:
            root = etree.parse(cast(BinaryIO, handle), parser).getroot()
        for record in root:
            if record.tag not in KINDS:
                continue
            pmid = record.findtext("MedlineCitation/PMID") or record.findtext("BookDocument/PMID") \
                or record.findtext("PMID")
            if pmid in seen:
                continue
            seen.add(pmid)
            doi = _relabel(record)
            record.tail = "\n"
            out.append((KINDS[record.tag], etree.tostring(record, encoding="unicode").split(MARK), doi))
    return out


def mix() -> Counter[str]:
    """How many records of each element kind the fixtures hold (each distinct PMID once)."""
    counts: Counter[str] = Counter()
    for _kind, parts, _doi in templates():
        counts[parts[0].lstrip().split(">", 1)[0].split()[0].lstrip("<")] += 1
    return counts


def build(folder: Path, n: int = 30000, seed: int = 0, *, gz: bool = False) -> Path:
    """Write ``n`` records into ``folder`` (articles.xml and citations.xml, .gz with ``gz``); return it."""
    pieces = templates()
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".xml.gz" if gz else ".xml"
    outs: dict[str, BinaryIO] = {}
    order: list[int] = []
    try:
        for i in range(n):
            if not order:
                order = list(range(len(pieces)))
                rng.shuffle(order)
            kind, parts, doi = pieces[order.pop()]
            if kind not in outs:
                path = folder / (kind + suffix)
                outs[kind] = cast(BinaryIO, gzip.open(path, "wb", compresslevel=6) if gz else path.open("wb"))
                outs[kind].write(SETS[kind][0])
            pmid = str(FIRST_PMID + i)
            values = {"PMID": pmid, "DOI": f"{doi}.{pmid}", "PMC": f"PMC{pmid}"}
            # split() on the marker leaves the placeholder names at the odd positions.
            outs[kind].write("".join(values[p] if k % 2 else p for k, p in enumerate(parts)).encode("utf-8"))
    finally:
        for kind, out in outs.items():
            out.write(SETS[kind][1])
            out.close()
    return folder


def files(folder: Path) -> list[Path]:
    """The record files ``build`` wrote into ``folder``."""
    return sorted(p for p in folder.iterdir() if p.name.startswith(tuple(SETS)))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--gzip"]
    target = Path(args[0]) if args else Path("baseline")
    count = int(args[1]) if len(args) > 1 else 30000
    built = build(target, count, int(args[2]) if len(args) > 2 else 0, gz="--gzip" in sys.argv)
    print("\n".join(f"{p} {p.stat().st_size / 1e6:.1f} MB" for p in files(built)))
