"""The store: one row per work, deduplicated by PMID and DOI, idempotent, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from litwatch.records import (
    Author,
    Correction,
    Deletion,
    MeshHeading,
    MeshQualifier,
    PaperRecord,
    normalize_doi,
)
from litwatch.store import models, rows, tables
from litwatch.store import papers as store


def paper(pmid: int, doi: str | None = None, revised: dt.date | None = None, title: str = "A title") -> PaperRecord:
    return PaperRecord(
        pmid=pmid,
        doi=normalize_doi(doi),
        title=title,
        date_revised=revised,
        authors=[Author(last_name="Ruiz", fore_name="Ana", initials="A", orcid="0000-0002-1825-0097")],
        mesh=[MeshHeading("D008881", "Migraine Disorders", True, [MeshQualifier("Q000235", "genetics", True)])],
        corrections=[Correction("ErratumIn", 99, "J Test. 2024")],
    )


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def save(engine: Engine, *records: PaperRecord) -> store.SaveResult:
    with engine.begin() as conn:
        return store.save_batch(conn, records)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.1000/ABC.123", "10.1000/abc.123"),
        ("doi:10.1000/abc", "10.1000/abc"),
        ("DOI: 10.1000/abc", "10.1000/abc"),
        ("https://doi.org/10.1000/ABC", "10.1000/abc"),
        ("http://dx.doi.org/10.1000/abc", "10.1000/abc"),
        (" 10.1000/ ab c\n", "10.1000/abc"),
        ("10.1016/S0140-6736(20)30183-5", "10.1016/s0140-6736(20)30183-5"),
        ("not a doi", None),
        ("", None),
        (None, None),
    ],
)
def test_doi_is_normalised_before_comparing(raw: str | None, expected: str | None) -> None:
    assert normalize_doi(raw) == expected


def test_a_new_paper_is_stored_with_its_children(engine: Engine) -> None:
    result = save(engine, paper(1, "10.1/A"))
    assert (result.new, result.updated, result.unchanged) == (1, 0, 0)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT doi, title FROM papers WHERE pmid = 1")).one()
        mesh = conn.execute(sa.text("SELECT descriptor_name, major_topic, qualifiers FROM mesh_headings")).one()
    assert tuple(row) == ("10.1/a", "A title")
    assert (mesh.descriptor_name, bool(mesh.major_topic), mesh.qualifiers) == ("Migraine Disorders", True, "genetics*")
    assert count(engine, "authors") == 1 and count(engine, "corrections") == 1


def test_the_rows_prepared_fill_every_column_of_the_schema() -> None:
    """rows.py lists columns by hand (it must not import SQLAlchemy): it must follow the models."""
    papers = {c.name for c in models.table(models.Paper).columns}
    assert set(rows.PAPER_COLUMNS) | {"first_seen", "updated_at", "content_hash", "deleted_at"} == papers
    for table in models.CHILD_TABLES:
        assert set(rows.CHILD_COLUMNS[table.name]) == {c.name for c in table.columns}, table.name
    assert set(rows.CHILD_COLUMNS) == {t.name for t in models.CHILD_TABLES}


def test_the_writers_core_tables_follow_the_models() -> None:
    """store/tables.py spares the writer the ORM: same tables, columns and column types as the models."""
    core = (tables.papers, tables.paper_pmids, *tables.CHILD_TABLES)
    schema = (models.table(models.Paper), models.table(models.PaperPmid), *models.CHILD_TABLES)
    for clause, table in zip(core, schema, strict=True):
        assert clause.name == table.name
        assert [(c.name, type(c.type), getattr(c.type, "timezone", None)) for c in clause.columns] == [
            (c.name, type(c.type), getattr(c.type, "timezone", None)) for c in table.columns], table.name



def test_times_and_dates_are_stored_as_sqlalchemy_writes_them(engine: Engine) -> None:
    """The store hands rows to the driver itself: what it writes compares equal to the same values
    bound by SQLAlchemy (digests and analysts filter on first_seen; stats group by pub_date)."""
    when = dt.datetime(2026, 11, 23, 19, 40, 23, 282030, tzinfo=dt.UTC)
    record = paper(1, "10.1/a", revised=dt.date(2024, 9, 23))
    record.pub_date = dt.date(2023, 1, 13)
    with engine.begin() as conn:
        store.save_batch(conn, [record], now=when)
    papers, pmids = store.papers, store.paper_pmids
    with engine.connect() as conn:
        found = conn.execute(sa.select(papers.c.pmid).where(
            papers.c.first_seen == when, papers.c.updated_at == when,
            papers.c.pub_date == dt.date(2023, 1, 13), papers.c.date_revised == dt.date(2024, 9, 23))).all()
        seen = conn.execute(sa.select(pmids.c.seen_at)).scalar_one()
        first_seen, pub_date = conn.execute(sa.select(papers.c.first_seen, papers.c.pub_date)).one()
    assert found == [(1,)]
    assert seen.replace(tzinfo=dt.UTC) == when and first_seen.replace(tzinfo=dt.UTC) == when
    assert pub_date == dt.date(2023, 1, 13)


def test_the_same_records_twice_change_nothing(engine: Engine) -> None:
    save(engine, paper(1, "10.1/a"), paper(2))
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT pmid, updated_at FROM papers ORDER BY pmid")).all()
    result = save(engine, paper(1, "10.1/a"), paper(2))
    assert (result.new, result.updated, result.unchanged) == (0, 0, 2)
    with engine.connect() as conn:
        after = conn.execute(sa.text("SELECT pmid, updated_at FROM papers ORDER BY pmid")).all()
    assert before == after
    assert count(engine, "authors") == 2


def test_a_second_pmid_with_a_known_doi_is_merged_not_duplicated(engine: Engine) -> None:
    save(engine, paper(1, "10.1/Same"))
    result = save(engine, paper(2, "https://doi.org/10.1/SAME"))
    assert result.merged == 1 and result.new == 0
    assert count(engine, "papers") == 1
    with engine.begin() as conn:
        assert store.resolve_pmids(conn, [1, 2, 3]) == {1: 1, 2: 1}
    assert save(engine, paper(2, "10.1/same")).unchanged == 1  # re-reading the twin is a no-op


def test_doi_twins_inside_one_batch_make_one_row(engine: Engine) -> None:
    result = save(engine, paper(1, "10.1/x"), paper(2, "doi:10.1/X"))
    assert (result.new, result.merged) == (1, 1)
    assert count(engine, "papers") == 1


def test_a_newer_revision_updates_the_row_and_an_older_one_is_skipped(engine: Engine) -> None:
    save(engine, paper(9997, None, dt.date(2012, 1, 1), title="Old"))
    result = save(engine, paper(9997, "10.1/new", dt.date(2025, 1, 1), title="New"))
    assert result.updated == 1
    result = save(engine, paper(9997, None, dt.date(2012, 1, 1), title="Old"))
    assert result.skipped == {"older revision than the stored copy": 1}
    with engine.connect() as conn:
        assert tuple(conn.execute(sa.text("SELECT doi, title FROM papers")).one()) == ("10.1/new", "New")
    assert count(engine, "authors") == 1  # children replaced, not added


def test_an_update_cannot_steal_another_rows_doi(engine: Engine) -> None:
    save(engine, paper(1, "10.1/a"), paper(2, "10.1/b", dt.date(2020, 1, 1)))
    result = save(engine, paper(2, "10.1/a", dt.date(2021, 1, 1)))
    assert result.updated == 1
    assert "DOI 10.1/a belongs to PMID 1; kept without DOI" in result.skipped
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT doi FROM papers WHERE pmid = 2")).scalar_one() is None


def test_deletion_marks_the_paper_and_keeps_it(engine: Engine) -> None:
    save(engine, paper(1), paper(2))
    with engine.begin() as conn:
        assert store.apply_deletion(conn, Deletion([1, 404])) == 1
        assert store.apply_deletion(conn, Deletion([1])) == 0
    with engine.connect() as conn:
        deleted = conn.execute(sa.text("SELECT pmid FROM papers WHERE deleted_at IS NOT NULL")).scalars().all()
    assert deleted == [1]


def test_a_failed_batch_leaves_nothing_behind(engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            store.save_batch(conn, [paper(1), paper(2)])
            raise RuntimeError("crash mid-load")
    assert count(engine, "papers") == 0 and count(engine, "paper_pmids") == 0
    assert save(engine, paper(1), paper(2)).new == 2


def test_a_paper_stored_by_another_process_meanwhile_is_not_an_error(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs finding the same new paper at once: the second insert yields instead of failing."""
    save(engine, paper(1, "10.1/a"), paper(5, "10.1/x"))
    real_lookup, calls = store._lookup, []

    def stale_view(conn: object, query: object, column: object, keys: object) -> list[object]:
        """The batch's first lookups (owners, stored rows, DOIs) ran before the other commit."""
        calls.append(keys)
        return [] if len(calls) <= 3 else real_lookup(conn, query, column, keys)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_lookup", stale_view)
    result = save(engine, paper(1, "10.1/a"), paper(2, "10.1/A"), paper(3, "10.1/c"), paper(4, "10.1/X"))
    assert (result.new, result.unchanged, result.merged) == (1, 1, 1)  # 3 new; 1 known; 2 twin of 1
    assert result.skipped == {"DOI stored by another process at the same moment; merged on the next run": 1}
    monkeypatch.undo()
    assert count(engine, "papers") == 3 and count(engine, "paper_pmids") == 4
    assert save(engine, paper(4, "10.1/x")).merged == 1  # the next run merges the DOI twin of 5
