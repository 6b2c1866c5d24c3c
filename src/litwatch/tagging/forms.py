"""How the tagger sees text and terms: one character for each character, and a term's written forms.

``normalize`` folds a text so that every character becomes exactly one character (Greek letters
the Latin capital HGNC uses for them, accents dropped, punctuation and odd spaces a space), so an
offset into the folded text is an offset into the text as given. ``variants`` lists the ways a
term is written (``IL1B``: ``IL-1B``, ``IL-1β``, ``IL1beta``, ``IL 1 beta``), generated once when
the tagger's automata are built. Both are pure functions.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

# Greek letter (lower or upper case, and the variant glyphs seen in PubMed) -> HGNC Latin letter.
_GREEK_NAMES = {
    "alpha": "A", "beta": "B", "gamma": "G", "delta": "D", "epsilon": "E", "zeta": "Z",
    "eta": "H", "theta": "Q", "iota": "I", "kappa": "K", "lambda": "L", "mu": "M", "nu": "N",
    "xi": "X", "omicron": "O", "pi": "P", "rho": "R", "sigma": "S", "tau": "T", "upsilon": "U",
    "phi": "F", "chi": "C", "psi": "Y", "omega": "W",
}
_GREEK_CHARS: dict[str, str] = {}
for _name, _small, _capital in zip(
    _GREEK_NAMES, "αβγδεζηθικλμνξοπρστυφχψω", "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ", strict=True
):
    _GREEK_CHARS[_small] = _GREEK_CHARS[_capital] = _GREEK_NAMES[_name]
_GREEK_CHARS.update({"ς": "S", "ϐ": "B", "ϵ": "E", "ϑ": "Q", "ϰ": "K", "ϕ": "F", "ϱ": "R",
                     "ϖ": "P", "µ": "M", "⍺": "A"})  # µ is the micro sign; ⍺ appears in real titles
_LATIN_TO_GREEK_NAME = {latin: name for name, latin in reversed(_GREEK_NAMES.items())}
# Latin capitals that HGNC symbols use for a Greek letter often enough to accept it spelled out.
_GREEKABLE = frozenset("ABGDEKZQH")

# NUL is kept: it separates the items of a list scanned as one text (ITEMS), and no term holds it
_ASCII_FOLD = str.maketrans({chr(i): " " for i in range(1, 128) if not chr(i).isalnum()})
_ASCII_FOLD_LOWER = str.maketrans({chr(i): " " if not chr(i).isalnum() else chr(i).lower() for i in range(1, 128)})
ITEMS = " \x00 "
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
GREEK_RE = re.compile("[" + "".join(_GREEK_CHARS) + "]")
_FOLDED: dict[str, str] = {}
_FOLDED_LOWER: dict[str, str] = {}

def _fold_char(char: str) -> str:
    """The one character the matcher sees for a non-ASCII one."""
    folded = _FOLDED.get(char)
    if folded is None:
        if char in _GREEK_CHARS:
            folded = _GREEK_CHARS[char]
        elif char.isalnum():
            base = unicodedata.normalize("NFKD", char)[0]
            folded = base if base.isascii() and base.isalnum() else char
        else:
            folded = " "
        _FOLDED[char] = folded
    return folded


def _fold_match(m: re.Match[str]) -> str:
    return _fold_char(m.group())


def canon(text: str) -> str:
    if not text.isascii():
        text = _NON_ASCII.sub(_fold_match, text)
    return text.translate(_ASCII_FOLD)


def _fold_lower_match(m: re.Match[str]) -> str:
    char = m.group()
    folded = _FOLDED_LOWER.get(char)
    if folded is None:
        folded = _FOLDED_LOWER[char] = lower(_fold_char(char))
    return folded


def canon_lower(text: str) -> str:
    """``lower(canon(text))`` in one pass over the text: what the tagger's automaton scans."""
    if not text.isascii():
        text = _NON_ASCII.sub(_fold_lower_match, text)
    return text.translate(_ASCII_FOLD_LOWER)


def lower(canon: str) -> str:
    low = canon.lower()
    if len(low) != len(canon):  # a few letters (İ) lower-case to two characters
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in canon)
    return low


def normalize(text: str) -> tuple[str, list[int]]:
    """The text as the matcher sees it, and for each of its characters the offset in ``text``.

    Every replacement is one character for one, so the map is the identity; callers that keep
    it stay correct if a later normalisation changes lengths.
    """
    return canon(text), list(range(len(text) + 1))


# --- building the automata ------------------------------------------------------------------

_GREEK_CLASS = "".join(_GREEK_CHARS)
_NAME_ALT = "|".join(sorted(_GREEK_NAMES, key=len, reverse=True))
_TOKEN = re.compile(
    f"(?P<g>[{_GREEK_CLASS}])|(?P<l>(?:(?![{_GREEK_CLASS}])[^\\W\\d_])+)|(?P<d>\\d+)|(?P<s> +)|(?P<o>.)"
)
_SPELLED_INSIDE = re.compile(rf"(?<=[A-Z])({_NAME_ALT})(?=[A-Z]|$)|^({_NAME_ALT})(?=[A-Z])")

# A written form: the text, and the offsets in it that must be Greek letters in the matched text.
Form = tuple[str, tuple[int, ...]]


@dataclass
class _Tok:
    kind: str  # l letters, d digits, g Greek letter (written or spelled), m Latin letter HGNC uses for one
    text: str  # the Latin letter for g and m
    sep: str = ""  # the spaces written before it ("" when attached)


def _canon_term(phrase: str) -> str:
    """A term folded like text, except that Greek letters stay (the tokenizer needs them)."""
    if not phrase.isascii():
        phrase = _NON_ASCII.sub(lambda m: m.group() if m.group() in _GREEK_CHARS else _fold_char(m.group()),
                                phrase)
    return phrase.translate(_ASCII_FOLD)


def _tokens(phrase: str, case_sensitive: bool) -> list[_Tok]:
    toks: list[_Tok] = []
    sep = ""
    for m in _TOKEN.finditer(_canon_term(phrase).strip()):
        kind, text = m.lastgroup or "o", m.group()
        if kind == "s":
            sep = text
            continue
        if kind == "g":
            toks.append(_Tok("g", _GREEK_CHARS[text], sep))
        elif kind == "l":
            toks.extend(_letter_tokens(text, sep))
        else:
            toks.append(_Tok(kind, text, sep))
        sep = ""
    if case_sensitive:
        _mark_final_greek(toks)
    return toks


def _letter_tokens(word: str, sep: str) -> list[_Tok]:
    """Split spelled Greek letters off a run of letters: ``beta``, ``TNFalpha``, ``NFkappaB``."""
    if word.lower() in _GREEK_NAMES:
        return [_Tok("g", _GREEK_NAMES[word.lower()], sep)]
    out: list[_Tok] = []
    pos = 0
    for m in _SPELLED_INSIDE.finditer(word):
        if m.start() > pos:
            out.append(_Tok("l", word[pos:m.start()], "" if out else sep))
        out.append(_Tok("g", _GREEK_NAMES[m.group().lower()], "" if out else sep))
        pos = m.end()
    if pos < len(word):
        out.append(_Tok("l", word[pos:], "" if out else sep))
    return out


def _mark_final_greek(toks: list[_Tok]) -> None:
    """Let the last capital of a symbol stand for a Greek letter (IL1B, TNFA, GSK3B, TGFB1, ERA),
    but not when the letter is all the symbol has before it (A4 is not alpha-4)."""
    i = len(toks) - 1
    while i >= 0 and toks[i].kind == "d":
        i -= 1
    if i < 0 or toks[i].kind != "l":
        return
    run = toks[i].text
    if run[-1] not in _GREEKABLE or not run.isupper() or len(run) == 2 or (len(run) == 1 and i == 0):
        return
    if len(run) == 1:
        toks[i] = _Tok("m", run, toks[i].sep)
    else:
        toks[i:i + 1] = [_Tok("l", run[:-1], toks[i].sep), _Tok("m", run[-1])]


def _forms(tok: _Tok) -> list[Form]:
    if tok.kind == "g":
        return [(_LATIN_TO_GREEK_NAME[tok.text], ()), (tok.text, (0,))]
    if tok.kind == "m":
        name = _LATIN_TO_GREEK_NAME[tok.text]
        forms: list[Form] = [(tok.text, ()), (name, ()), (tok.text, (0,))]
        if not tok.sep:  # IL1B is also written IL-1 beta and IL-1 β, never IL-1 B
            forms += [(" " + name, ()), (" " + tok.text, (1,))]
        return forms
    return [(tok.text, ())]


def _seps(prev: _Tok, tok: _Tok, first_gap: bool) -> list[str]:
    """How the gap before a token may be written: nothing, a space (or hyphen), or either."""
    if tok.sep not in ("", " "):
        return [tok.sep]  # "Receptors, Interleukin-1": the comma and space stay two characters
    if tok.kind == "m" and not tok.sep:
        return [""]  # the spaced forms are among the token's own forms
    if tok.kind in "gm" or prev.kind in "gm":
        return ["", " "]
    if prev.kind == "l" and tok.kind == "d" and len(prev.text) > 1 and (first_gap or tok.sep):
        return ["", " "]  # IL6, IL-6, IL 6; but P2 is not "P 2" (nor "P=2")
    if tok.sep and prev.kind == "d" and tok.kind == "l":  # 5-HT1B, 5HT1B
        return [" ", ""]
    return [tok.sep]


def variants(phrase: str, case_sensitive: bool, limit: int = 48) -> list[Form]:
    """The written forms of a term as the matcher sees text, each with the offsets that must be
    Greek letters in the text (``TNF-α`` gives ``TNF A`` needing a Greek letter at 4)."""
    toks = _tokens(phrase, case_sensitive)
    if not toks:
        return []
    choices: list[list[Form]] = [_forms(toks[0])]
    for i, (prev, tok) in enumerate(zip(toks, toks[1:])):
        choices.append([(s, ()) for s in _seps(prev, tok, i == 0)])
        choices.append(_forms(tok))
    size = 1
    for c in choices:
        size *= len(c)
    if size > limit:  # long names: separators as written; only the Greek letters vary
        choices = [c if i % 2 == 0 else [(toks[(i + 1) // 2].sep, ())] for i, c in enumerate(choices)]
    out: dict[Form, None] = {}
    for combo in itertools.islice(itertools.product(*choices), limit * 4):
        text, need = "", list[int]()
        for form, greek in combo:
            need.extend(len(text) + g for g in greek)
            text += form
        out[(text, tuple(need))] = None
    return list(out)
