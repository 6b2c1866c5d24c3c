"""Publication dates as PubMed prints them: Year/Month/Day, seasons, and free-text MedlineDates."""

from __future__ import annotations

import datetime as dt
import re

from lxml.etree import _Element

from litwatch.records import PaperRecord
from litwatch.sources.pubmed_xml.text import flat

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m.lower(): i for i, m in enumerate(_MONTH_NAMES, start=1)}
# A season is dated from its first month in the printed year; winter from January, since
# "2000 Winter" may have begun in December 1999 and only the year is certain.
_SEASONS = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 1}
_DATE_TOKENS = re.compile(r"[\s\-/,;.]+")


def read_pub_date(pub_date: _Element, record: PaperRecord) -> None:
    """Fill pub_year, pub_date (first day of what is known) and pub_date_text (as printed)."""
    year = month = day = season = None
    for child in pub_date:
        text = flat(child)
        tag = child.tag
        if tag == "Year":
            year = text
        elif tag == "Month":
            month = text
        elif tag == "Day":
            day = text
        elif tag == "Season":
            season = text
        elif tag == "MedlineDate":
            record.pub_date_text = text or None
            record.pub_year, record.pub_date = _loose_date(text)
            return
    if year is None or not year.isdigit():
        record.pub_date_text = " ".join(p for p in (year, month or season) if p) or None
        return
    month_no = _month(month) if month else None
    parts = [year]
    if month_no:
        parts.append(_MONTH_NAMES[month_no - 1])
        if day and day.isdigit():
            parts.append(str(int(day)))
    elif season or month:
        parts.append(season or month or "")
        month_no = _month(_DATE_TOKENS.split(season or month or "")[0])
    record.pub_year = int(year)
    record.pub_date_text = " ".join(parts)
    record.pub_date = _date(record.pub_year, month_no, int(day) if day and day.isdigit() else None)


def use_article_date(article_date: _Element, record: PaperRecord) -> None:
    when = read_ymd(article_date)
    if when is not None:
        record.pub_year, record.pub_date = when.year, when
        record.pub_date_text = record.pub_date_text or f"{when.year} {_MONTH_NAMES[when.month - 1]} {when.day}"


def _loose_date(text: str) -> tuple[int | None, dt.date | None]:
    """Read a MedlineDate: '2015 Oct-Dec', '1998 Dec-1999 Jan', '2000 Spring', '2019 Jan 10-17'."""
    tokens = [t for t in _DATE_TOKENS.split(text) if t]
    for i, token in enumerate(tokens):
        if len(token) == 4 and token.isdigit():
            break
    else:
        return None, None
    year, month, day = int(token), None, None
    if i + 1 < len(tokens):
        month = _month(tokens[i + 1])
        if month and i + 2 < len(tokens) and tokens[i + 2].isdigit() and len(tokens[i + 2]) <= 2:
            day = int(tokens[i + 2])
    elif i > 0:
        month = _month(tokens[i - 1])  # "Summer 2004"
    return year, _date(year, month, day)


def _month(text: str) -> int | None:
    """'Oct', 'October', '10' or a season name -> month number."""
    if text.isdigit():
        number = int(text)
        return number if 1 <= number <= 12 else None
    lower = text.lower()
    return _MONTHS.get(lower[:3]) or _SEASONS.get(lower)


def _date(year: int, month: int | None, day: int | None) -> dt.date | None:
    try:
        return dt.date(year, month or 1, day or 1)
    except ValueError:
        try:
            return dt.date(year, month or 1, 1)
        except ValueError:
            return None


def read_ymd(el: _Element) -> dt.date | None:
    """A Year/Month/Day element (DateCompleted, PubMedPubDate, ArticleDate) as a date."""
    year = month = day = None
    for child in el:
        tag = child.tag
        if tag == "Year":
            year = child.text
        elif tag == "Month":
            month = child.text
        elif tag == "Day":
            day = child.text
            break  # Hour and Minute may follow; they are not kept
    if not year:
        return None
    try:
        return dt.date(int(year), int(month) if month else 1, int(day) if day else 1)
    except ValueError:
        pass
    year = year.strip()
    return _date(int(year), _month(month.strip()) if month else None, None) if year.isdigit() else None
