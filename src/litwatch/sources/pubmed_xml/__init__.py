"""Stream PubMed XML into PaperRecord and Deletion objects, one record in memory at a time.

Reads efetch answers and the baseline/update files (``PubmedArticleSet`` with ``PubmedArticle``,
``PubmedBookArticle`` and ``DeleteCitation``) and the old ``MedlineCitationSet`` format, plain or
gzipped. One module per part of the job:

    stream     opening a path or stream, gzip, the progress-counting reader, is-it-PubMed check
    scan       the pull-parser loop: records in file order, faults with file, line and column
    articles   PubmedArticle / MedlineCitation: authors, abstract, MeSH, identifiers...
    books      PubmedBookArticle (GeneReviews chapters)
    dates      publication dates, seasons and MedlineDates
    text       an element's text, inline markup dropped, whitespace collapsed
"""

from litwatch.sources.pubmed_xml.scan import (
    MAX_RECORD_BYTES,
    READ_BYTES,
    iter_records,
    parse_bytes,
    too_large,
)
from litwatch.sources.pubmed_xml.stream import (
    GZIP_ERRORS,
    HEAD_BYTES,
    ROOT_TAGS,
    CountingReader,
    check_root,
    gzip_fault,
    open_stream,
    root_element,
)

__all__ = [
    "GZIP_ERRORS",
    "HEAD_BYTES",
    "MAX_RECORD_BYTES",
    "READ_BYTES",
    "ROOT_TAGS",
    "CountingReader",
    "check_root",
    "gzip_fault",
    "iter_records",
    "open_stream",
    "parse_bytes",
    "root_element",
    "too_large",
]
