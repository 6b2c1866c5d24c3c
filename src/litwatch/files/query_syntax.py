"""PubMed query syntax checks for saved searches: pure functions over the term text.

``lint_term`` finds what a librarian most often gets wrong in a PubMed query: unbalanced
parentheses or quotes, a field tag inside quotes, lower-case ``and``/``or`` (PubMed searches them
as words), unknown field tags, Ovid syntax, a date window that would fight litwatch's own, and an
unparenthesised mix of AND and OR (PubMed reads it left to right).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# Every field name PubMed's EInfo lists (short and full), plus the aliases its search help documents.
_TAGS = """all|all fields|uid|filt|filter|sb|subset|titl|ti|title|mesh|mh|mesh terms|majr|mesh major topic
|jour|ta|journal|so|source|affl|ad|affiliation|ecno|rn|ec/rn number|subs|nm|supplementary concept
|pdat|dp|publication date|date - publication|edat|entry date|date - entry|vol|vi|volume|page|pg
|pagination|ptyp|pt|publication type|lang|la|language|iss|ip|issue|subh|sh|mesh subheading|subheading
|si|secondary source id|mhda|mesh date|date - mesh|tiab|title/abstract|ab|abstract|otrm|ot|other term
|coln|cn|author - corporate|corporate author|cnty|pl|place of publication|papx|pa
|pharmacological action|grnt|gr|grants and funding|grant number|mdat|lr|modification date
|date - modification|cdat|dcom|completion date|date - completion|pid|publisher id|faut|1au
|author - first|first author|first author name|full|au|author|author name|fau|full author name
|author - full|finv|ir|investigator|fir|full investigator name|tt|transliterated title|laut|lastau
|author - last|last author|last author name|ppdt|print publication date|epdt
|electronic publication date|lid|location id|crdt|create date|date - create|book|ed|editor|isbn|pubn
|publisher|aucl|author cluster id|eid|extended pmid|dso|auid|author - identifier|author identifier|ps
|subject - personal name|personal name as subject|cois|conflict of interest statements
|conflict of interest statement|word|tw|text word|text words|p1dat|pmid|pmcid|aid|article identifier
|doi|jid|nlm unique id|own|owner|gene|properties|prop"""
KNOWN_TAGS = frozenset(t.strip() for t in _TAGS.split("|"))
_NOEXP_TAGS = frozenset({"mh", "mesh", "mesh terms", "majr", "mesh major topic", "sh", "subh",
                         "mesh subheading", "subheading", "pa", "papx", "pharmacological action"})
_PROXIMITY_TAGS = frozenset({"tiab", "title/abstract", "ti", "title", "titl", "ad", "affl", "affiliation"})
_WINDOW_TAGS = frozenset({"crdt", "create date", "date - create", "edat", "entry date", "date - entry"})
_DATE_TAGS = _WINDOW_TAGS | {"pdat", "dp", "publication date", "date - publication", "mhda",
                             "mesh date", "date - mesh", "ppdt", "epdt", "lr", "mdat", "dcom", "cdat"}
_RELATIVE_DATE = re.compile(r"last \d+ (day|week|month|year)s?", re.IGNORECASE)
_RELATIVE_FILTER = re.compile(r"y_\d+", re.IGNORECASE)
_OVID = re.compile(r"adj\d*|.+\$\d*|.*\.(ti|ab|tw|kw|mp|sh|pt|fs|kf)(,\w+)*\.|[A-Za-z].*[A-Za-z]/",
                   re.IGNORECASE)
_WORD_END = re.compile(r'[\s()"\[\]]')
_CURLY = re.compile("[\u201c\u201d\u201e]")
MAX_DEPTH = 64  # parentheses nested deeper than this are refused: real queries nest a few levels
_FIX_WINDOW = ("litwatch adds its own entry-date window to every run, and a second one can hide new "
               "papers; fix: remove it (use start = YYYY-MM-DD for where the first run begins)")


def _normal_tag(raw: str) -> str:
    return " ".join(raw.lower().split())


def _tag_problem(raw: str) -> str | None:
    """Why the content of ``[...]`` is not a PubMed field tag, or None when it is one."""
    tag = _normal_tag(raw)
    base, _, suffix = tag.partition(":")
    base = base.strip()
    suffix = suffix.strip()
    if base in KNOWN_TAGS and (not suffix or (suffix == "noexp" and base in _NOEXP_TAGS)
                               or (re.fullmatch(r"~\d+", suffix) and base in _PROXIMITY_TAGS)):
        return None
    if base in KNOWN_TAGS:
        return (f"'[{raw}]': ':{suffix}' does not go with this field; fix: ':noexp' works on MeSH tags "
                "([mh:noexp]) and ':~N' on [tiab], [ti] and [ad] with a quoted phrase")
    close = difflib.get_close_matches(base, sorted(KNOWN_TAGS), n=1, cutoff=0.6)
    hint = f"did you mean [{close[0]}]? " if close else ""
    return (f"unknown field tag [{raw}]: PubMed does not search such a field; "
            f"fix: {hint}use a PubMed tag such as [tiab], [mh], [pt], [au] or [dp]")


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "op" "word" "phrase" "tag" ":"
    text: str
    start: int


def _tokens(term: str, found: list[tuple[int, str, str]]) -> list[_Token]:
    """Split a term into PubMed tokens; quote and bracket faults go straight into ``found``."""
    out: list[_Token] = []
    i = 0
    while i < len(term):
        c = term[i]
        if c.isspace():
            i += 1
        elif c in "()":
            out.append(_Token(c, c, i))
            i += 1
        elif c == '"':
            end = term.find('"', i + 1)
            if end < 0:
                found.append((i, "error", "unbalanced quotes: this '\"' is never closed; "
                              "fix: add the closing '\"' at the end of the phrase"))
                end = len(term)
            out.append(_Token("phrase", term[i + 1:end], i))
            i = end + 1
        elif c == "[":
            end = term.find("]", i + 1)
            if end < 0:
                found.append((i, "error", "this '[' is never closed; fix: finish the field tag, e.g. [tiab]"))
                end = len(term)
            out.append(_Token("tag", term[i + 1:end], i))
            i = end + 1
        elif c == "]":
            found.append((i, "error", "']' without a '[' before it; fix: remove it or write the whole tag, e.g. [tiab]"))
            i += 1
        elif c == ":":
            out.append(_Token(":", c, i))
            i += 1
        else:
            m = _WORD_END.search(term, i)
            end = m.start() if m else len(term)
            word = term[i:end]
            out.append(_Token("op" if word in ("AND", "OR", "NOT") else "word", word, i))
            i = end
    return out


def _word_problems(tok: _Token) -> list[tuple[int, str, str]]:
    word, found = tok.text, []
    if word.lower() in ("and", "or"):
        found.append((tok.start, "error", f"lower-case '{word}' is not an operator: PubMed only reads "
                      f"upper-case AND, OR, NOT as operators and searches '{word}' as a word; fix: write "
                      f"'{word.upper()}', or put the words in double quotes if '{word}' belongs to a phrase"))
    elif _OVID.fullmatch(word):
        found.append((tok.start, "error", f"'{word}' is Ovid syntax, which PubMed searches as plain text; "
                      "fix: use PubMed syntax: * for truncation, [tiab]/[mh] field tags, and "
                      "\"phrase\"[tiab:~N] for proximity"))
    elif "*" in word:
        stem = word[: word.index("*")]
        if word.index("*") != len(word) - 1:
            found.append((tok.start, "warning", f"'{word}': PubMed truncates only at the end of a word; "
                          "fix: put the * last, or spell out the variants joined with OR"))
        elif len(stem) < 4:
            found.append((tok.start, "warning", f"'{word}': PubMed needs at least 4 letters before '*'; "
                          "fix: use a longer stem or spell out the variants joined with OR"))
    return found


def _and_more(places: list[int]) -> str:
    return f" (and {len(places) - 1:,} more like it)" if len(places) > 1 else ""


def lint_term(term: str) -> list[tuple[int, str, str]]:
    """Check a PubMed query; return ``(offset into term, "error" | "warning", message)`` by offset.

    Errors are mistakes PubMed would not report but that silently change the result (or make it
    fail); warnings are legal constructions that are often not what the author meant.
    """
    if not term.strip():
        return [(0, "error", "the term is empty; fix: write the PubMed query, e.g. "
                 "'\"Migraine Disorders\"[Mesh] OR migrain*[tiab]'")]
    found: list[tuple[int, str, str]] = []
    curly = _CURLY.search(term)
    if curly:
        found.append((curly.start(), "error", "curly quotes (\u201c \u201d) are not phrase quotes in "
                      "PubMed, which searches them as text; fix: replace them with straight quotes (\")"))
    tokens = _tokens(term, found)
    opens: list[int] = []
    unmatched: list[int] = []  # ')' without a '(' before them
    levels: list[set[str]] = [set()]  # per open parenthesis: operator kinds seen, "warned" once told
    prev: _Token | None = None
    for tok in tokens:
        expect_operand = prev is None or prev.kind in ("(", "op", ":")
        if tok.kind == "phrase":
            for m in re.finditer(r"\[([^\]]*)\]", tok.text):
                if _tag_problem(m.group(1)) is None:
                    found.append((tok.start + 1 + m.start(), "error",
                                  f"field tag [{m.group(1)}] inside the quotes: PubMed searches it as "
                                  f"literal text, not as a field; fix: move it after the closing quote: "
                                  f"\"{tok.text[:m.start()] + tok.text[m.end():]}\"[{m.group(1)}]"))
        elif tok.kind == "word":
            found.extend(_word_problems(tok))
        elif tok.kind == "tag":
            problem = _tag_problem(tok.text)
            tag = _normal_tag(tok.text)
            if problem:
                found.append((tok.start, "error", problem))
            if prev is None or prev.kind not in ("word", "phrase", ")"):
                found.append((tok.start, "error", f"field tag [{tok.text}] has no search word before it; "
                              "fix: put it right after a word or quoted phrase, e.g. migraine[tiab]"))
            elif prev.kind == ")":
                found.append((tok.start, "warning", f"[{tok.text}] after ')' does not apply to the "
                              "words inside the parentheses; fix: tag each word or phrase inside"))
            elif tag in _WINDOW_TAGS:
                found.append((prev.start, "warning", f"[{tok.text}] date window inside the term: {_FIX_WINDOW}"))
            elif (tag in _DATE_TAGS and _RELATIVE_DATE.fullmatch(prev.text)) or (
                    tag in ("filter", "sb", "filt") and _RELATIVE_FILTER.fullmatch(prev.text)):
                found.append((prev.start, "warning", f"'{term[prev.start:tok.start + len(tok.text) + 2]}' "
                              "is a rolling date window "
                              f"inside the term: {_FIX_WINDOW}"))
            continue  # a tag belongs to the token before it
        elif tok.kind == ":" and expect_operand:
            found.append((tok.start, "error", "':' (a date range) needs a date on each side; "
                          "fix: write e.g. 2020:2025[dp]"))
        elif tok.kind == "(":
            opens.append(tok.start)
            levels.append(set())
            if len(opens) == MAX_DEPTH + 1:
                found.append((tok.start, "error", f"parentheses nested more than {MAX_DEPTH} deep: no PubMed "
                              "query needs this many, and the term was likely generated or pasted twice; "
                              "fix: remove the extra '(' and ')' around the groups"))
        elif tok.kind == ")":
            if prev is not None and prev.kind == "(":
                found.append((prev.start, "error", "empty parentheses '()'; fix: remove them or put terms inside"))
            elif prev is not None and prev.kind == "op":
                found.append((prev.start, "error", f"dangling {prev.text} before ')': it has nothing to "
                              f"combine on its right; fix: add the missing term or remove {prev.text}"))
            if opens:
                opens.pop()
                levels.pop()
            else:
                unmatched.append(tok.start)
        elif tok.kind == "op":
            if expect_operand:
                if prev is None and tok.text == "NOT":
                    found.append((tok.start, "error", "the term starts with NOT: PubMed has nothing to "
                                  "subtract from; fix: put the main search first, e.g. (main terms) NOT (excluded)"))
                elif prev is None or prev.kind == "(":
                    found.append((tok.start, "error", f"{tok.text} at the start of "
                                  f"{'the term' if prev is None else 'a group'} has nothing on its left; "
                                  f"fix: remove it or add the missing term"))
                elif prev.kind == "op":
                    found.append((tok.start, "error", f"'{prev.text} {tok.text}': two operators in a row; "
                                  f"fix: keep one ({'NOT alone excludes' if tok.text == 'NOT' else 'remove the extra one'})"))
            level = levels[-1]
            level.add("or" if tok.text == "OR" else "and")  # NOT narrows like AND: no ambiguity
            if {"or", "and"} <= level and "warned" not in level:
                level.add("warned")
                found.append((tok.start, "warning", "AND and OR at the same level without parentheses: "
                              "PubMed reads left to right, so 'a OR b AND c' means '(a OR b) AND c'; "
                              "fix: add parentheses to say which terms belong together"))
        prev = tok
    if prev is not None and prev.kind in ("op", ":"):
        found.append((prev.start, "error", f"dangling {prev.text} at the end of the term: it has nothing "
                      f"on its right; fix: add the missing term or remove {prev.text}"))
    if unmatched:  # one problem, however many: a term with 10,000 of them gets one line, not 10,000
        found.append((unmatched[0], "error", "unbalanced parentheses: this ')' has no matching '('"
                      f"{_and_more(unmatched)}; fix: remove it or add the '(' where the group starts"))
    if opens:
        found.append((opens[0], "error", f"unbalanced parentheses: this '(' is never closed{_and_more(opens)}; "
                      "fix: add the ')' where the group ends"))
    return sorted(found, key=lambda item: item[0])
