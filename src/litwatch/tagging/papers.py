"""Which tags a paper gets: the one place ingest, `litwatch run`, re-tagging and the parser
worker processes ask.

A tagger is built from a vocabulary folder (none, and tagging is off); a paper is tagged from its
title, abstract, keywords, MeSH headings, chemicals and gene symbols (``Tagger.tag_record``), one
tag per (tag, source). Where the tags are computed differs (a worker process for a large file,
the writer otherwise), what they are does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from litwatch.files.vocab import load_vocabulary
from litwatch.records import PaperRecord
from litwatch.tagging.tagger import Tag, Tagger


class TaggablePaper(Protocol):
    """A parsed record, or the rows prepared from one (``store.rows.Prepared``)."""

    @property
    def pmid(self) -> int: ...


def load_tagger(vocab_dir: Path) -> Tagger | None:
    """The tagger for a vocabulary folder, or None when the folder does not exist (tagging off)."""
    if not vocab_dir.is_dir():
        return None
    return Tagger(load_vocabulary(vocab_dir))


def tag_paper(tagger: Tagger | None, record: PaperRecord) -> list[Tag]:
    """The tags of one paper, in the order found; none when tagging is off."""
    return tagger.tag_record(record) if tagger is not None else []


def tags_by_pmid(
    records: Iterable[TaggablePaper], tagger: Tagger | None, found: Mapping[int, list[Tag]] | None = None
) -> dict[int, list[Tag]]:
    """The tags of each paper, keyed by PMID (a later copy of a PMID wins, as it does in the store).

    ``found`` holds tags computed already (by the parser workers), keyed by ``id(record)``;
    records without them are tagged here with ``tagger``.
    """
    tags: dict[int, list[Tag]] = {}
    for record in records:
        if found is not None and id(record) in found:
            tags[record.pmid] = found[id(record)]
        else:
            tags[record.pmid] = tag_paper(tagger, record) if isinstance(record, PaperRecord) else []
    return tags
