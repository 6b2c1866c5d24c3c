"""Tag texts and papers with the genes, pathways and conditions of a vocabulary.

Matching is one overlapping scan of one Aho-Corasick automaton (ahocorasick-rs), built once per
vocabulary, over a folded, lower-cased copy of the text. Symbols, aliases and previous symbols
match in their exact case: their keys enter the automaton lower-cased, and a hit counts for them
only where the text has the case of the key; names and keywords match in any case (a plural ``s``
allowed). The copy replaces every character by exactly one character, so an offset into it is an
offset into the text as given: Greek letters become the Latin capital HGNC uses for them (α→A,
β→B, κ→K), accented letters lose their accent, and everything that is not a letter or digit
(hyphens, Unicode dashes, odd spaces, punctuation) becomes a space. The written variants of a term
are generated once, when the automaton is built: ``IL1B`` also yields ``IL-1B``, ``IL-1β``,
``IL1beta`` and ``IL 1 beta``; ``TNF-α`` also yields ``TNFα``, ``TNF-alpha`` and ``TNFalpha``.
What a hit stands for depends only on the pattern and the text it covers, so each tagger keeps
that decision for the next time the same form is met (most papers name the same few hundred).

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

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ahocorasick_rs import AhoCorasick, Implementation

from litwatch.files.vocab import ROLE_RANK, Term, Vocabulary
from litwatch.records import PaperRecord
from litwatch.tagging import context
from litwatch.tagging.forms import GREEK_RE, ITEMS, canon, canon_lower, lower, variants

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
_Triple = tuple[str, str, int]
_Alt = tuple[frozenset[int], tuple[_Triple, ...]]
_NO_GREEK: frozenset[int] = frozenset()
_HITS_KEPT = 200_000  # decisions a tagger keeps (tens of MB at most) before it starts afresh
_IMPORTED = 10  # added to the role rank of an imported gene's form, so a curated gene's wins
_OTHER = ROLE_RANK["alias"]  # a previous symbol and an alias of two genes are equally ambiguous
_STRONG = (ROLE_RANK["symbol"], ROLE_RANK["name"])  # forms that vouch for a gene being meant
# What one pattern of the automaton stands for: (exact-case key or None for any case, alternatives).
_Entry = tuple[tuple[str | None, tuple[_Alt, ...]], ...]
# A candidate: start, minus end, kind, tag, rank (role rank, plus _IMPORTED for imported genes),
# so that sorting candidates puts them leftmost-longest first.
_Cand = tuple[int, int, str, str, int]


# An all-capital symbol with a digit is also written with only its first letter a capital, as
# mouse and rat genes are (Foxp3, Stat3, Il1b); letters-only ones are not (Rest, Max are words).
_MOUSE_STYLE = re.compile(r"[A-Z][A-Z0-9-]*\d[A-Z0-9-]*")


def _table(terms: Iterable[Term], case_sensitive: bool,
           stoplist: frozenset[str]) -> dict[str, dict[tuple[frozenset[int], tuple[str, str]], int]]:
    """The keys of the exact-case terms, or of the any-case terms (keys lower-cased), each with
    its (Greek offsets, (tag, kind)) slots and their best rank.

    Keys are `` form `` with a space at each end; any-case forms ending in a letter also get a
    plural key."""
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
    return table


def _alternatives(slots: dict[tuple[frozenset[int], tuple[str, str]], int]) -> tuple[_Alt, ...]:
    """A key's alternatives: per set of Greek offsets, the best-ranked (tag, kind) pairs of each kind."""
    by_need: dict[frozenset[int], dict[tuple[str, str], int]] = {}
    for (need, pair), rank in slots.items():
        by_need.setdefault(need, {})[pair] = rank
    alts: list[_Alt] = []
    for need, ranked in by_need.items():
        best: dict[str, int] = {}
        for (_tag, kind), rank in ranked.items():
            best[kind] = min(rank, best.get(kind, rank))
        alts.append((need, tuple((t, k, r) for (t, k), r in ranked.items() if r == best[k])))
    return tuple(alts)


def _build(terms: Sequence[Term], stoplist: frozenset[str]) -> tuple[AhoCorasick | None, list[_Entry]]:
    """One automaton over the lower-cased keys of every term, and for each of its patterns what a
    hit may stand for: the exact-case keys that lower-case to it (a hit counts for one only where
    the text has that case) and the any-case key itself (``None``)."""
    merged: dict[str, dict[str | None, tuple[_Alt, ...]]] = {}
    interned: dict[tuple[_Alt, ...], tuple[_Alt, ...]] = {}
    for case_sensitive in (True, False):
        for key, slots in _table(terms, case_sensitive, stoplist).items():
            packed = _alternatives(slots)
            merged.setdefault(lower(key), {})[key if case_sensitive else None] = interned.setdefault(packed, packed)
    if not merged:
        return None, []
    entries = [tuple(cases.items()) for cases in merged.values()]
    return AhoCorasick(list(merged), implementation=Implementation.ContiguousNFA), entries


# --- matching ---------------------------------------------------------------------------------

class Tagger:
    """Matches one vocabulary against texts and papers: build it once, use it for many texts."""

    def __init__(self, vocab: Vocabulary, *, rules: bool = True) -> None:
        self.vocab = vocab
        self.version = vocab.version
        self.rules = rules
        self._stop_exact = frozenset(s for s in vocab.stoplist if s != s.lower())
        self._stop_any = frozenset(s for s in vocab.stoplist if s == s.lower())
        self._automaton, self._entries = _build(vocab.terms, vocab.stoplist)
        self._long_forms: dict[str, bool] = {}
        self._hits: dict[tuple[int, str], tuple[tuple[_Triple, ...], tuple[_Triple, ...]]] = {}

    def match(self, text: str) -> list[Match]:
        """Every tag that fires in ``text``, in order of position; ``text`` is the whole paper."""
        return [m for m, _status in self._judge([text], explain=False)[0]]  # only the tagged ones

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
        out: list[list[tuple[Match, str]]] = []
        genes: list[tuple[int, int]] = []
        for t, found in enumerate(scanned):
            out.append([(m, status) for m, status, _rank in found])
            for i, (m, status, _rank) in enumerate(found):
                if m.kind == "gene" and status == "tagged":
                    genes.append((t, i))
        if not self.rules or not genes:  # no rule changes a paper without genes
            return out
        defined: dict[str, str] = {}
        opened = [text for text in texts[:2] if "(" in text]
        if opened:
            written = {scanned[t][i][0].text for t, i in genes}
            if any(f"({w}" in text for w in written for text in opened):  # only then can one be defined
                for text in opened:
                    defined.update(context.definitions(text, written))
        spans: dict[tuple[int, int, int], list[int]] = {}
        for t, i in genes:
            m = scanned[t][i][0]
            why = self._context_status(texts[t], m, defined)
            if why is None:
                spans.setdefault((t, m.start, m.end), []).append(i)
            else:
                out[t][i] = (m, why)
        evidence = {out[t][idx[0]][0].tag for (t, _s, _e), idx in spans.items()
                    if len(idx) == 1 and scanned[t][idx[0]][2] % _IMPORTED in _STRONG}
        taken_back = len(genes) > sum(map(len, spans.values()))
        for (t, _s, _e), idx in spans.items():
            if len(idx) > 1 or _acronym_alias(out[t][idx[0]][0].text, scanned[t][idx[0]][2]):
                for i in idx:
                    if out[t][i][0].tag not in evidence:
                        out[t][i] = (out[t][i][0], "ambiguous: the paper names none of its genes")
                        taken_back = True
        if explain or not taken_back:  # out holds only tagged matches then
            return out
        return [[(m, status) for m, status in judged if status == "tagged"] for judged in out]

    def _context_status(self, text: str, m: Match, defined: dict[str, str]) -> str | None:
        """Why the words around a tagged gene match say it is something else, or None."""
        why = context.not_a_gene(text, m.start, m.end) if context.shape(m.text) else None  # "": nearly every gene
        if why:
            return f"not a gene: {why}"
        if context.inside_longer_name(text, m.end):
            return "inside a longer name"
        long = defined.get(m.text)
        if long is not None and not self._names_a_gene(long):
            return f"defined as {long!r}"
        return None

    def _names_a_gene(self, long: str) -> bool:
        """Whether the long form of an abbreviation reads as a gene product or tags a gene; asked
        once per long form (``familial hypercholesterolaemia`` is met in paper after paper)."""
        known = self._long_forms.get(long)
        if known is None:
            if len(self._long_forms) > _HITS_KEPT:
                self._long_forms.clear()
            known = self._long_forms[long] = context.gene_like(long) or any(
                c.kind == "gene" for c, _status, _rank in self._scan(long, False))
        return known

    def _scan(self, text: str, explain: bool) -> list[tuple[Match, str, int]]:
        if not text or self._automaton is None:
            return []
        hits = self._hits
        if len(hits) > _HITS_KEPT:
            hits.clear()
        found: list[_Cand] = []
        add = found.append
        dropped: list[tuple[Match, str, int]] = []
        for pattern, start, stop in self._automaton.find_matches_as_indexes(f" {canon_lower(text)} ",
                                                                            overlapping=True):
            end = stop - 2  # the key's spaces stand outside the text
            written = text[start:end]
            key = (pattern, written)
            hit = hits.get(key)
            if hit is None:
                hit = hits[key] = self._hit(pattern, written)
            kept, stopped = hit
            if kept:  # most hits keep nothing (a lower-cased key met in another case)
                for t, k, r in kept:
                    add((start, -end, k, t, r))
            if stopped and explain:
                dropped.extend((Match(t, k, written, start, end), "stop-list", r) for t, k, r in stopped)
        tagged = _resolve(found, text, explain)
        return sorted(tagged + dropped, key=lambda mk: (mk[0].start, -mk[0].end)) if explain else tagged

    def _hit(self, pattern: int, written: str) -> tuple[tuple[_Triple, ...], tuple[_Triple, ...]]:
        """What a hit of ``pattern`` on ``written`` stands for: the (tag, kind, rank) triples that
        match (its case is one of the pattern's exact-case keys, or any case will do; its Greek
        letters where the form has them) and those of them the stop-list drops. It depends on
        nothing else, so ``_scan`` keeps it for the next time the same form is met."""
        padded = f" {canon(written)} "
        greek = () if written.isascii() else tuple(m.start() for m in GREEK_RE.finditer(written))
        at = frozenset(greek) if greek else _NO_GREEK
        stop = written in self._stop_exact or written.lower() in self._stop_any
        kept: list[_Triple] = []
        stopped: list[_Triple] = []
        for exact, alts in self._entries[pattern]:
            if exact is not None and padded != exact:
                continue
            for need, triples in alts:
                if need == at:
                    (stopped if stop else kept).extend(triples)
        return tuple(kept), tuple(stopped)


def _acronym_alias(written: str, rank: int) -> bool:
    """An imported alias or previous symbol written as a short acronym (LSD, TEM, SAH): in text it
    is far more often the field's own abbreviation, so it needs the gene named as well."""
    return rank == _IMPORTED + _OTHER and len(written) <= 3 and written.isalpha() and written.isupper()


def _resolve(found: list[_Cand], text: str, explain: bool) -> list[tuple[Match, str, int]]:
    """Keep, per kind, the leftmost-longest matches that do not overlap; equal spans all stay,
    except that curated genes' forms hide imported genes' at the same span."""
    if not found:
        return []
    if len(found) == 1:  # most texts: nothing to choose between
        start, neg_end, kind, tag, rank = found[0]
        return [(Match(tag, kind, text[start:-neg_end], start, -neg_end), "tagged", rank)]
    out: list[tuple[Match, str, int]] = []
    last: dict[str, tuple[int, int]] = {}
    curated = {(start, neg_end, kind) for start, neg_end, kind, _tag, rank in found if rank < _IMPORTED}
    for start, neg_end, kind, tag, rank in sorted(set(found)):
        end = -neg_end
        span = last.get(kind)
        keep = span is None or start >= span[1] or span == (start, end)
        if keep:
            last[kind] = (start, end)
        status = "tagged" if keep else "inside a longer match"
        if keep and rank >= _IMPORTED and curated and (start, neg_end, kind) in curated:
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
