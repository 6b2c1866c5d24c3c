"""Reading E-utilities answers: is it complete, is it an ERROR worth asking again, what did ESearch find.

The client (``eutils.py``) hands every answer body here before returning it; a ``Failure`` says
why an answer will not do and whether asking again could help. Answers are never parsed into
PubMed records here: the pipeline does that.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from Bio import Entrez

from litwatch.sources.http import Failure

ESEARCH_MAX_IDS = 9999  # PubMed ESearch returns ids for the first 9,999 matches only

# What an <ERROR> answer (XML <ERROR>, JSON "ERROR", an ESearch that failed) means, decided here
# only. Permanent texts are checked first: the retstart one starts "Search Backend failed" yet can
# never succeed. Real permanent answers (tests/fixtures/eutils, see PROVENANCE.md):
#   "Invalid db name specified: fleegle"       (esearch/esummary/epost, ncbi-2012-samples, biopython)
#   "Can not retrieve DbInfo for db=fleegle"   (einfo, ncbi-2012-samples)
#   "Empty term and query_key - nothing todo"  (esearch JSON, json-edgecases)
#   "Search Backend failed: Exception: 'retstart' cannot be larger than 9998. ..." (json-edgecases)
#   "Empty ID list; Nothing to store", "Neither query_key nor id specified" (epost/esummary)
#   "API key invalid", "Invalid API key" (NCBI's answer to a wrong api_key)
# Transient ones NCBI sends while a backend is down or busy; "Unable to obtain query #N" says the
# history server lost a search: a request that does not read history is simply asked again, one
# that does needs a new search (HISTORY_LOST; eutils.py raises HistoryLost for it).
# Anything not recognised is permanent: asking again is for faults known to pass.
_PERMANENT_ERRORS = ("cannot be larger than 9998", "invalid db name", "api key", "api_key")
HISTORY_LOST = "unable to obtain query"
_TRANSIENT_ERRORS = (
    HISTORY_LOST,
    "search backend failed",
    "database is not supported",
    "temporarily unavailable",
    "try again",
    "timed out",
    "timeout",
    "service unavailable",
    "server is busy",
    "rate limit exceeded",
)


def is_transient(message: str) -> bool:
    """Whether an ERROR text NCBI sent reads like a passing fault (see the lists above)."""
    lowered = message.lower()
    return not any(p in lowered for p in _PERMANENT_ERRORS) and any(p in lowered for p in _TRANSIENT_ERRORS)


class ErrorAnswer(Failure):
    """An ERROR NCBI answered; ``history_lost`` when it says a history search is gone."""

    def __init__(self, message: str) -> None:
        super().__init__(f"NCBI answered ERROR: {message}", retryable=is_transient(message))
        self.history_lost = HISTORY_LOST in message.lower()


# ESearch answers are parsed against Biopython's bundled esearch.dtd whatever DOCTYPE they name:
# Bio.Entrez would otherwise download a DTD it lacks, and refuses old http:// DTD addresses.
_ESEARCH_DOCTYPE = (
    b'<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    b'"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">'
)
_PROLOG = re.compile(rb"\s*(<\?xml[^>]*\?>)?\s*(<!DOCTYPE[^>]*>)?")
_ERROR_TEXT = re.compile(
    rb'<ERROR>(.*?)</ERROR>|"(?:ERROR|error)"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL
)
_entrez_read: Callable[..., Any] = Entrez.read  # only its parser: its HTTP functions ignore Retry-After


@dataclass
class SearchResult:
    """One ESearch answer. ``count`` is every match; ``ids`` the page asked for (at most 9,999)."""

    count: int
    ids: list[int]
    webenv: str | None = None
    query_key: str | None = None
    query_translation: str = ""
    warnings: list[str] = field(default_factory=list)


def error_detail(body: bytes) -> str:
    """The ERROR message in an XML or JSON body, shortened, or '' when there is none."""
    match = _ERROR_TEXT.search(body[:20000])
    if not match:
        return ""
    raw = match.group(1) if match.group(1) is not None else match.group(2)
    text = raw.decode("utf-8", "replace")
    if match.group(2) is not None:
        try:
            text = json.loads(f'"{text}"', strict=False)
        except ValueError:
            pass
    return " ".join(text.split())[:300]


def _error_answer(message: str) -> ErrorAnswer:
    """Classify an ERROR NCBI sent in a 200 answer as worth retrying or not."""
    return ErrorAnswer(message)


def _check_xml(body: bytes, root: str) -> None:
    """Raise Failure unless ``body`` is complete XML with ``root`` at the top and no ERROR."""
    if body.lstrip().startswith(b"{"):
        detail = error_detail(body)
        if detail:
            raise _error_answer(detail)
        raise Failure("answered JSON where XML was asked for", retryable=True)
    found: list[str] = []
    errors: list[str] = []
    depth = 0
    error_text: list[str] | None = None

    def start(name: str, attrs: object) -> None:
        nonlocal depth, error_text
        depth += 1
        if depth == 1:
            found.append(name)
        if name == "ERROR" and depth <= 2:
            error_text = []

    def end(name: str) -> None:
        nonlocal depth, error_text
        depth -= 1
        if name == "ERROR" and error_text is not None:
            if "".join(error_text).strip():
                errors.append(" ".join("".join(error_text).split()))
            error_text = None

    def text(data: str) -> None:
        if error_text is not None:
            error_text.append(data)

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise Failure(f"truncated or malformed XML ({exc})", retryable=True) from exc
    if errors:
        raise _error_answer("; ".join(errors))
    if found != [root]:
        got = f"<{found[0]}>" if found else "no element"
        raise Failure(f"unexpected answer: {got} where <{root}> was expected", retryable=True)


_PUBMED_END = re.compile(rb"(?:</PubmedArticleSet>|<PubmedArticleSet\s*/>)\s*$")


def check_pubmed(body: bytes) -> bytes:
    """Verify an efetch answer: no ERROR near the top, the closing tag there, well-formed between.

    The well-formedness check is expat without handlers, a quarter of what reading the records
    costs, so that a body damaged in the middle is fetched again rather than failing the run.
    """
    if b"ERROR" in body[:2048] or not _PUBMED_END.search(body[-256:]):
        _check_xml(body, "PubmedArticleSet")  # raises naming the ERROR or where the XML breaks
    try:
        expat.ParserCreate().Parse(body, True)
    except expat.ExpatError as exc:
        raise Failure(f"malformed XML ({exc})", retryable=True) from exc
    return body


def parse_esearch(body: bytes, retmax: int, retstart: int) -> SearchResult:
    """Read an ESearch answer with Bio.Entrez.read, never letting it reach the network.

    An answer that counts matches yet lists no id for a page that should hold some is treated
    as broken, so a glitch never passes for "nothing new".
    """
    _check_xml(body, "eSearchResult")
    prolog = _PROLOG.match(body)
    assert prolog is not None  # the pattern matches the empty string
    declaration = prolog.group(1) or b'<?xml version="1.0" encoding="UTF-8" ?>'
    local = declaration + b"\n" + _ESEARCH_DOCTYPE + b"\n" + body[prolog.end():]
    try:
        record = _entrez_read(io.BytesIO(local), validate=False)
        result = _search_result(record)
    except RuntimeError as exc:  # Bio.Entrez raises RuntimeError(text) for an <ERROR> element
        raise _error_answer(str(exc)) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise Failure(f"unreadable ESearch answer ({exc})", retryable=True) from exc
    if retmax > 0 and retstart < min(result.count, ESEARCH_MAX_IDS) and not result.ids:
        raise Failure(f"ESearch reported {result.count} matches but sent no ids", retryable=True)
    return result


def _quoted(text: str) -> str:
    return text if text.startswith('"') else f'"{text}"'


def _search_result(record: Any) -> SearchResult:
    errors = record.get("ErrorList") or {}
    notes = record.get("WarningList") or {}
    warnings = [f"phrase not found: {_quoted(p)}" for p in errors.get("PhraseNotFound", [])]
    warnings += [f"field not found: {_quoted(f)}" for f in errors.get("FieldNotFound", [])]
    warnings += [f"quoted phrase not found: {_quoted(p)}" for p in notes.get("QuotedPhraseNotFound", [])]
    warnings += [f"phrase ignored: {_quoted(p)}" for p in notes.get("PhraseIgnored", [])]
    warnings += [str(m) for m in notes.get("OutputMessage", [])]
    webenv = record.get("WebEnv")
    query_key = record.get("QueryKey")
    return SearchResult(
        count=int(record["Count"]),
        ids=[int(i) for i in record["IdList"]],
        webenv=str(webenv) if webenv else None,
        query_key=str(query_key) if query_key else None,
        query_translation=str(record.get("QueryTranslation", "")),
        warnings=warnings,
    )
