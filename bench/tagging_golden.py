"""Record what the tagger says about real texts, so a faster tagger can be held to the same answers.

Writes ``tests/fixtures/tagging/golden.json.gz``, which ``tests/test_tagging_golden.py`` compares
the tagger with: every candidate and its fate (``Tagger.explain``) on each real PubMed abstract of
the fixtures (shared ``pubmed/metapub`` and ``tests/fixtures/pubmed``) and each sentence of the
BioCreative II test split, and the tags (``Tagger.tag_record``) of every PaperRecord of
``tests/fixtures/pubmed``. The vocabulary is the shipped folder plus the rows of a real HGNC
download (``bench/tagging_quality.py`` says where to get one) for the genes that are candidates
anywhere in those texts, written as ``tests/fixtures/tagging/hgnc_subset.tsv``: the texts meet
the same candidates as with the full download, in a file small enough to commit.

Run it only when a change to the tagger is MEANT to change its answers; review the diff.

    PYTHONPATH=src:bench python bench/tagging_golden.py --hgnc FILE
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tag_quality import CORPUS, load_split
from tag_speed import abstracts

from litwatch.files.vocab import load_vocabulary
from litwatch.records import PaperRecord
from litwatch.sources.pubmed_xml.scan import parse_bytes
from litwatch.tagging.hgnc import import_hgnc
from litwatch.tagging.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tagging"


def fixture_records(folder: Path = ROOT / "tests" / "fixtures" / "pubmed") -> Iterator[tuple[str, PaperRecord]]:
    """Every PaperRecord of the PubMed XML fixtures, with its file's path under ``folder``."""
    for path in sorted(folder.rglob("*.xml*")):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for record in parse_bytes(data, name=path.name):
            if isinstance(record, PaperRecord):
                yield path.relative_to(folder).as_posix(), record


def build(vocab_dir: Path, hgnc: Path) -> Tagger:
    folder = vocab_dir / "vocab"
    shutil.copytree(ROOT / "queries" / "vocab", folder)
    import_hgnc(hgnc, folder / "hgnc.tsv")
    return Tagger(load_vocabulary(folder))


def explained(tagger: Tagger, text: str) -> list[list[object]]:
    return [[e.match.tag, e.match.kind, e.match.start, e.match.end, e.status] for e in tagger.explain(text)]


def record_tags(tagger: Tagger, record: PaperRecord) -> list[list[str]]:
    return [[t.tag, t.kind, t.text, t.source] for t in tagger.tag_record(record)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hgnc", type=Path, required=True, help="an HGNC custom download (hgnc_entries.tsv)")
    args = parser.parse_args()
    texts = [(f"abstract {i}", t) for i, t in enumerate(abstracts())]
    texts += [(f"BC2GM {sid}", s) for sid, s in load_split(CORPUS / "test", "test").sentences.items()]
    records = list(fixture_records())
    record_texts = [t for _f, r in records for t in (r.title, r.abstract, *(k.text for k in r.keywords),
                                                      *(m.name for m in r.mesh), *(c.name for c in r.chemicals),
                                                      *r.gene_symbols)]
    with tempfile.TemporaryDirectory() as tmp:
        full = build(Path(tmp), args.hgnc)
        wanted = {e.match.tag for text in [t for _i, t in texts] + record_texts for e in full.explain(text)}
    OUT.mkdir(parents=True, exist_ok=True)
    lines = args.hgnc.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [lines[0]] + [line for line in lines[1:] if line.split("\t", 2)[1] in wanted]
    (OUT / "hgnc_subset.tsv").write_text("".join(kept), encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        tagger = build(Path(tmp), OUT / "hgnc_subset.tsv")
        golden = {
            "texts": [[tid, text, explained(tagger, text)] for tid, text in texts],
            "records": [[f, r.pmid, record_tags(tagger, r)] for f, r in records],
        }
    body = json.dumps(golden, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    (OUT / "golden.json.gz").write_bytes(gzip.compress(body, mtime=0))
    print(f"{len(kept) - 1} HGNC rows, {len(texts)} texts, {len(records)} records")


if __name__ == "__main__":
    main()
