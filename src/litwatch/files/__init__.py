"""Files librarians edit: saved queries and their PubMed syntax, digest groups, vocabularies."""
