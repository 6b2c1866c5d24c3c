"""litwatch: literature monitoring for comorbid-condition research.

Saved PubMed queries are run through NCBI E-utilities, papers are deduplicated by PMID and DOI into
a SQLAlchemy store, tagged by gene and pathway, and sent to research groups as digests.
"""

__version__ = "0.1.0"
