"""Books and chapters: a ``PubmedBookArticle`` (GeneReviews and the like)."""

from __future__ import annotations

from lxml.etree import _Element

from litwatch.records import Author, PaperRecord, PublicationType, normalize_doi
from litwatch.sources.pubmed_xml.articles import (
    new_record,
    read_abstract,
    read_article_ids,
    read_authors,
    read_keywords,
    read_pages,
    read_wrapped,
)
from litwatch.sources.pubmed_xml.dates import read_pub_date, read_ymd
from litwatch.sources.pubmed_xml.text import append_text, flat, pcdata


def read_book_article(elem: _Element) -> PaperRecord:
    return read_wrapped(elem, "BookDocument", _book_document, "PubmedBookData")


def _book_document(doc: _Element) -> PaperRecord:
    """A GeneReviews-style book or chapter: the chapter title if any, else the book's."""
    record = new_record(doc)
    record.kind = "book"
    book_title = publisher = None
    editors: list[Author] = []
    for child in doc:
        tag = child.tag
        if tag == "Book":
            for part in child:
                if part.tag == "BookTitle":
                    book_title = flat(part)
                elif part.tag == "Publisher":
                    publisher = next((flat(p) for p in part if p.tag == "PublisherName"), None)
                elif part.tag == "PubDate":
                    read_pub_date(part, record)
                elif part.tag == "AuthorList":
                    editors = read_authors(part)
                elif part.tag == "Volume":
                    record.volume = pcdata(part)
        elif tag == "ArticleTitle":
            record.title = flat(child)
        elif tag == "VernacularTitle":
            record.vernacular_title = flat(child) or None
        elif tag == "AuthorList":
            record.authors = read_authors(child)
        elif tag == "Abstract":
            record.abstract_sections = read_abstract(child)
        elif tag == "Language":
            append_text(record.languages, child)
        elif tag == "PublicationType":
            record.publication_types.append(PublicationType(child.get("UI"), pcdata(child) or ""))
        elif tag == "KeywordList":
            read_keywords(child, record)
        elif tag == "Pagination":
            record.pages = read_pages(child)
        elif tag == "ArticleIdList":
            read_article_ids(child, record, prefer=False)
        elif tag == "ELocationID" and record.doi is None and child.get("EIdType") == "doi":
            record.doi = normalize_doi(child.text)
        elif tag == "DateRevised":
            record.date_revised = read_ymd(child)
    if record.title:
        record.journal = book_title
    else:
        record.title, record.journal = book_title or "", publisher
    if not record.authors:
        record.authors = editors
    return record
