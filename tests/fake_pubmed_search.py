"""PubMed's boolean search, close enough for the loopback fake: a term evaluated against records.

``parse(term)`` reads a PubMed query into a tree; ``index(xml, crdt)`` reads a PubmedArticle into
the fields PubMed searches; ``node.matches(doc)`` says whether the record is in the result.

What it does, as PubMed does it:
- AND, OR, NOT (upper case only) read strictly left to right, no precedence; parentheses group;
  words side by side without an operator are ANDed.
- Quoted phrases match consecutive words; unquoted words right before a tag form a phrase
  (``Case Reports[pt]``); ``word*`` truncates (any word of a phrase may end in ``*``).
- Words compare case-insensitively with accents dropped, Greek letters spelled out (β = beta, so
  "IL-1beta" finds "IL-1β") and every other non-alphanumeric character a word break ("TNF-alpha"
  finds "TNF alpha").
- Field tags: [ti], [ab], [tiab] (title, abstracts, author keywords), [tw] (those plus MeSH,
  publication types and substance names), [mh]/[mesh]/[mesh terms] (a whole MeSH descriptor or
  qualifier name; "Descriptor/qualifier" too), [mh:noexp], [majr], [pt], [au] ("smith j" finds
  Smith JA), [la] ("eng" or "english"), [ta]/[journal], [filter]/[sb] (only humans, female, male, hasabstract);
  untagged words search title, abstract, keywords, MeSH and substance names.
- Dates: ``"2026/01/01"[crdt] : "2026/11/23"[crdt]`` and ``2020:2025[dp]`` ranges, or one date, on
  [crdt] and [edat] (both the create date the fake holds for the record), [mdat] (DateRevised, never
  before the create date) and [dp]/[pdat] (the journal issue's date).

What it does not do: no automatic term mapping (an untagged "migraine" is not also
"Migraine Disorders"[mh]), no MeSH explosion (``[mh]`` finds only the descriptor itself, not the
narrower "Migraine without Aura"), no entry terms or synonyms, no stopwords (lower-case "or" is a
word to find), no proximity (``[tiab:~N]``), no relative dates ("last 30 days"[dp]), no other field
tags: those raise ``UnsupportedTerm``, so a test never passes on a term the fake only pretends to read.
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

_GREEK = dict(zip("αβγδεζηθικλμνξοπρστυφχψωϵ⍺", (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
    "sigma tau upsilon phi chi psi omega epsilon alpha").split()))
_WORD = re.compile(r"[a-z0-9]+\*?")
_TOKEN = re.compile(r'\s*(?:(\()|(\))|"([^"]*)"?|\[([^\]]*)\]?|(:)|([^\s()"\[\]:]+))')
_LANGUAGES = {"english": "eng", "french": "fre", "german": "ger", "spanish": "spa", "italian": "ita",
              "japanese": "jpn", "chinese": "chi", "russian": "rus", "portuguese": "por", "dutch": "dut", "norwegian": "nor"}
# Which indexed fields each supported tag searches.
_FIELDS = {
    "ti": ("ti",), "title": ("ti",), "ab": ("ab",), "abstract": ("ab",),
    "tiab": ("ti", "ab", "kw"), "title/abstract": ("ti", "ab", "kw"),
    "tw": ("ti", "ab", "kw", "mh", "pt", "nm"), "text word": ("ti", "ab", "kw", "mh", "pt", "nm"),
    "": ("ti", "ab", "kw", "mh", "nm"), "all fields": ("ti", "ab", "kw", "mh", "nm"),
    "mh": ("mh",), "mesh": ("mh",), "mesh terms": ("mh",), "majr": ("majr",), "mesh major topic": ("majr",),
    "pt": ("pt",), "publication type": ("pt",), "au": ("au",), "author": ("au",),
    "la": ("la",), "language": ("la",), "ta": ("ta",), "journal": ("ta",),
    "filter": ("filter",), "sb": ("filter",),
}
_FILTERS = {("humans",), ("female",), ("male",), ("hasabstract",)}
_WHOLE = {"mh", "majr", "pt", "la", "ta", "filter"}  # fields matched as whole names, not phrases inside text
DATE_FIELDS = {"crdt": "crdt", "create date": "crdt", "edat": "crdt", "entry date": "crdt", "mdat": "mdat",
          "modification date": "mdat", "dp": "pdat", "pdat": "pdat", "publication date": "pdat"}


class UnsupportedTerm(ValueError):
    """A term the fake cannot evaluate faithfully (see the module docstring)."""


def words(text: str) -> tuple[str, ...]:
    """The words PubMed would index in ``text``; a trailing ``*`` is kept for query words."""
    text = "".join(_GREEK.get(c, c) for c in text.lower())
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return tuple(_WORD.findall(text))


def day(text: str | None, default: date) -> date:
    """A YYYY, YYYY/MM or YYYY/MM/DD bound; a partial one covers its whole year or month."""
    if not text:
        return default
    year, month, dom = ([int(x) for x in re.split(r"[/-]", text.strip())] + [0, 0])[:3]
    upper = default == date.max
    if not month:
        return date(year, 12, 31) if upper else date(year, 1, 1)
    if not dom:
        following = date(year + month // 12, month % 12 + 1, 1)
        return following - timedelta(days=1) if upper else date(year, month, 1)
    return date(year, month, dom)


@dataclass
class Doc:
    """One record as the fake's search sees it: word tuples per field, and its dates."""

    fields: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    dates: dict[str, date] = field(default_factory=dict)

    def add(self, name: str, text: str | None) -> None:
        if text and text.strip():
            self.fields.setdefault(name, []).append(words(text))


# Elements whose text is searched as it stands, and the field each feeds.
_ELEMENTS = (("ArticleTitle", "ti"), ("BookTitle", "ti"), ("AbstractText", "ab"), ("Keyword", "kw"),
             ("NameOfSubstance", "nm"), ("PublicationType", "pt"), ("Language", "la"),
             ("Title", "ta"), ("ISOAbbreviation", "ta"), ("MedlineTA", "ta"))


def _text(element: ET.Element | None) -> str:
    return "".join(element.itertext()) if element is not None else ""


def index(xml: bytes, crdt: date) -> Doc:
    """Read one PubmedArticle (or PubmedBookArticle) into the fields the search looks at."""
    root = ET.fromstring(xml)
    doc = Doc(dates={"crdt": crdt})
    for tag, name in _ELEMENTS:
        for element in root.iter(tag):
            doc.add(name, _text(element))
    if "ab" in doc.fields:
        doc.add("filter", "hasabstract")
    for heading in root.iter("MeshHeading"):
        descriptor = heading.find("DescriptorName")
        name = _text(descriptor)
        qualifiers = heading.findall("QualifierName")
        doc.add("mh", name)
        major = descriptor is not None and descriptor.get("MajorTopicYN") == "Y"
        for qualifier in qualifiers:
            doc.add("mh", _text(qualifier))
            doc.add("mh", f"{name}/{_text(qualifier)}")
            if qualifier.get("MajorTopicYN") == "Y":
                major = True
                doc.add("majr", f"{name}/{_text(qualifier)}")
        if major:
            doc.add("majr", name)
        if name in ("Humans", "Female", "Male"):
            doc.add("filter", name)
    for author in root.iter("Author"):
        doc.add("au", _text(author.find("CollectiveName")) or
                f"{_text(author.find('LastName'))} {_text(author.find('Initials'))}")
    revised = root.find(".//DateRevised")
    doc.dates["mdat"] = max(crdt, _date_of(revised) or crdt)
    doc.dates["pdat"] = _date_of(root.find(".//PubDate")) or crdt
    return doc


def _date_of(element: ET.Element | None) -> date | None:
    """The first day of a PubMed date element (Year, Month as a number or a name, Day; MedlineDate)."""
    if element is None:
        return None
    year = _text(element.find("Year")) or _text(element.find("MedlineDate"))[:4]
    if not year.isdigit():
        return None
    month = _text(element.find("Month")).strip()
    month = str(_MONTHS.get(month[:3].lower(), month))
    dom = _text(element.find("Day")).strip()
    if not month.isdigit():
        return date(int(year), 1, 1)
    return date(int(year), int(month), int(dom) if dom.isdigit() else 1)


_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}


# -- the query tree --------------------------------------------------------------------------------
class Node:
    def matches(self, doc: Doc) -> bool:
        raise NotImplementedError


@dataclass
class Phrase(Node):
    """Consecutive words (the last may be truncated) in the fields ``tag`` names."""

    words: tuple[str, ...]
    tag: str = ""

    def matches(self, doc: Doc) -> bool:
        size = len(self.words)
        for name in _FIELDS[self.tag]:
            for value in doc.fields.get(name, ()):
                if name in _WHOLE:
                    spans = [value]
                elif name == "au" and size > 1:  # "smith j" finds Smith JA: initials truncated
                    spans = [value[: size - 1] + tuple(v + "*" for v in value[size - 1 : size])]
                elif name == "au":  # "smith" finds every Smith
                    spans = [value[:1]]
                else:
                    spans = [value[i : i + size] for i in range(len(value) - size + 1)]
                if any(_fits(self.words, span, name == "au" and size > 1) for span in spans):
                    return True
        return False


def _fits(query: tuple[str, ...], value: tuple[str, ...], initials: bool = False) -> bool:
    """Whether ``value`` is the query's words (a ``*`` word: any word it starts)."""
    if len(value) != len(query):
        return False
    if initials:  # the value's last word ends in "*": the query's last word may be its start
        *value_head, last = value
        return _fits(query[:-1], tuple(value_head)) and last[:-1].startswith(query[-1].rstrip("*"))
    return all(v.startswith(q[:-1]) if q.endswith("*") else v == q for q, v in zip(query, value))


@dataclass
class DateRange(Node):
    name: str  # crdt, mdat or pdat
    first: date
    last: date

    def matches(self, doc: Doc) -> bool:
        return self.first <= doc.dates[self.name] <= self.last


@dataclass
class Combined(Node):
    op: str  # AND, OR, NOT
    left: Node
    right: Node

    def matches(self, doc: Doc) -> bool:
        if self.op == "OR":
            return self.left.matches(doc) or self.right.matches(doc)
        if self.op == "AND":
            return self.left.matches(doc) and self.right.matches(doc)
        return self.left.matches(doc) and not self.right.matches(doc)


# -- parsing ---------------------------------------------------------------------------------------
@dataclass
class _Tok:
    kind: str  # ( ) phrase tag : word op
    text: str


def _tokens(term: str) -> Iterator[_Tok]:
    position = 0
    for m in _TOKEN.finditer(term):
        if m.end() == position:
            break
        position = m.end()
        kinds = ("(", ")", "phrase", "tag", ":", "word")
        index_ = next(i for i, g in enumerate(m.groups()) if g is not None)
        kind, text = kinds[index_], m.group(index_ + 1)
        yield _Tok("op" if kind == "word" and text in ("AND", "OR", "NOT") else kind, text)
    if term[position:].strip():
        raise UnsupportedTerm(f"cannot read {term[position:]!r}")


def parse(term: str) -> Node:
    """Read a PubMed term; raise ``UnsupportedTerm`` for syntax or tags the fake does not know."""
    tokens = list(_tokens(term))
    node, rest = _expression(tokens, 0)
    if rest != len(tokens):
        raise UnsupportedTerm(f"unbalanced ')' in {term!r}")
    return node


def _expression(tokens: list[_Tok], i: int) -> tuple[Node, int]:
    node, i = _operand(tokens, i)
    while i < len(tokens) and tokens[i].kind != ")":
        op = "AND"
        if tokens[i].kind == "op":
            op, i = tokens[i].text, i + 1
        right, i = _operand(tokens, i)
        node = Combined(op, node, right)
    return node, i


def _operand(tokens: list[_Tok], i: int) -> tuple[Node, int]:
    if i >= len(tokens) or tokens[i].kind in (")", "op", ":", "tag"):
        found = tokens[i].text if i < len(tokens) else "the end of the term"
        raise UnsupportedTerm(f"expected a word, a phrase or '(' but found {found!r}")
    if tokens[i].kind == "(":
        inner, i = _expression(tokens, i + 1)
        if i >= len(tokens):
            raise UnsupportedTerm("a '(' is never closed")
        return inner, i + 1
    if tokens[i].kind == "phrase":
        text, i = tokens[i].text, i + 1
        tag, i = _tag(tokens, i)
        return _atom(text, tag, tokens, i)
    start = i
    while i < len(tokens) and tokens[i].kind == "word":
        i += 1
    tag, after = _tag(tokens, i)
    if tag or (after < len(tokens) and tokens[after].kind == ":"):
        return _atom(" ".join(t.text for t in tokens[start:i]), tag, tokens, after)
    node: Node = _phrase(tokens[start].text, "")
    for tok in tokens[start + 1 : i]:
        node = Combined("AND", node, _phrase(tok.text, ""))
    return node, i


def _tag(tokens: list[_Tok], i: int) -> tuple[str, int]:
    if i < len(tokens) and tokens[i].kind == "tag":
        return " ".join(tokens[i].text.lower().split()), i + 1
    return "", i


def _atom(text: str, tag: str, tokens: list[_Tok], i: int) -> tuple[Node, int]:
    """A phrase with its tag, or a date (range) when the tag is a date field."""
    if i < len(tokens) and tokens[i].kind == ":":
        if i + 1 >= len(tokens) or tokens[i + 1].kind not in ("phrase", "word"):
            raise UnsupportedTerm("a ':' date range needs a date on each side")
        high, i = tokens[i + 1].text, i + 2
        high_tag, i = _tag(tokens, i)
        tag = tag or high_tag
        if tag not in DATE_FIELDS:
            raise UnsupportedTerm(f"a range needs a date tag such as [crdt] or [dp], not [{tag}]")
        return DateRange(DATE_FIELDS[tag], day(text, date.min), day(high, date.max)), i
    if tag in DATE_FIELDS:
        if not re.fullmatch(r"\d{4}([/-]\d{1,2}){0,2}", text.strip()):
            raise UnsupportedTerm(f"{text!r}[{tag}]: the fake reads only YYYY[/MM[/DD]] dates")
        return DateRange(DATE_FIELDS[tag], day(text, date.min), day(text, date.max)), i
    return _phrase(text, tag), i


def _phrase(text: str, tag: str) -> Node:
    base = tag.removesuffix(":noexp") if tag.split(":")[0] in ("mh", "mesh", "mesh terms", "majr") else tag
    if base not in _FIELDS:
        raise UnsupportedTerm(f"the fake does not search the field [{tag}]")
    if base in ("la", "language"):
        text = _LANGUAGES.get(text.strip().lower(), text)
    found = words(text)  # "Descriptor/qualifier"[mh] too: indexed with the same word breaks
    if not found:
        raise UnsupportedTerm(f"{text!r} holds no word to search")
    if base in ("", "all fields") and found == ("hasabstract",):
        base = "filter"  # PubMed's own word for [filter] hasabstract
    if base in ("filter", "sb") and found not in _FILTERS:
        raise UnsupportedTerm(f"the fake knows only the filters humans, female, male and hasabstract, not {text!r}")
    return Phrase(found, base)
