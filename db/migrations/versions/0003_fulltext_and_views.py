"""full-text search over papers, views for the common joins, indexes for analysts' queries

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00

Full-text search covers each paper's title, abstract and keywords and is kept in sync by database
triggers, so every writer keeps it current without knowing it:

- SQLite: ``papers_fts``, an FTS5 table (porter stemming, accents folded), rowid = PMID.
- PostgreSQL: ``papers_fts (pmid, document tsvector)`` with a GIN index, maintained by
  statement-level triggers (one pass per statement, so COPY and bulk loads stay fast).

A new paper is indexed when the store registers its PMID in ``paper_pmids`` (the store writes that
row after the paper's keywords), so its text is tokenized once. Indexing on the ``papers`` insert
would re-index the whole abstract for every keyword written after it, which more than doubles the
cost of ingest. Revised titles, abstracts and keywords, and deleted papers, update the index.
Tags are not indexed: the tag filter reads ``paper_tags``, so re-tagging is seen at once.

Both are backfilled from the rows already stored. The views are plain SQL that runs on both.
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


VIEWS = {
    # one row per paper and tag (a tag found in the title and the abstract is one row; `sources` counts them)
    "v_paper_tags": """
        SELECT p.pmid, p.doi, p.title, p.journal, p.pub_year, p.pub_date, p.retracted,
               t.tag, t.kind, t.sources
        FROM (SELECT paper_pmid, tag, kind, count(*) AS sources
              FROM paper_tags GROUP BY paper_pmid, tag, kind) t
        JOIN papers p ON p.pmid = t.paper_pmid
        WHERE p.deleted_at IS NULL
    """,
    # one row per saved query and paper it found
    "v_query_papers": """
        SELECT h.query_name, h.first_found_at, h.last_found_at,
               p.pmid, p.doi, p.title, p.journal, p.pub_year, p.pub_date, p.retracted
        FROM query_hits h
        JOIN papers p ON p.pmid = h.paper_pmid
        WHERE p.deleted_at IS NULL
    """,
    # every ordered pair of different tags found in the same papers (each pair appears both ways round)
    "v_tag_cooccurrence": """
        SELECT a.tag, a.kind, b.tag AS other_tag, b.kind AS other_kind,
               count(DISTINCT a.paper_pmid) AS papers
        FROM paper_tags a
        JOIN paper_tags b ON b.paper_pmid = a.paper_pmid AND b.tag <> a.tag
        JOIN papers p ON p.pmid = a.paper_pmid
        WHERE p.deleted_at IS NULL
        GROUP BY a.tag, a.kind, b.tag, b.kind
    """,
    # genes and pathways per condition: the comorbidity overlap is a GROUP BY tag HAVING count(*) >= 2 away
    "v_tag_conditions": """
        SELECT g.tag, g.kind, c.tag AS condition, count(DISTINCT g.paper_pmid) AS papers
        FROM paper_tags g
        JOIN paper_tags c ON c.paper_pmid = g.paper_pmid AND c.kind = 'condition'
        JOIN papers p ON p.pmid = g.paper_pmid
        WHERE p.deleted_at IS NULL AND g.kind IN ('gene', 'pathway')
        GROUP BY g.tag, g.kind, c.tag
    """,
}

INDEXES = (
    # the tag filter and tag counts read (tag -> papers) from the index alone
    "CREATE INDEX ix_paper_tags_tag_paper_pmid ON paper_tags (tag, paper_pmid)",
    # the few papers PubMed deleted, so counts can leave them out without reading every paper
    "CREATE INDEX ix_papers_deleted ON papers (pmid) WHERE deleted_at IS NOT NULL",
)

KEYWORDS = "(SELECT group_concat(keyword, ' ; ') FROM (SELECT keyword FROM keywords WHERE paper_pmid = {p} ORDER BY position))"

SQLITE_UP = (
    "CREATE VIRTUAL TABLE papers_fts USING fts5(title, abstract, keywords, "
    "tokenize='porter unicode61 remove_diacritics 2')",
    # A new paper is indexed once, when the store registers its PMID: that row is written after
    # the paper's keywords, so title, abstract and keywords are tokenized together, once.
    f"""CREATE TRIGGER papers_fts_register AFTER INSERT ON paper_pmids WHEN new.pmid = new.paper_pmid BEGIN
        INSERT OR REPLACE INTO papers_fts (rowid, title, abstract, keywords)
        SELECT pmid, title, abstract, {KEYWORDS.format(p='new.pmid')} FROM papers WHERE pmid = new.pmid;
    END""",
    # Revisions and deletions: only rows already indexed are touched.
    """CREATE TRIGGER papers_fts_update AFTER UPDATE OF title, abstract ON papers
    WHEN old.title IS NOT new.title OR old.abstract IS NOT new.abstract BEGIN
        UPDATE papers_fts SET title = new.title, abstract = new.abstract WHERE rowid = new.pmid;
    END""",
    """CREATE TRIGGER papers_fts_delete AFTER DELETE ON papers BEGIN
        DELETE FROM papers_fts WHERE rowid = old.pmid;
    END""",
    f"""CREATE TRIGGER papers_fts_keyword_insert AFTER INSERT ON keywords BEGIN
        UPDATE papers_fts SET keywords = {KEYWORDS.format(p='new.paper_pmid')} WHERE rowid = new.paper_pmid;
    END""",
    f"""CREATE TRIGGER papers_fts_keyword_update AFTER UPDATE ON keywords BEGIN
        UPDATE papers_fts SET keywords = {KEYWORDS.format(p='old.paper_pmid')} WHERE rowid = old.paper_pmid;
        UPDATE papers_fts SET keywords = {KEYWORDS.format(p='new.paper_pmid')} WHERE rowid = new.paper_pmid;
    END""",
    f"""CREATE TRIGGER papers_fts_keyword_delete AFTER DELETE ON keywords BEGIN
        UPDATE papers_fts SET keywords = {KEYWORDS.format(p='old.paper_pmid')} WHERE rowid = old.paper_pmid;
    END""",
    f"""INSERT INTO papers_fts (rowid, title, abstract, keywords)
        SELECT pmid, title, abstract, {KEYWORDS.format(p='papers.pmid')} FROM papers""",
)

SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS papers_fts_keyword_delete",
    "DROP TRIGGER IF EXISTS papers_fts_keyword_update",
    "DROP TRIGGER IF EXISTS papers_fts_keyword_insert",
    "DROP TRIGGER IF EXISTS papers_fts_delete",
    "DROP TRIGGER IF EXISTS papers_fts_update",
    "DROP TRIGGER IF EXISTS papers_fts_register",
    "DROP TABLE IF EXISTS papers_fts",
)

# 'english' stems as SQLite's porter tokenizer does; title and keywords weigh A, the abstract B
PG_DOCUMENT = """setweight(to_tsvector('english', coalesce({t}.title, '')), 'A')
    || setweight(to_tsvector('english', coalesce({t}.abstract, '')), 'B')
    || setweight(to_tsvector('english', coalesce((SELECT string_agg(k.keyword, ' ; ' ORDER BY k.position)
                                                  FROM keywords k WHERE k.paper_pmid = {t}.pmid), '')), 'A')"""

POSTGRES_UP = (
    """CREATE TABLE papers_fts (
        pmid integer PRIMARY KEY REFERENCES papers (pmid) ON DELETE CASCADE,
        document tsvector NOT NULL
    )""",
    "CREATE INDEX ix_papers_fts_document ON papers_fts USING gin (document)",
    f"""CREATE FUNCTION litwatch_fts_register() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO papers_fts (pmid, document)
        SELECT p.pmid, {PG_DOCUMENT.format(t='p')}
        FROM papers p WHERE p.pmid IN (SELECT pmid FROM new_rows WHERE pmid = paper_pmid)
        ON CONFLICT (pmid) DO UPDATE SET document = excluded.document;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION litwatch_fts_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_TABLE_NAME = 'papers' THEN
            UPDATE papers_fts f SET document = {PG_DOCUMENT.format(t='p')}
            FROM papers p WHERE p.pmid = f.pmid AND f.pmid IN (
                SELECT n.pmid FROM new_rows n JOIN old_rows o ON o.pmid = n.pmid
                WHERE n.title IS DISTINCT FROM o.title OR n.abstract IS DISTINCT FROM o.abstract);
        ELSIF TG_OP = 'INSERT' THEN
            UPDATE papers_fts f SET document = {PG_DOCUMENT.format(t='p')}
            FROM papers p WHERE p.pmid = f.pmid AND f.pmid IN (SELECT paper_pmid FROM new_rows);
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE papers_fts f SET document = {PG_DOCUMENT.format(t='p')}
            FROM papers p WHERE p.pmid = f.pmid AND f.pmid IN (SELECT paper_pmid FROM old_rows);
        ELSE
            UPDATE papers_fts f SET document = {PG_DOCUMENT.format(t='p')}
            FROM papers p WHERE p.pmid = f.pmid AND f.pmid IN (
                SELECT paper_pmid FROM new_rows UNION SELECT paper_pmid FROM old_rows);
        END IF;
        RETURN NULL;
    END $$""",
    # statement-level: one pass per statement however many rows it wrote (COPY and bulk loads)
    """CREATE TRIGGER papers_fts_register AFTER INSERT ON paper_pmids
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION litwatch_fts_register()""",
    """CREATE TRIGGER papers_fts_update AFTER UPDATE ON papers
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION litwatch_fts_refresh()""",
    """CREATE TRIGGER papers_fts_keyword_insert AFTER INSERT ON keywords
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION litwatch_fts_refresh()""",
    """CREATE TRIGGER papers_fts_keyword_update AFTER UPDATE ON keywords
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION litwatch_fts_refresh()""",
    """CREATE TRIGGER papers_fts_keyword_delete AFTER DELETE ON keywords
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION litwatch_fts_refresh()""",
    f"""INSERT INTO papers_fts (pmid, document) SELECT p.pmid, {PG_DOCUMENT.format(t='p')} FROM papers p""",
)

POSTGRES_DOWN = (
    "DROP TRIGGER IF EXISTS papers_fts_keyword_delete ON keywords",
    "DROP TRIGGER IF EXISTS papers_fts_keyword_update ON keywords",
    "DROP TRIGGER IF EXISTS papers_fts_keyword_insert ON keywords",
    "DROP TRIGGER IF EXISTS papers_fts_update ON papers",
    "DROP TRIGGER IF EXISTS papers_fts_register ON paper_pmids",
    "DROP FUNCTION IF EXISTS litwatch_fts_refresh()",
    "DROP FUNCTION IF EXISTS litwatch_fts_register()",
    "DROP TABLE IF EXISTS papers_fts",
)


# Newest first without sorting (search) and papers per month without reading the (large) paper
# rows (stats). SQLite walks (pub_date, rowid) backwards with its NULLs last already; PostgreSQL
# needs the order spelled out.
DATE_INDEX = {
    "sqlite": "CREATE INDEX ix_papers_pub_date_live ON papers (pub_date) WHERE deleted_at IS NULL",
    "postgresql": "CREATE INDEX ix_papers_pub_date_live ON papers (pub_date DESC NULLS LAST, pmid DESC) "
                  "WHERE deleted_at IS NULL",
}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_UP if postgres else SQLITE_UP:
        op.execute(statement)
    for statement in (*INDEXES, DATE_INDEX["postgresql" if postgres else "sqlite"]):
        op.execute(statement)
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body.strip()}")
    if postgres:
        op.execute("ANALYZE papers_fts")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.execute("DROP INDEX IF EXISTS ix_papers_deleted")
    op.execute("DROP INDEX IF EXISTS ix_papers_pub_date_live")
    op.execute("DROP INDEX IF EXISTS ix_paper_tags_tag_paper_pmid")
    for statement in POSTGRES_DOWN if postgres else SQLITE_DOWN:
        op.execute(statement)
