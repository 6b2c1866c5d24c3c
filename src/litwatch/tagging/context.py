"""What the words around a gene match say about it: pure functions the tagger asks.

A dictionary match is a gene only if its surroundings agree. ``not_a_gene`` names the shapes that
are never one whatever the vocabulary says: an ion (``Ca2+``), a codon or genotype (``TGA``,
``C/C``, ``TT genotype``), a chromosome band (``11q23``), a number (``II``, ``12A``).
``inside_longer_name`` sees a match that is only the first word of a longer name (``VEGF
receptor``, ``IL-1 receptor antagonist``, ``TNF receptor-associated periodic syndrome``,
``IL-1-like``), which is another thing. ``definitions`` finds the abbreviations a text defines
(``familial hypercholesterolaemia (FH)``) with the Schwartz-Hearst algorithm (Schwartz and
Hearst, PSB 2003), and ``gene_like`` says whether a long form names a gene product at all, so an
abbreviation defined as a disease, a method or a scale is not tagged as the gene it spells.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection

_ELEMENTS = frozenset("H C N O F P S B Li Na K Rb Cs Be Mg Ca Sr Ba Al Ga Cr Mn Fe Co Ni Cu Ag Au Zn Cd Hg Pb Sn Pt Cl Br I "
                      "Se Tl Gd La".split())
_ATOM = re.compile(r"([A-Z][a-z]?)\d*")
_CHARGE = re.compile(r"\(?\d*[+\u2212\u207a]|\u00b2\u207a|-(?=[\s,;.)]|$)")
_NUCLEOTIDES = re.compile(r"[ACGTU]+(?:[/>\u2192-][ACGTU]+)*")
_GENOTYPE_WORD = re.compile(r"[\s-]*(?:genotypes?|alleles?|homozyg|heterozyg|carriers?|variants?|polymorphism)",
                            re.IGNORECASE)
_ALLELE_MARKS = "/>\u2192"
_BAND = re.compile(r"(?:\d{1,2}|X|Y)[pq]\d+(?:\.\d+)?")
_NUMBER = re.compile(r"\d+[A-Za-z]?|[IVXL]+")
_HEAD = re.compile(r"[\s-]?(?:receptors?|antagonists?|inhibitors?|agonists?|syndromes?)\b|-like\b", re.IGNORECASE)


def not_a_gene(text: str, start: int, end: int) -> str | None:
    """Why the match ``text[start:end]`` cannot be a gene (``ion``, ``codon or genotype``,
    ``chromosome band``, ``number``), or None when its shape allows one."""
    written = text[start:end]
    shape = _shape(written)
    if not shape:
        return None
    if "f" in shape and _CHARGE.match(text, end):
        return "ion"
    if "n" in shape:
        beside = (start > 0 and text[start - 1] in _ALLELE_MARKS) or (end < len(text) and text[end] in _ALLELE_MARKS)
        codon = len(written) == 3 and "codon" in text.lower()
        if "/" in written or beside or codon or _GENOTYPE_WORD.match(text, end):
            return "codon or genotype"
    if "b" in shape:
        return "chromosome band"
    if "#" in shape:
        return "number"
    return None


@functools.lru_cache(maxsize=65_536)
def _shape(written: str) -> str:
    """The shapes a written form has, which the words around it may confirm: ``f`` a formula of
    known elements, ``n`` nucleotides, ``b`` a chromosome band, ``#`` a number ("" for none, as
    for nearly every gene). Asked once per form, not once per match."""
    return ("f" * _formula(written) + "n" * bool(_NUCLEOTIDES.fullmatch(written))
            + "b" * bool(_BAND.fullmatch(written)) + "#" * bool(_NUMBER.fullmatch(written)))


shape = _shape  # the tagger asks it first: only a form with a shape can be ruled out by not_a_gene


def _formula(written: str) -> bool:
    """A chemical formula of known elements (Ca, Ca2, Ca(2, NO3, NH4)."""
    atoms = written.replace("(", "").replace(" ", "")
    pos = 0
    for m in _ATOM.finditer(atoms):
        if m.start() != pos or m.group(1) not in _ELEMENTS:
            return False
        pos = m.end()
    return pos == len(atoms) > 0


def inside_longer_name(text: str, end: int) -> bool:
    """True when the word after a match ending at ``end`` makes it part of a longer name."""
    if end >= len(text) or not (text[end] == "-" or text[end].isspace()):
        return False  # what follows a match is never a letter or digit, so only these lead to a head word
    return _HEAD.match(text, end) is not None


# --- abbreviations the text defines -----------------------------------------------------------

_PAREN = re.compile(r"\(([^()]{1,12})\)")
_UP_TO_CLAUSE_END = re.compile(r".*[.;:!?()\[\]]", re.DOTALL)
_SHORT_END = re.compile(r"[;,]")
_PAREN_SPACE = re.compile(r"\(\s")


def definitions(text: str, only: Collection[str] | None = None) -> dict[str, str]:
    """The abbreviations ``text`` defines as ``long form (SF)``, each with its long form (only
    those in ``only`` when given: the tagger asks about the forms it matched, and then only the
    parentheses that open on one of them are read)."""
    found: dict[str, str] = {}
    if "(" not in text:
        return found
    matches = _PAREN.finditer(text) if only is None else _parens_opening_on(text, only)
    for m in matches:
        short = _SHORT_END.split(m.group(1), maxsplit=1)[0].strip()
        if (only is not None and short not in only) or short in found or not _short_form(short):
            continue
        at = m.start()
        last = _UP_TO_CLAUSE_END.match(text, max(0, at - 200), at)  # greedy: up to the last clause end
        cut = last.end() if last else 0
        words = text[cut:at].split()
        window = words[-min(len(short) + 5, len(short) * 2):]
        long = _best_long_form(short, " ".join(window))
        if long and len(long) > len(short):
            found[short] = long
    return found


def _parens_opening_on(text: str, forms: Collection[str]) -> list[re.Match[str]]:
    """The parenthesised groups (as ``_PAREN.finditer`` finds them, in order) that may hold one of
    ``forms``: those opening on one, and those opening on a space (``strip`` makes ``( FH)`` FH).
    No group holds ``(``, so each starts where it is found."""
    opening = {m.start() for m in _PAREN_SPACE.finditer(text)}
    for form in forms:
        key = "(" + form
        i = text.find(key)
        while i >= 0:
            opening.add(i)
            i = text.find(key, i + 1)
    return [m for p in sorted(opening) if (m := _PAREN.match(text, p))]


def _short_form(short: str) -> bool:
    return (2 <= len(short) <= 10 and len(short.split()) <= 2 and short[0].isalnum()
            and any(c.isalpha() for c in short))


def _best_long_form(short: str, long: str) -> str | None:
    """Schwartz-Hearst: the shortest tail of ``long`` whose letters spell ``short`` in order,
    the first letter of ``short`` starting a word."""
    s, i = len(short) - 1, len(long) - 1
    low, short = long.lower(), short.lower()
    while s >= 0:
        c = short[s]
        if not c.isalnum():
            s -= 1
            continue
        i = low.rfind(c, 0, i + 1)
        while s == 0 and i > 0 and long[i - 1].isalnum():
            i = low.rfind(c, 0, i)
        if i < 0:
            return None
        i -= 1
        s -= 1
    return long[long.rfind(" ", 0, i + 1) + 1:]


_GENE_WORD = re.compile(
    r"(?i)\b(?:proteins?|receptors?|kinases?|factors?|genes?|enzymes?|ligands?|channels?|transporters?|"
    r"antigens?|hormones?|peptides?|polypeptides?|cytokines?|interleukins?|chemokines?|subunits?|"
    r"chains?|homolog\w*|oncogenes?|suppressors?|isoforms?|domains?|molecules?|glycoproteins?)\b"
    r"|[a-z]{3,}ases?\b|\b(?!(?:brain|pain|vein|skin|origin|margin)s?\b)[a-z]{3,}ins?\b")


def gene_like(long: str) -> bool:
    """True when a long form reads as a gene product (a protein, receptor, kinase, ...ase, ...in)."""
    return _GENE_WORD.search(long) is not None
