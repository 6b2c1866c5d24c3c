"""Outside sources of papers: the E-utilities client and the PubMed XML parser (sequential and parallel)."""
