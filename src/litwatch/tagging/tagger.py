"""Tag texts and papers with the genes, pathways and conditions of a vocabulary.

Matching runs two Aho-Corasick automata (pyahocorasick), built once per vocabulary: one for
symbols, aliases and previous symbols, which match in their exact case, one for names and
keywords, which match in any case (a plural ``s`` allowed). Both run over a normalised copy of the
text in which every character is replaced by exactly one character, so an offset into it is an
offset into the text as given: Greek letters become the Latin capital HGNC uses for them (α→A,
β→B, κ→K), accented letters lose their accent, and everything that is not a letter or digit
(hyphens, Unicode dashes, odd spaces, punctuation) becomes a space. The written variants of a term
are generated once, when the automata are built: ``IL1B`` also yields ``IL-1B``, ``IL-1β``,
``IL1beta`` and ``IL 1 beta``; ``TNF-α`` also yields ``TNFα``, ``TNF-alpha`` and ``TNFalpha``.

A match counts only where it stands alone: the characters either side must not be letters or
digits, so ``IL-1`` fires neither inside ``IL-10`` nor inside ``IL-1R`` (a vocabulary that wants
``IL-1R`` lists it). Every key carries a space at each end and the text is scanned with a space
before and after it, so the automaton itself enforces this. A Latin letter in the vocabulary never
matches a Greek letter in the text unless the term is written with one, so ``α4`` is not the alias
``A4``. A match whose text, as written, is on the stop-list is dropped. Where matches of one kind
overlap, the longest wins (``IL-1β`` over ``IL-1``); genes, pathways and conditions do not hide
one another.

Then the context decides (``tagging.context``, all genes only; ``Tagger(vocab, rules=False)``
turns this off, for the benchmarks): where one written form belongs to a curated gene
(``genes.tsv``) and an imported one (``hgnc.tsv``), the curated gene alone is kept; a match shaped
like an ion, a codon or genotype, a chromosome band or a number is dropped, and so is one that
is the first word of a longer name (``VEGF receptor``) or an abbreviation the paper defines as
something that is not a gene product (``familial hypercholesterolaemia (FH)``); a form of several
genes (``p38``), or an imported alias written as a short acronym (``LSD``, an alias of
DNASE1L3), tags only the genes the paper names elsewhere by symbol or name, else none.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import ahocorasick

from litwatch.files.vocab import ROLE_RANK, Term, Vocabulary
from litwatch.records import PaperRecord
from litwatch.tagging import context
from litwatch.tagging.forms import GREEK_RE, ITEMS, canon, lower, variants

# Word-initial characters of PubMed abstracts, most frequent first: pyahocorasick searches a
# node's children in the order they were added, so the automata are seeded in this order.
_INITIALS = "atisocprdmwfbehlnTguvCA1PISMH20EDWFLROBN53k4Gy7U968VqJKjxXQYZz"

SOURCES = ("title", "abstract", "keyword", "mesh", "chemical", "gene_symbol")


@dataclass(frozen=True)
class Match:
    """One place a term matched, with offsets into the original text (``text == original[start:end]``)."""

    tag: str
    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Tag:
    """A tag on a paper: what, where it was found, and which vocabulary version found it."""

    tag: str
    kind: str
    text: str
    source: str  # title | abstract | keyword | mesh | chemical | gene_symbol
    vocab_version: str
    origin: str = "dictionary"  # or pubtator3 (pipeline/pubtator.py)
    identifier: str | None = None  # NCBIGene:3552, MESH:D008881
    start: int | None = None  # offsets of the first mention in its field (title, abstract)
    end: int | None = None
    species: int | None = None  # NCBI Taxonomy id of a gene with no human symbol


@dataclass(frozen=True)
class Explanation:
    """A candidate match and what became of it: ``tagged``, ``stop-list`` or ``inside a longer match``."""

    match: Match
    status: str



# What one automaton key stands for: the offsets that must be Greek letters in the text, and the
# (tag, kind, rank) triples. A key has one alternative per distinct set of Greek offsets.
_Alt = tuple[frozenset[int], tuple[tuple[str, str, int], ...]]
_NO_GREEK: frozenset[int] = frozenset()
_IMPORTED = 10  # added to the role rank of an imported gene's form, so a curated gene's wins
_OTHER = ROLE_RANK["alias"]  # a previous symbol and an alias of two genes are equally ambiguous
_STRONG = (ROLE_RANK["symbol"], ROLE_RANK["name"])  # forms that vouch for a gene being meant
# A candidate: start, end, tag, kind, rank (role rank, plus _IMPORTED for imported genes).
_Cand = tuple[int, int, str, str, int]


# An all-capital symbol with a digit is also written with only its first letter a capital, as
# mouse and rat genes are (Foxp3, Stat3, Il1b); letters-only ones are not (Rest, Max are words).
_MOUSE_STYLE = re.compile(r"[A-Z][A-Z0-9-]*\d[A-Z0-9-]*")


def _build(terms: Iterable[Term], case_sensitive: bool,
           stoplist: frozenset[str] = frozenset()) -> ahocorasick.Automaton | None:
    """One automaton over the exact-case terms, or over the any-case terms (keys lower-cased).

    Keys are `` form `` with a space at each end; any-case forms ending in a letter also get a
    plural key. The value is (key length, alternatives)."""
    table: dict[str, dict[tuple[frozenset[int], tuple[str, str]], int]] = {}
    for term in terms:
        if term.case_sensitive != case_sensitive:
            continue
        rank = ROLE_RANK.get(term.role, _OTHER)
        rank = (_OTHER if rank == ROLE_RANK["previous"] else rank) + (0 if term.curated else _IMPORTED)
        pair = (term.tag, term.kind)
        forms = variants(term.phrase, case_sensitive)
        if case_sensitive and _MOUSE_STYLE.fullmatch(term.phrase) and term.phrase not in stoplist:
            forms += variants(term.phrase[0] + term.phrase[1:].lower(), True)  # Foxp3, Stat3, Cdc42
        for form, greek in forms:
            if sum(c.isalnum() for c in form) < 2 or not any(c.isalpha() for c in form):
                continue  # one letter, or a bare number, would fire everywhere
            slot = (frozenset(greek) if greek else _NO_GREEK, pair)
            keys = [f" {form} "] if case_sensitive else [f" {lower(form)} "]
            if not case_sensitive and form[-1].isalpha():
                keys.append(f" {lower(form)}s ")
            for key in keys:
                entry = table.setdefault(key, {})
                entry[slot] = min(rank, entry.get(slot, rank))
    if not table:
        return None
    automaton = ahocorasick.Automaton()
    for initial in _INITIALS if case_sensitive else lower(_INITIALS):
        automaton.add_word(f" {initial}\0", (3, ()))  # never found: the text has no NUL left
    interned: dict[tuple[_Alt, ...], tuple[_Alt, ...]] = {}
    for key, slots in table.items():
        by_need: dict[frozenset[int], dict[tuple[str, str], int]] = {}
        for (need, pair), rank in slots.items():
            by_need.setdefault(need, {})[pair] = rank
        alts: list[_Alt] = []
        for need, ranked in by_need.items():
            best: dict[str, int] = {}
            for (_tag, kind), rank in ranked.items():
                best[kind] = min(rank, best.get(kind, rank))
            alts.append((need, tuple((t, k, r) for (t, k), r in ranked.items() if r == best[k])))
        packed = tuple(alts)
        automaton.add_word(key, (len(key), interned.setdefault(packed, packed)))
    automaton.make_automaton()
    return automaton


# --- matching ---------------------------------------------------------------------------------

class Tagger:
    """Matches one vocabulary against texts and papers: build it once, use it for many texts."""

    def __init__(self, vocab: Vocabulary, *, rules: bool = True) -> None:
        self.vocab = vocab
        self.version = vocab.version
        self.rules = rules
        self._stop_exact = frozenset(s for s in vocab.stoplist if s != s.lower())
        self._stop_any = frozenset(s for s in vocab.stoplist if s == s.lower())
        self._exact = _build(vocab.terms, case_sensitive=True, stoplist=vocab.stoplist)
        self._any_case = _build(vocab.terms, case_sensitive=False)

    def match(self, text: str) -> list[Match]:
        """Every tag that fires in ``text``, in order of position; ``text`` is the whole paper."""
        return [m for m, status in self._judge([text], explain=False)[0] if status == "tagged"]

    def explain(self, text: str) -> list[Explanation]:
        """Every candidate and what became of it, so a librarian sees why a tag fired or not."""
        return [Explanation(m, status) for m, status in self._judge([text], explain=True)[0]]

    def tag_record(self, record: PaperRecord) -> list[Tag]:
        """Tags of a paper from its title, abstract, author keywords, MeSH headings, chemicals and
        gene symbols (GeneSymbolList): one per (tag, source), in the order found. Abbreviations
        defined and genes named anywhere in the title or abstract count for every source."""
        seen: dict[tuple[str, str], Tag] = {}
        sources = list(_record_texts(record))
        judged = self._judge([text for _source, text in sources], explain=False)
        for (source, _text), found in zip(sources, judged, strict=True):
            for m, _status in found:
                span = (m.start, m.end) if source in ("title", "abstract") else (None, None)
                seen.setdefault((m.tag, source), Tag(m.tag, m.kind, m.text, source, self.version, "dictionary",
                                                     None, *span))
        for symbol in record.gene_symbols:
            hits = [m for m in self.match(symbol) if m.kind == "gene"]
            if not hits and symbol.upper() != symbol:  # GeneSymbolList keeps mouse case: Foxp3
                hits = [m for m in self.match(symbol.upper()) if m.kind == "gene"]
            for m in hits:
                seen.setdefault((m.tag, "gene_symbol"), Tag(m.tag, m.kind, symbol, "gene_symbol", self.version))
        return list(seen.values())

    def _judge(self, texts: list[str], explain: bool) -> list[list[tuple[Match, str]]]:
        """The candidates of each text of one paper and their fate (only the tagged ones unless
        ``explain``); the first two texts (title, abstract) give the definitions and evidence."""
        scanned = [self._scan(text, explain) for text in texts]
        if not self.rules:
            return [[(m, status) for m, status, _rank in found] for found in scanned]
        defined: dict[str, str] = {}
        written = {m.text for found in scanned for m, status, _ in found if m.kind == "gene" and status == "tagged"}
        if any(f"({w}" in text for w in written for text in texts[:2]):  # only then can one be defined
            for text in texts[:2]:
                defined.update(context.definitions(text, written))
        out: list[list[tuple[Match, str]]] = []
        spans: dict[tuple[int, int, int], list[int]] = {}
        for t, (text, found) in enumerate(zip(texts, scanned, strict=True)):
            judged = [(m, self._context_status(text, m, status, defined)) for m, status, _ in found]
            for i, (m, status) in enumerate(judged):
                if m.kind == "gene" and status == "tagged":
                    spans.setdefault((t, m.start, m.end), []).append(i)
            out.append(judged)
        evidence = {out[t][idx[0]][0].tag for (t, _s, _e), idx in spans.items()
                    if len(idx) == 1 and scanned[t][idx[0]][2] % _IMPORTED in _STRONG}
        for (t, _s, _e), idx in spans.items():
            if len(idx) > 1 or _acronym_alias(out[t][idx[0]][0].text, scanned[t][idx[0]][2]):
                for i in idx:
                    if out[t][i][0].tag not in evidence:
                        out[t][i] = (out[t][i][0], "ambiguous: the paper names none of its genes")
        if explain:
            return out
        return [[(m, status) for m, status in judged if status == "tagged"] for judged in out]

    def _context_status(self, text: str, m: Match, status: str, defined: dict[str, str]) -> str:
        if m.kind != "gene" or status != "tagged":
            return status
        why = context.not_a_gene(text, m.start, m.end)
        if why:
            return f"not a gene: {why}"
        if context.inside_longer_name(text, m.end):
            return "inside a longer name"
        long = defined.get(m.text)
        if long is not None and not context.gene_like(long) and not any(
                c.kind == "gene" for c, s, _ in self._scan(long, False) if s == "tagged"):
            return f"defined as {long!r}"
        return status

    def _scan(self, text: str, explain: bool) -> list[tuple[Match, str, int]]:
        if not text:
            return []
        padded = f" {canon(text)} "  # padded[i + 1] is text[i]
        greek = [] if text.isascii() else [m.start() for m in GREEK_RE.finditer(text)]
        stop_exact, stop_any = self._stop_exact, self._stop_any
        found: list[_Cand] = []
        dropped: list[tuple[Match, str, int]] = []
        for automaton, haystack in ((self._exact, padded), (self._any_case, lower(padded))):
            if automaton is None:
                continue
            for last, (length, alts) in automaton.iter(haystack):
                start, end = last - length + 1, last - 1  # the key's spaces stand outside the text
                at = _NO_GREEK
                if greek:
                    lo, hi = bisect.bisect_left(greek, start), bisect.bisect_left(greek, end)
                    if hi > lo:
                        at = frozenset(g - start for g in greek[lo:hi])
                for need, triples in alts:
                    if need != at:
                        continue
                    written = text[start:end]
                    if written in stop_exact or written.lower() in stop_any:
                        if explain:
                            dropped.extend((Match(t, k, written, start, end), "stop-list", r) for t, k, r in triples)
                        continue
                    found.extend((start, end, t, k, r) for t, k, r in triples)
        kept = _resolve(found, text, explain)
        return sorted(kept + dropped, key=lambda mk: (mk[0].start, -mk[0].end)) if explain else kept


def _acronym_alias(written: str, rank: int) -> bool:
    """An imported alias or previous symbol written as a short acronym (LSD, TEM, SAH): in text it
    is far more often the field's own abbreviation, so it needs the gene named as well."""
    return rank == _IMPORTED + _OTHER and len(written) <= 3 and written.isalpha() and written.isupper()


def _resolve(found: list[_Cand], text: str, explain: bool) -> list[tuple[Match, str, int]]:
    """Keep, per kind, the leftmost-longest matches that do not overlap; equal spans all stay,
    except that curated genes' forms hide imported genes' at the same span."""
    out: list[tuple[Match, str, int]] = []
    last: dict[str, tuple[int, int]] = {}
    best: dict[tuple[int, int, str], int] = {}
    for start, end, _tag, kind, rank in found:
        key = (start, end, kind)
        best[key] = min(rank, best.get(key, rank))
    for start, end, tag, kind, rank in sorted(set(found), key=lambda f: (f[0], -f[1], f[3], f[2])):
        span = last.get(kind)
        keep = span is None or start >= span[1] or span == (start, end)
        if keep:
            last[kind] = (start, end)
        status = "tagged" if keep else "inside a longer match"
        if keep and rank >= _IMPORTED > best[(start, end, kind)]:
            status = "a curated gene has this form"
        if status == "tagged" or explain:
            out.append((Match(tag, kind, text[start:end], start, end), status, rank))
    return out


def _record_texts(record: PaperRecord) -> Iterator[tuple[str, str]]:
    """Each source's text; a list (keywords, headings, chemicals) is one text, its items joined by
    ``ITEMS``: a term matches between spaces, never across the NUL, so no match spans two items,
    and one scan per list instead of one per item halves the cost of tagging a paper."""
    yield "title", record.title
    yield "abstract", record.abstract
    yield "keyword", ITEMS.join(keyword.text for keyword in record.keywords)
    yield "mesh", ITEMS.join(heading.name for heading in record.mesh)
    yield "chemical", ITEMS.join(chemical.name for chemical in record.chemicals)
