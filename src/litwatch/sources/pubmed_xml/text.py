"""The text of an element: inline markup (<i>, <sup>, MathML) dropped, XML whitespace collapsed."""

from __future__ import annotations

import re

from lxml.etree import _Element

_MATHML = "{http://www.w3.org/1998/Math/MathML}"
_SPACES = re.compile("[ \t\n\r\xa0]+")


def pcdata(el: _Element) -> str | None:
    """Text of an element the DTD allows no markup in, whitespace collapsed; None when empty."""
    text: str | None = el.text
    if text is None:
        return None
    if "  " in text or "\n" in text or "\t" in text or "\r" in text or "\xa0" in text:
        text = _SPACES.sub(" ", text)
    return text.strip(" ") or None


def append_text(target: list[str], el: _Element) -> None:
    text = flat(el)
    if text:
        target.append(text)


def flat(el: _Element) -> str:
    """The element's text with inline markup (<i>, <sup>, MathML) dropped and whitespace collapsed.

    Runs of XML whitespace and no-break spaces become one space; other Unicode spaces (thin,
    hair...) are kept as the authors wrote them.
    """
    text: str | None
    if len(el):
        parts: list[str] = []
        _collect(el, parts)
        text = "".join(parts)
    else:
        text = el.text
        if text is None:
            return ""
    if "  " in text or "\n" in text or "\t" in text or "\r" in text or "\xa0" in text:
        text = _SPACES.sub(" ", text)
    return text.strip(" ")


def _collect(el: _Element, parts: list[str], math: bool = False) -> None:
    """Gather text and tails in document order; inside MathML, whose tokens are indented, strip each."""
    text = el.text
    if text:
        parts.append(text.strip() if math else text)
    for child in el:
        tag = child.tag
        if isinstance(tag, str):  # not an unresolved entity reference: those stay out of the text
            _collect(child, parts, math or tag.startswith(_MATHML))
        tail = child.tail
        if tail:
            parts.append(tail.strip() if math else tail)
