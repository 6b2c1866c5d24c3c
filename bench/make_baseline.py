"""Write a PubMed-baseline-sized test file: n real records copied under fresh PMIDs and DOIs.

PubMed's annual baseline files hold about 30,000 records each. Real ones cannot be downloaded here,
so this builds one from the recorded single-record efetch answers (metapub fixtures), cycling through
them in a shuffled order. Each copy gets a new unique PMID, and its DOI and PMCID are suffixed so
that deduplication by DOI does not merge the copies. References and comments keep their real ids.

    python bench/make_baseline.py /tmp/baseline.xml [n] [seed]      (.xml.gz to compress)
"""

from __future__ import annotations

import gzip
import random
import sys
from pathlib import Path
from typing import BinaryIO, cast

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
# The project's own copy first, so the file is the same wherever it is built.
SOURCES = (ROOT / "tests/fixtures/pubmed/metapub", ROOT.parent / "shared/fixtures/pubmed/metapub")
FIRST_PMID = 50_000_001
HEADER = (
    b'<?xml version="1.0" ?>\n'
    b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    b"<PubmedArticleSet>\n"
)
MARK = "\ue000"  # a private-use character: never in real records
PMID, DOI, PMC = f"{MARK}PMID{MARK}", f"{MARK}DOI{MARK}", f"{MARK}PMC{MARK}"


def source_dir() -> Path:
    """The project's copy of the metapub records, else the shared fixture folder."""
    for folder in SOURCES:
        if any(folder.glob("*.xml")):
            return folder
    raise FileNotFoundError(f"no metapub fixture records in any of {[str(s) for s in SOURCES]}")


def templates(folder: Path) -> list[tuple[list[str], str | None]]:
    """Each real PubmedArticle as text split at its own PMID/DOI/PMCID, with the original DOI."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)
    out = []
    for path in sorted(folder.glob("*.xml")):
        for article in etree.parse(str(path), parser).getroot().iter("PubmedArticle"):
            doi = None
            for el in article.iterfind("MedlineCitation/PMID"):
                el.text = PMID
            for el in article.iterfind("MedlineCitation/Article/ELocationID[@EIdType='doi']"):
                doi, el.text = el.text, DOI
            for el in article.iterfind("PubmedData/ArticleIdList/ArticleId"):
                kind = el.get("IdType")
                if kind == "pubmed":
                    el.text = PMID
                elif kind == "doi":
                    doi, el.text = el.text, DOI
                elif kind == "pmc":
                    el.text = PMC
            article.tail = "\n"
            text = etree.tostring(article, encoding="unicode")
            out.append((text.split(MARK), doi))
    if not out:
        raise FileNotFoundError(f"no PubmedArticle in {folder}")
    return out


def _create(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.open(path, "wb"))
    return path.open("wb")


def build(path: Path, n: int = 30000, seed: int = 0) -> Path:
    """Write ``n`` records to ``path`` (gzipped if it ends in .gz), streaming; return the path."""
    pieces = templates(source_dir())
    rng = random.Random(seed)
    order: list[int] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    with _create(path) as out:
        out.write(HEADER)
        for i in range(n):
            if not order:
                order = list(range(len(pieces)))
                rng.shuffle(order)
            parts, doi = pieces[order.pop()]
            pmid = str(FIRST_PMID + i)
            values = {"PMID": pmid, "DOI": f"{doi}.{pmid}", "PMC": f"PMC{pmid}"}
            # split() on the marker leaves the placeholder names at the odd positions.
            text = "".join(values[p] if k % 2 else p for k, p in enumerate(parts))
            out.write(text.encode("utf-8"))
        out.write(b"</PubmedArticleSet>\n")
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("baseline.xml")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 30000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    print(build(target, count, seed))
