"""The PubTator3 client over the one HTTP door (``http.py``), and the reading of its answers.

``PubtatorClient.export`` GETs ``{base}publications/export/biocjson?pmids=ID,...`` for up to 100
PMIDs a request, at most 3 requests/s (PubTator3's own limit, through ``rate_limit.py``), retried
by the one policy (``litwatch.retry``) on 429 (its Retry-After honoured), 5xx, timeouts and
truncated or malformed bodies. A PubTator3 that cannot be reached at all (connection refused, no
such host, a URL that answers 404) fails at once: asking again would not help, the setting is wrong.
PMIDs PubTator3 has not annotated are absent from its answer; they come back in ``Export.missing``,
not as an error.

Answers are read with the ``bioc`` package (``parse_doc``) into BioC documents, and
:func:`read_document` turns one into plain :class:`Annotations` (Gene and Disease mentions with
their identifiers and spans). :func:`gene_tags` maps Gene mentions to HGNC symbols given the
vocabulary's ``{NCBI Gene ID: symbol}``: human IDs directly, other species through their human
orthologue when PubTator gives a HomoloGene group, else kept with their own ID and species.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bioc import BioCDocument
from bioc.biocjson.decoder import parse_doc

from litwatch.config import Settings
from litwatch.errors import PubtatorError
from litwatch.sources.http import (
    Failure,
    HttpClient,
    HttpDoor,
    Session,
    Unreachable,
    base_url_of,
)

__all__ = [
    "Annotations",
    "DiseaseMention",
    "Export",
    "GeneMention",
    "GeneTag",
    "PubtatorClient",
    "answer_documents",
    "gene_tags",
    "read_answer",
    "pmid_text",
    "read_document",
    "symbol_index",
]

log = logging.getLogger(__name__)

BATCH_SIZE = 100  # PMIDs per export request
RATE = 3.0  # requests per second PubTator3 asks its users to stay under
EXPORT = "publications/export/biocjson"
HUMAN = 9606
SOURCE = "pubtator3"
_NOT_FOUND = "could not retrieve publications"  # PubTator3's answer when no PMID asked for is annotated
_SETTING_HINT = "check LITWATCH_PUBTATOR_URL, or set LITWATCH_PUBTATOR=off to run without PubTator3"


# -- what an answer says ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneMention:
    """One Gene annotation: PubTator's NCBI Gene ID(s) for ``text`` at document offsets ``start:end``."""

    gene_ids: tuple[int, ...]
    text: str
    start: int
    end: int
    passage: str  # the passage's type: title, abstract, ...
    species: int | None = None  # NCBI Taxonomy id when PubTator gives one
    homologene: str | None = None  # HomoloGene group, shared by a gene's orthologues
    name: str | None = None  # PubTator's own symbol for the gene, in that species' spelling
    passage_offset: int = 0  # where the passage starts in the document: start - passage_offset is in the field


@dataclass(frozen=True)
class DiseaseMention:
    """One Disease annotation: its identifier (``MESH:D011471``) for ``text`` at ``start:end``."""

    identifier: str
    text: str
    start: int
    end: int
    passage: str
    name: str | None = None  # the MeSH heading PubTator normalised to
    passage_offset: int = 0

    @property
    def mesh_id(self) -> str | None:
        """The MeSH descriptor id (``D011471``), or None for another vocabulary (OMIM)."""
        prefix, _, rest = self.identifier.partition(":")
        return rest if prefix.upper() == "MESH" and rest else None


@dataclass(frozen=True)
class Annotations:
    """What PubTator3 found in one paper's title and abstract."""

    pmid: int
    genes: tuple[GeneMention, ...]
    diseases: tuple[DiseaseMention, ...]


@dataclass
class Export:
    """The answer to :meth:`PubtatorClient.export`: annotated papers and the PMIDs PubTator3 lacks."""

    documents: dict[int, Annotations] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)  # asked for, not annotated by PubTator3 (yet)
    off: bool = False  # LITWATCH_PUBTATOR=off: nothing was asked


@dataclass(frozen=True)
class GeneTag:
    """A gene tag from PubTator3: ``symbol`` is HGNC's, or None when no human gene is known.

    ``gene_id`` and ``species`` are what PubTator named; ``human_gene_id`` is the human gene the
    symbol belongs to (the same ID for a human gene, the orthologue's for another species).
    """

    symbol: str | None
    gene_id: int
    species: int | None
    human_gene_id: int | None
    text: str
    start: int
    end: int
    source: str = SOURCE
    name: str | None = None  # PubTator's symbol for the gene (what a gene without HGNC symbol is tagged as)
    passage: str = "title"
    passage_offset: int = 0

    @property
    def identifier(self) -> str:
        return f"NCBIGene:{self.gene_id}"


# -- reading answers (pure) -------------------------------------------------------------------------


def read_answer(body: bytes) -> list[Annotations]:
    """Every document in an export answer; raises ValueError when the body is not one."""
    return [read_document(item) for item in answer_documents(body)]


def answer_documents(body: bytes) -> list[dict[str, Any]]:
    """The raw BioC JSON documents of an export answer (or a file saved from one); raises
    ValueError when the body is not one.

    The export wraps its documents as ``{"PubTator3": [document, ...]}``; a bare list of
    documents, a single document and a BioC collection (``{"documents": [...]}``) are read too.
    """
    data = json.loads(body)
    if isinstance(data, dict) and "PubTator3" in data:
        items = data["PubTator3"]
    elif isinstance(data, dict) and "documents" in data:
        items = data["documents"]
    elif isinstance(data, dict) and str(data.get("detail", "")).lower().startswith(_NOT_FOUND):
        items = []
    elif isinstance(data, dict) and "passages" in data:
        items = [data]
    else:
        items = data
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError(f"not a PubTator3 export: {body[:80]!r}")
    return items


def pmid_text(raw: Mapping[str, Any]) -> str:
    """Where a PubTator3 document keeps its PMID: ``pmid``, else the first part of ``_id``
    (``"28041912|None"``), else the BioC ``id`` (which may be a DOI)."""
    return str(raw.get("pmid") or str(raw.get("_id", raw.get("id", ""))).split("|")[0])


def symbol_index(symbols: Mapping[int, str]) -> dict[str, int]:
    """``{SYMBOL: human Gene ID}`` from ``{human Gene ID: HGNC symbol}``, for :func:`gene_tags`."""
    return {symbol.upper(): human_id for human_id, symbol in symbols.items()}


def read_document(raw: Mapping[str, Any]) -> Annotations:
    """One BioC JSON document (as PubTator3 writes it) to its Gene and Disease annotations.

    The PMID is PubTator's ``pmid`` (or the first part of ``_id``, ``"28041912|None"``), because
    the BioC ``id`` may be a DOI. Annotations without an identifier are left out: there is
    nothing to tag them with.
    """
    try:
        document: BioCDocument = parse_doc(dict(raw))
        pmid = int(pmid_text(raw))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a BioC document: {type(exc).__name__}: {exc}") from exc
    genes: list[GeneMention] = []
    diseases: list[DiseaseMention] = []
    for passage in document.passages:
        kind = str(passage.infons.get("type", ""))
        for annotation in passage.annotations:
            infons = annotation.infons
            identifier = infons.get("identifier")
            if not identifier or not annotation.locations:
                continue
            start = min(loc.offset for loc in annotation.locations)
            end = max(loc.offset + loc.length for loc in annotation.locations)
            if infons.get("type") == "Gene":
                ids = tuple(int(part) for part in re.findall(r"\d+", str(identifier)))
                if ids:
                    genes.append(
                        GeneMention(
                            ids, annotation.text, start, end, kind,
                            species=_taxonomy(infons.get("species")),
                            homologene=str(infons["ncbi_homologene"]) if infons.get("ncbi_homologene") else None,
                            name=infons.get("name"), passage_offset=passage.offset,
                        )
                    )
            elif infons.get("type") == "Disease":
                diseases.append(DiseaseMention(str(identifier), annotation.text, start, end, kind, infons.get("name"),
                                               passage.offset))
    return Annotations(pmid, tuple(genes), tuple(diseases))


def _taxonomy(value: object) -> int | None:
    """A species given as ``10090`` or ``Tax:10090``, or None."""
    match = re.search(r"\d+", str(value)) if value is not None else None
    return int(match.group(0)) if match else None


def gene_tags(
    annotations: Annotations,
    symbols: Mapping[int, str],
    orthologues: Mapping[str, int] | None = None,
    by_symbol: Mapping[str, int] | None = None,
) -> list[GeneTag]:
    """Gene tags with HGNC symbols, one per Gene ID of each mention.

    ``symbols`` is the vocabulary's ``{human NCBI Gene ID: HGNC symbol}``. A human ID gets its
    symbol directly. Another ID gets its human orthologue's symbol when its HomoloGene group
    leads to a human gene: through ``orthologues`` (``{group: human Gene ID}``), a human gene of
    the same group named in the same paper, or, for a gene in a HomoloGene group, the human gene
    whose HGNC symbol its own symbol spells in other case (mouse and rat nomenclature follow
    HGNC's: Il1b is IL1B's orthologue; ``by_symbol`` is ``{SYMBOL: human Gene ID}``, made from
    ``symbols`` when not given). Otherwise it is kept with its own ID and species, and no symbol.
    """
    groups = dict(orthologues or {})
    for mention in annotations.genes:
        for gene_id in mention.gene_ids:
            if gene_id in symbols and mention.homologene:
                groups.setdefault(mention.homologene, gene_id)
    tags = []
    for mention in annotations.genes:
        for gene_id in mention.gene_ids:
            human: int | None = gene_id if gene_id in symbols else None
            species = HUMAN if human is not None else mention.species
            if human is None and mention.homologene in groups:
                human = groups[mention.homologene]
            elif human is None and mention.homologene and mention.name:
                if by_symbol is None:
                    by_symbol = symbol_index(symbols)
                human = by_symbol.get(mention.name.upper())
            symbol = symbols.get(human) if human is not None else None
            tags.append(
                GeneTag(symbol, gene_id, species, human if symbol else None, mention.text, mention.start, mention.end,
                        name=mention.name, passage=mention.passage, passage_offset=mention.passage_offset)
            )
    return tags


# -- the client -------------------------------------------------------------------------------------


class PubtatorClient(HttpClient):
    """Asks PubTator3 at ``base_url`` for the annotations of PMIDs; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        *,
        enabled: bool = True,
        session: Session | None = None,
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        batch_size: int = BATCH_SIZE,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url_of(base_url, "LITWATCH_PUBTATOR_URL")
        if not 1 <= batch_size <= BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{BATCH_SIZE}, got {batch_size}")
        self.enabled = enabled
        self.batch_size = batch_size
        self._door = HttpDoor(
            self.base_url, RATE, session=session, timeout=timeout, max_retries=max_retries,
            backoff=backoff, sleep=sleep, clock=clock,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, session: Session | None = None) -> PubtatorClient:
        """The client a run uses: URL, on/off, timeout and retries from the settings."""
        return cls(
            settings.pubtator_url,
            enabled=settings.pubtator == "on",
            session=session,
            timeout=settings.request_timeout,
            max_retries=settings.max_retries,
        )

    def __repr__(self) -> str:
        return f"PubtatorClient(base_url={self.base_url!r}, enabled={self.enabled})"

    def export(self, pmids: Iterable[int]) -> Export:
        """Annotations of ``pmids`` (duplicates asked once), ``batch_size`` PMIDs a request."""
        if not self.enabled:
            return Export(off=True)
        wanted = list(dict.fromkeys(int(pmid) for pmid in pmids))
        found: dict[int, Annotations] = {}
        for first in range(0, len(wanted), self.batch_size):
            batch = wanted[first : first + self.batch_size]
            asked = set(batch)
            for document in self._export_batch(batch):
                if document.pmid in asked:
                    found[document.pmid] = document
        return Export({p: found[p] for p in wanted if p in found}, [p for p in wanted if p not in found])

    def _export_batch(self, pmids: Sequence[int]) -> list[Annotations]:
        """One export request, retried (``self.retry``) until it works or attempts run out; this is
        the one place where failed attempts turn into a PubtatorError."""
        url = self.base_url + EXPORT
        params = {"pmids": ",".join(str(pmid) for pmid in pmids)}

        def attempt(number: int) -> list[Annotations]:
            body = self._door.send(
                "GET", url, params=params, describe=_describe, wrong_url=(404, 405), accept=_answered
            )
            try:
                return read_answer(body)
            except ValueError as exc:  # json.JSONDecodeError included: a garbled answer may come right
                raise Failure(f"malformed answer: {exc}", retryable=True) from exc

        def retrying(number: int, attempts: int, failure: Failure, delay: float) -> None:
            log.warning("PubTator3 export attempt %d/%d failed (%s); retrying in %.1f s", number, attempts, failure, delay)

        try:
            return self._door.run(attempt, on_retry=retrying)
        except Unreachable as failure:
            why = f"cannot connect ({failure.reason})" if failure.reason else f"{failure.cause} (no PubTator3 export there)"
            raise PubtatorError(f"PubTator3 at {self.base_url}: {why}; {_SETTING_HINT}") from (failure.__cause__ or failure)
        except Failure as failure:
            where = f"PubTator3 export of {len(pmids)} PMID{'s' if len(pmids) > 1 else ''} at {self.base_url}"
            cause = failure.__cause__ or failure
            if not failure.retryable:
                raise PubtatorError(f"{where} failed: {failure.cause} (not retried: asking again would not help)") from cause
            made = failure.attempts
            raise PubtatorError(
                f"{where} failed after {made} attempt{'s' if made > 1 else ''}: {failure.cause} "
                "(PubTator3 may be busy or down: run again later, or set LITWATCH_PUBTATOR=off)"
            ) from cause


def _answered(status: int, body: bytes) -> bool:
    """A 200, or PubTator3's 404 saying none of the PMIDs is annotated (read_answer: no documents)."""
    return status == 200 or (status == 404 and _NOT_FOUND.encode() in body[:200].lower())


def _describe(status: int, reason: str, body: bytes, url: str) -> str:
    return f"HTTP {status} {reason} for {url}"
