"""The tagger gives the recorded answers on real texts: a change meant to make it faster must not
change what a librarian sees (``explain``), which tags fire (``match``) or a paper's tags.

``tests/fixtures/tagging/golden.json.gz`` was written by ``bench/tagging_golden.py`` before the
tagger was made faster: the candidates and their fates on 5,168 real texts (the PubMed fixture
abstracts, the BioCreative II test sentences) and the tags of the 633 PaperRecords of
``tests/fixtures/pubmed``, with the shipped vocabulary plus the 1,621 real HGNC rows
(``hgnc_subset.tsv``) of the genes that are candidates anywhere in them.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

import pytest

from litwatch.files.vocab import load_vocabulary
from litwatch.tagging.hgnc import import_hgnc
from litwatch.tagging.tagger import Tagger

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "fixtures" / "tagging"
sys.path.insert(0, str(ROOT / "bench"))
from tagging_golden import explained, fixture_records, record_tags  # noqa: E402


@pytest.fixture(scope="module")
def golden() -> dict[str, list[list[object]]]:
    data: dict[str, list[list[object]]] = json.loads(gzip.decompress((GOLDEN / "golden.json.gz").read_bytes()))
    return data


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory) -> Tagger:
    folder = tmp_path_factory.mktemp("golden") / "vocab"
    shutil.copytree(ROOT / "queries" / "vocab", folder)
    import_hgnc(GOLDEN / "hgnc_subset.tsv", folder / "hgnc.tsv")
    return Tagger(load_vocabulary(folder))


def test_every_candidate_and_its_fate_are_as_recorded(tagger: Tagger, golden: dict[str, list[list[object]]]) -> None:
    texts = golden["texts"]
    assert len(texts) == 5168
    changed = [(tid, want, got) for tid, text, want in texts if (got := explained(tagger, str(text))) != want]
    assert changed == [], f"{len(changed)} texts explained differently, first: {changed[0]}"


def test_the_tags_that_fire_are_the_tagged_candidates(tagger: Tagger, golden: dict[str, list[list[object]]]) -> None:
    for _tid, text, want in golden["texts"]:
        tagged = [[tag, kind, start, end] for tag, kind, start, end, status in want  # type: ignore[misc]
                  if status == "tagged"]
        assert [[m.tag, m.kind, m.start, m.end] for m in tagger.match(str(text))] == tagged


def test_paper_tags_are_as_recorded(tagger: Tagger, golden: dict[str, list[list[object]]]) -> None:
    want = {(str(f), int(str(pmid))): tags for f, pmid, tags in golden["records"]}
    got = {(f, r.pmid): record_tags(tagger, r) for f, r in fixture_records()}
    assert len(got) == 633
    assert sum(map(len, want.values())) > 600
    assert {k: v for k, v in got.items() if want.get(k) != v} == {}
