"""The PubTator3 step of a run: gene and disease annotations for the papers it stores.

PubTator3 is the first gene source. After a query's PubMed part (and its preprints), the step
asks PubTator3 (``sources/pubtator.py``: 100 PMIDs a request, at most 3 a second) about every
stored PubMed paper it has not annotated yet that was first seen (or revised) less than ``MAX_AGE`` ago and
was not asked about in the last ``ASK_AGAIN`` (so several queries in one run ask once).
PubTator3 annotates new papers within about a week: a paper it lacks keeps the dictionary's tags
and is asked about again by later runs; ``litwatch tag --pubtator`` asks about every paper still
lacking annotations, whatever its age.

An annotated paper's Gene mentions become gene tags of origin ``pubtator3`` with their HGNC
symbol (human genes, and other species' genes whose human orthologue the paper names too), or
PubTator's own symbol and species; its Disease mentions become condition tags when the
vocabulary's condition matches the MeSH heading (or the text) PubTator normalised them to. Each
keeps its identifier (``NCBIGene:3552``, ``MESH:D008881``) and the span of its first mention in
its field. ``pubtator_papers`` records who was asked and when.

PubTator3 off (``LITWATCH_PUBTATOR=off``) asks nothing; PubTator3 unreachable or failing is one
warning on the receipt: the run still succeeds with the dictionary's tags, nothing is lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from litwatch.errors import PubtatorError
from litwatch.pipeline.run import Receipt
from litwatch.sources.pubtator import HUMAN, Annotations, Export, gene_tags, symbol_index
from litwatch.store import models
from litwatch.store import tags as tag_store
from litwatch.store.engine import in_chunks
from litwatch.tagging.tagger import Tag, Tagger

MAX_AGE = dt.timedelta(days=30)  # a paper PubTator3 still lacks a month after it arrived is asked about on demand only
ASK_AGAIN = dt.timedelta(hours=12)
ORIGIN = tag_store.PUBTATOR3
papers = models.table(models.Paper)
asked = models.table(models.PubtatorPaper)


class Pubtator(Protocol):
    """What the step needs of ``sources.pubtator.PubtatorClient`` (a seam for tests)."""

    @property
    def enabled(self) -> bool: ...

    @property
    def requests_made(self) -> int: ...

    def export(self, pmids: Sequence[int]) -> Export: ...


@dataclass
class PubtatorReceipt:
    """What one PubTator3 step did."""

    asked: int = 0
    annotated: int = 0
    missing: int = 0
    requests: int = 0
    tags: int = 0
    off: bool = False
    warning: str | None = None  # PubTator3 failed: the dictionary's tags stand

    @property
    def quiet(self) -> bool:
        """Nothing worth a line in the run's report: PubTator3 off, or nothing to ask about."""
        return self.off or (self.asked == 0 and self.warning is None)

    def line(self) -> str:
        """One line for the run's report."""
        if self.off:
            return "PubTator3 off (LITWATCH_PUBTATOR=off): dictionary tags only"
        if self.warning is not None:
            return f"warning: {self.warning}"
        return (f"PubTator3: asked {self.asked}, annotated {self.annotated}, not yet {self.missing}, "
                f"{self.requests} request{'' if self.requests == 1 else 's'}")


def pending(conn: Connection, now: dt.datetime, *, max_age: dt.timedelta | None = MAX_AGE,
            ask_again: dt.timedelta = ASK_AGAIN) -> list[int]:
    """Stored PubMed papers PubTator3 has not annotated, first seen or revised within ``max_age``
    (None: any age) and not asked about within ``ask_again``, by PMID."""
    query = (
        sa.select(papers.c.pmid)
        .outerjoin(asked, asked.c.paper_pmid == papers.c.pmid)
        .where(papers.c.pmid > 0, papers.c.deleted_at.is_(None), asked.c.annotated_at.is_(None),
               sa.or_(asked.c.last_asked_at.is_(None), asked.c.last_asked_at <= now - ask_again))
        .order_by(papers.c.pmid)
    )
    if max_age is not None:  # updated_at: when first seen, or last revised (a new text lost its annotations)
        query = query.where(papers.c.updated_at >= now - max_age)
    return list(conn.execute(query).scalars())


_symbol_maps: tuple[object, dict[int, str], dict[str, int]] | None = None  # the last vocabulary's


def _symbols(tagger: Tagger | None) -> tuple[dict[int, str], dict[str, int]]:
    """The vocabulary's ``{NCBI Gene ID: HGNC symbol}`` and ``{SYMBOL: NCBI Gene ID}``, made once
    per vocabulary (a full HGNC import has some 19,000)."""
    global _symbol_maps
    if tagger is None:
        return {}, {}
    if _symbol_maps is None or _symbol_maps[0] is not tagger.vocab:
        symbols = {int(gene_id): symbol for symbol, gene_id in tagger.vocab.ncbi_gene.items() if str(gene_id).isdigit()}
        _symbol_maps = (tagger.vocab, symbols, symbol_index(symbols))
    return _symbol_maps[1], _symbol_maps[2]


def annotation_tags(annotations: Annotations, tagger: Tagger | None, version: str) -> list[Tag]:
    """The ``pubtator3`` tags of one annotated paper: its genes, and conditions of the vocabulary."""
    symbols, by_symbol = _symbols(tagger)
    tags: list[Tag] = []
    for gene in gene_tags(annotations, symbols, by_symbol=by_symbol):
        name = gene.symbol or gene.name or gene.identifier
        species = None if gene.symbol or gene.species == HUMAN else gene.species
        tags.append(Tag(name, "gene", gene.text, gene.passage, version, ORIGIN, gene.identifier,
                        gene.start - gene.passage_offset, gene.end - gene.passage_offset, species))
    for disease in annotations.diseases:
        found = {m.tag for text in (disease.name or "", disease.text) for m in (tagger.match(text) if tagger else ())
                 if m.kind == "condition"}
        for condition in sorted(found):
            tags.append(Tag(condition, "condition", disease.text, disease.passage, version, ORIGIN,
                            disease.identifier, disease.start - disease.passage_offset,
                            disease.end - disease.passage_offset))
    first: dict[tuple[str, str], Tag] = {}
    for tag in tags:
        first.setdefault((tag.tag, tag.source), tag)
    return list(first.values())


def annotate(engine: Engine, client: Pubtator | None, tagger: Tagger | None, *, now: dt.datetime,
             max_age: dt.timedelta | None = MAX_AGE, ask_again: dt.timedelta = ASK_AGAIN,
             batch: int = 1000, strict: bool = False) -> PubtatorReceipt:
    """Ask PubTator3 about the pending papers (see :func:`pending`) and store what it annotated.

    PubTator3 failing is a warning on the receipt (what was stored before stays stored), or with
    ``strict`` (``litwatch tag --pubtator``) the PubtatorError, raised once the receipt is complete.
    """
    receipt = PubtatorReceipt(off=client is None or not client.enabled)
    if client is None or receipt.off:
        return receipt
    with engine.connect() as conn:
        todo = pending(conn, now, max_age=max_age, ask_again=ask_again)
    before = client.requests_made
    try:
        for first in range(0, len(todo), batch):
            chunk = todo[first : first + batch]
            export = client.export(chunk)
            with engine.begin() as conn:
                receipt.tags += store_annotations(conn, chunk, export.documents, tagger, now)
            receipt.asked += len(chunk)
            receipt.annotated += len(export.documents)
            receipt.missing += len(export.missing)
    except PubtatorError as exc:
        if strict:
            raise
        receipt.warning = f"{exc} (papers keep their dictionary tags; the next run asks again)"
    finally:
        receipt.requests = client.requests_made - before
    return receipt


def store_annotations(conn: Connection, pmids: Sequence[int], documents: Mapping[int, Annotations],
                      tagger: Tagger | None, now: dt.datetime) -> int:
    """Store PubTator3's answer about ``pmids`` (its ``documents``, by PMID): who was asked and
    which were annotated, and the annotated papers' ``pubtator3`` tags; returns the tag rows written."""
    version = tagger.version if tagger is not None else ORIGIN
    _record_asked(conn, pmids, set(documents), now)
    return tag_store.save_pubtator_tags(
        conn, {pmid: annotation_tags(doc, tagger, version) for pmid, doc in documents.items()})


def _record_asked(conn: Connection, pmids: Sequence[int], annotated: set[int], now: dt.datetime) -> None:
    """Note that PubTator3 was asked about ``pmids`` now, and which of them it had annotated."""
    seen: set[int] = set()
    for chunk in in_chunks(list(pmids)):
        seen.update(conn.execute(sa.select(asked.c.paper_pmid).where(asked.c.paper_pmid.in_(chunk))).scalars())
    fresh = [{"paper_pmid": p, "first_asked_at": now, "last_asked_at": now, "asks": 1,
              "annotated_at": now if p in annotated else None} for p in pmids if p not in seen]
    if fresh:
        conn.execute(asked.insert(), fresh)
    for chunk in in_chunks([p for p in pmids if p in seen]):
        conn.execute(asked.update().where(asked.c.paper_pmid.in_(chunk))
                     .values(last_asked_at=now, asks=asked.c.asks + 1))
        found = [p for p in chunk if p in annotated]
        if found:
            conn.execute(asked.update().where(asked.c.paper_pmid.in_(found)).values(annotated_at=now))


def after_pubmed(engine: Engine, client: Pubtator | None, receipt: Receipt, *, now: dt.datetime,
                 tagger: Tagger | None) -> None:
    """The hook of a query's run, after its PubMed part (and preprints): annotate what is pending.
    Not for a dry run; a PubTator3 failure is a warning on the run's receipt, never its error."""
    if client is None or receipt.dry_run:
        return
    receipt.pubtator = annotate(engine, client, tagger, now=now)
    if receipt.pubtator.warning is not None:
        receipt.warnings.append(receipt.pubtator.warning)
