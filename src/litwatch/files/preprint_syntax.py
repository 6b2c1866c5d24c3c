"""Checks of a saved query's ``preprints`` search (Europe PMC syntax), before anything is sent.

Europe PMC writes fields as ``FIELD:value`` (``TITLE_ABS:migraine``, ``AUTH:"Smith J"``), not
PubMed's ``value[tiab]``. litwatch adds ``AND SRC:PPR AND FIRST_IDATE:[from TO to]`` itself, so
the search must not hold a date or source clause. :func:`lint_preprints` is pure: text in,
``(offset, severity, message)`` out, like ``query_syntax.lint_term``, so ``files/queries.py``
turns each offset into the file's line.
"""

from __future__ import annotations

import difflib
import re

# Europe PMC search fields (https://europepmc.org/searchsyntax) a topic search may use
FIELDS = frozenset({
    "TITLE", "ABSTRACT", "TITLE_ABS", "AUTH", "AUTHOR", "AFF", "KW", "MESH", "JOURNAL", "DOI", "EXT_ID",
    "PUB_TYPE", "LANG", "ORGANISM", "DISEASE", "GENE_PROTEIN", "CHEM", "GO_TERM", "METHODS", "RESULTS",
    "INTRO", "DISCUSS", "CONCL", "BODY", "FIG", "TABLE", "SUPPL", "ACK_FUND", "GRANT_AGENCY", "GRANT_ID",
    "PUBLISHER", "HAS_ABSTRACT", "HAS_FT", "OPEN_ACCESS", "LICENSE", "AUTHORID", "AUTHORID_TYPE",
})
ADDED_BY_LITWATCH = frozenset({
    "SRC", "FIRST_IDATE", "FIRST_PDATE", "PUB_YEAR", "E_PDATE", "P_PDATE", "INDEX_DATE", "CREATION_DATE",
    "UPDATE_DATE",
})
_FIELD = re.compile(r"(?<![\w.])([A-Za-z_]+):")
_PUBMED_TAG = re.compile(r"\[[a-z]{2,}(:[a-z]+)?\]", re.IGNORECASE)
_PAIRS = {")": "(", "]": "["}

Lint = tuple[int, str, str]


def _unquoted(text: str) -> tuple[str, int | None]:
    """``text`` with every quoted phrase blanked out, and the offset of a quote never closed."""
    out, opened = list(text), None
    for i, char in enumerate(text):
        if char == '"':
            opened = i if opened is None else None
        elif opened is not None:
            out[i] = " "
    return "".join(out), opened


def lint_preprints(text: str) -> list[Lint]:
    """Every mistake in a Europe PMC search: brackets and quotes, fields, a date or source clause."""
    if not text.strip():
        return [(0, "error", "'preprints' is empty; fix: write the Europe PMC search, e.g. "
                 "preprints = '''TITLE_ABS:migraine'''")]
    plain, open_quote = _unquoted(text)
    found: list[Lint] = []
    if open_quote is not None:
        found.append((open_quote, "error", 'the " opened here is never closed; fix: close the phrase with "'))
    stack: list[tuple[str, int]] = []
    for i, char in enumerate(plain):
        if char in "([":
            stack.append((char, i))
        elif char in _PAIRS:
            if not stack or stack[-1][0] != _PAIRS[char]:
                found.append((i, "error", f"'{char}' closes nothing in the preprints search; fix: remove it "
                              f"or add its '{_PAIRS[char]}'"))
            else:
                stack.pop()
    for char, i in stack:
        found.append((i, "error", f"'{char}' is never closed in the preprints search; fix: add its "
                      f"'{')' if char == '(' else ']'}'"))
    tag = _PUBMED_TAG.search(plain)
    if tag:
        found.append((tag.start(), "error", f"{tag.group(0)} is PubMed syntax; fix: write Europe PMC fields "
                      "before the word, e.g. TITLE_ABS:migraine or TITLE_ABS:\"cluster headache\""))
    for match in _FIELD.finditer(plain):
        name = match.group(1).upper()
        if name in ADDED_BY_LITWATCH:
            found.append((match.start(), "error", f"{name}: is added by litwatch (AND SRC:PPR AND "
                          "FIRST_IDATE:[from TO to]); fix: remove this clause from the preprints search"))
        elif name not in FIELDS:
            close = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f"did you mean {close[0]}:? " if close else ""
            found.append((match.start(), "error", f"unknown Europe PMC field {match.group(1)}:; fix: {hint}"
                          "see https://europepmc.org/searchsyntax for the fields"))
    return sorted(found)
