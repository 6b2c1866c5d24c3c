"""The database: the engine, the schema, papers, tags, leases, and what analysts read (search, stats)."""
