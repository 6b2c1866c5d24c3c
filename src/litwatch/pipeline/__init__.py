"""The pipelines: saved queries run against PubMed (``run``) and PubMed XML files loaded (``ingest``)."""
