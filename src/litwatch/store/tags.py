"""Tags in the database: saving a paper's tags, and re-tagging the whole store after a vocabulary edit.

Tagging itself (``tagging.py``) is pure; this module is where its results meet the store. A paper's
dictionary tags are replaced as a whole, so re-tagging is idempotent and a tag the vocabulary no
longer produces disappears; its PubTator3 tags (``pipeline/pubtator.py``) are replaced only by
PubTator3's, and are the paper's gene tags in its title and abstract once it has them.
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

__all__ = ["annotated_pmids", "load_tagger", "retag_all", "save_pubtator_tags", "save_tags", "stored_tags",
           "tag_changed", "tag_records"]

PUBTATOR3 = "pubtator3"
paper_tags = models.table(models.PaperTag)
papers = models.table(models.Paper)
pubtator_papers = models.table(models.PubtatorPaper)


FIELDS_ANNOTATED = ("title", "abstract")  # what PubTator3 reads: its gene tags replace the dictionary's there


def _row(pmid: int, tag: Tag) -> dict[str, object]:
    return {
        "paper_pmid": pmid, "tag": tag.tag, "source": tag.source, "kind": tag.kind, "matched_text": tag.text,
        "vocab_version": tag.vocab_version, "origin": tag.origin, "identifier": tag.identifier,
        "span_start": tag.start, "span_end": tag.end, "species": tag.species,
    }


def _stored_keys(conn: Connection, pmids: Sequence[int], origin: str) -> set[tuple[int, str, str]]:
    """(pmid, tag, source) of the stored tags of ``origin`` these papers have."""
    keys: set[tuple[int, str, str]] = set()
    for chunk in in_chunks(pmids):
        keys.update((pmid, tag, source) for pmid, tag, source in conn.execute(
            sa.select(paper_tags.c.paper_pmid, paper_tags.c.tag, paper_tags.c.source)
            .where(paper_tags.c.paper_pmid.in_(chunk), paper_tags.c.origin == origin)
        ))
    return keys


def annotated_pmids(conn: Connection, pmids: Sequence[int]) -> set[int]:
    """Which of these papers PubTator3 has annotated (their gene tags in title and abstract are its)."""
    found: set[int] = set()
    for chunk in in_chunks(pmids):
        found.update(conn.execute(
            sa.select(pubtator_papers.c.paper_pmid)
            .where(pubtator_papers.c.paper_pmid.in_(chunk), pubtator_papers.c.annotated_at.is_not(None))
        ).scalars())
    return found


def save_tags(conn: Connection, tags_by_pmid: Mapping[int, Sequence[Tag]]) -> int:
    """Replace the dictionary tags of these papers; returns the number of tag rows written.

    Their PubTator3 tags stay (a re-tag after a vocabulary edit keeps them): a dictionary tag
    they already hold (same tag and field) is not written, nor, in a paper PubTator3 annotated,
    a dictionary gene tag from the title or abstract.
    """
    pmids = list(tags_by_pmid)
    for chunk in in_chunks(pmids):
        conn.execute(paper_tags.delete().where(paper_tags.c.paper_pmid.in_(chunk),
                                               paper_tags.c.origin != PUBTATOR3))
    kept = _stored_keys(conn, pmids, PUBTATOR3)
    annotated = annotated_pmids(conn, pmids)
    rows = [
        _row(pmid, tag)
        for pmid, tags in tags_by_pmid.items()
        for tag in {(t.tag, t.source): t for t in tags}.values()
        if (pmid, tag.tag, tag.source) not in kept
        and not (pmid in annotated and tag.kind == "gene" and tag.source in FIELDS_ANNOTATED)
    ]
    if rows:
        conn.execute(paper_tags.insert(), rows)
    return len(rows)


def save_pubtator_tags(conn: Connection, tags_by_pmid: Mapping[int, Sequence[Tag]]) -> int:
    """Replace the PubTator3 tags of these papers (annotated now); returns the rows written.

    The dictionary's gene tags from their title and abstract go (PubTator3 is the first gene
    source there), and so does any dictionary tag a PubTator3 tag now holds (same tag and field).
    """
    pmids = list(tags_by_pmid)
    for chunk in in_chunks(pmids):
        conn.execute(paper_tags.delete().where(paper_tags.c.paper_pmid.in_(chunk), sa.or_(
            paper_tags.c.origin == PUBTATOR3,
            sa.and_(paper_tags.c.kind == "gene", paper_tags.c.source.in_(FIELDS_ANNOTATED)),
        )))
    fresh = {(pmid, t.tag, t.source): t for pmid, tags in tags_by_pmid.items() for t in reversed(tags)}
    held = _stored_keys(conn, pmids, "dictionary") & set(fresh)
    for pmid, tag, source in held:
        conn.execute(paper_tags.delete().where(paper_tags.c.paper_pmid == pmid, paper_tags.c.tag == tag,
                                               paper_tags.c.source == source))
    rows = [_row(pmid, t) for (pmid, _tag, _source), t in fresh.items()]
    if rows:
        conn.execute(paper_tags.insert(), rows)
    return len(rows)


def stored_tags(conn: Connection, pmid: int) -> list[dict[str, object]]:
    """A stored paper's tags with their field, origin, identifier and span, by kind and tag."""
    query = (sa.select(paper_tags.c.tag, paper_tags.c.kind, paper_tags.c.source, paper_tags.c.origin,
                       paper_tags.c.identifier, paper_tags.c.span_start, paper_tags.c.span_end,
                       paper_tags.c.species, paper_tags.c.matched_text)
             .where(paper_tags.c.paper_pmid == pmid)
             .order_by(paper_tags.c.kind, paper_tags.c.tag, paper_tags.c.source))
    return [dict(row._mapping) for row in conn.execute(query)]


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
