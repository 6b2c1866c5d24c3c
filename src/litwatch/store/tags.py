"""Tags in the database: saving a paper's tags, and re-tagging the whole store after a vocabulary edit.

Tagging itself (``tagging.py``) is pure; this module is where its results meet the store. A paper's
tags are replaced as a whole, so re-tagging is idempotent and a tag the vocabulary no longer
produces disappears.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.records import (
    AbstractSection,
    Chemical,
    Keyword,
    MeshHeading,
    PaperRecord,
)
from litwatch.store import models
from litwatch.store.engine import in_chunks
from litwatch.tagging.papers import TaggablePaper, load_tagger, tags_by_pmid
from litwatch.tagging.tagger import Tag, Tagger

__all__ = ["load_tagger", "retag_all", "save_tags", "tag_changed", "tag_records"]

paper_tags = models.table(models.PaperTag)
papers = models.table(models.Paper)


def save_tags(conn: Connection, tags_by_pmid: Mapping[int, Sequence[Tag]]) -> int:
    """Replace the tags of these papers; returns the number of tag rows written."""
    pmids = list(tags_by_pmid)
    for chunk in in_chunks(pmids):
        conn.execute(paper_tags.delete().where(paper_tags.c.paper_pmid.in_(chunk)))
    rows = [
        {
            "paper_pmid": pmid,
            "tag": tag.tag,
            "source": tag.source,
            "kind": tag.kind,
            "matched_text": tag.text,
            "vocab_version": tag.vocab_version,
        }
        for pmid, tags in tags_by_pmid.items()
        for tag in {(t.tag, t.source): t for t in tags}.values()
    ]
    if rows:
        conn.execute(paper_tags.insert(), rows)
    return len(rows)


def tag_records(conn: Connection, tagger: Tagger, records: Sequence[PaperRecord]) -> int:
    """Tag these records and store their tags, replacing what they had."""
    return save_tags(conn, tags_by_pmid(records, tagger))


def tag_changed(
    conn: Connection,
    records: Sequence[TaggablePaper],
    changed_pmids: Iterable[int],
    *,
    tagger: Tagger | None = None,
    found: Mapping[int, list[Tag]] | None = None,
) -> int:
    """After a save: replace the tags of the records it stored new or changed (``changed_pmids``),
    with the tags the parser workers ``found`` for them or ``tagger``'s (the hook ingest and
    `litwatch run` use). With neither, tagging is off and stored tags are left as they are."""
    if tagger is None and found is None:
        return 0
    changed = set(changed_pmids)
    return save_tags(conn, tags_by_pmid([r for r in records if r.pmid in changed], tagger, found))


def _stored_records(conn: Connection, pmids: Sequence[int]) -> Iterator[PaperRecord]:
    """Rebuild, from the store, the parts of each paper that tagging reads."""
    texts: dict[str, dict[int, list[str]]] = {k: defaultdict(list) for k in ("keyword", "mesh", "chemical", "gene")}
    queries = {
        "keyword": sa.text("SELECT paper_pmid, keyword FROM keywords WHERE paper_pmid IN :p ORDER BY paper_pmid, position"),
        "mesh": sa.text("SELECT paper_pmid, descriptor_name FROM mesh_headings WHERE paper_pmid IN :p ORDER BY paper_pmid, position"),
        "chemical": sa.text("SELECT paper_pmid, name FROM chemicals WHERE paper_pmid IN :p ORDER BY paper_pmid, position"),
        "gene": sa.text("SELECT paper_pmid, symbol FROM gene_symbols WHERE paper_pmid IN :p"),
    }
    for kind, query in queries.items():
        bound = query.bindparams(sa.bindparam("p", expanding=True))
        for pmid, value in conn.execute(bound, {"p": list(pmids)}):
            texts[kind][pmid].append(value)
    rows = conn.execute(
        sa.select(papers.c.pmid, papers.c.title, papers.c.abstract).where(papers.c.pmid.in_(pmids))
    )
    for pmid, title, abstract in rows:
        record = PaperRecord(pmid=pmid, title=title or "")
        record.abstract_sections = [AbstractSection(None, abstract)] if abstract else []
        record.keywords = [Keyword(k) for k in texts["keyword"][pmid]]
        record.mesh = [MeshHeading(None, m) for m in texts["mesh"][pmid]]
        record.chemicals = [Chemical(None, c) for c in texts["chemical"][pmid]]
        record.gene_symbols = texts["gene"][pmid]
        yield record


def retag_all(
    engine: Engine,
    tagger: Tagger,
    *,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Re-tag every paper in batches, one transaction each; returns (papers, tag rows)."""
    with engine.connect() as conn:
        all_pmids = list(conn.execute(sa.select(papers.c.pmid).order_by(papers.c.pmid)).scalars())
    total_tags = 0
    for start in range(0, len(all_pmids), batch_size):
        chunk = all_pmids[start : start + batch_size]
        with engine.begin() as conn:
            total_tags += tag_records(conn, tagger, list(_stored_records(conn, chunk)))
        if progress is not None:
            progress(len(chunk))
    return len(all_pmids), total_tags
