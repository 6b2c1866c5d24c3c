"""Counting the store: per month, tag, query, condition; the comorbidity overlap; the plot."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from test_search import (
    AMH,
    MDA5,
    PRESSURE,
    RETRACTED,
    SPINE,
    library_store,
    load_library,
)

from litwatch.cli import main
from litwatch.errors import InputError
from litwatch.store import stats

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def library(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The same ~620 tagged papers as tests/test_search.py, built once per backend, only read."""
    yield from library_store(request.param, tmp_path_factory)


@pytest.fixture
def cli(library: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("LITWATCH_DATABASE_URL", library.url.render_as_string(hide_password=False))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_papers_per_month_add_up(library: Engine) -> None:
    with library.connect() as conn:
        dates = conn.execute(sa.text(
            "SELECT pub_date FROM papers WHERE deleted_at IS NULL AND pub_date IS NOT NULL")).scalars().all()
    expected = Counter(f"{d:%Y-%m}" if isinstance(d, dt.date) else str(d)[:7] for d in dates)
    months = stats.by_month(library)
    assert {c.key: c.papers for c in months} == expected
    assert [c.key for c in months] == sorted(expected)
    december = stats.by_month(library, since=dt.date(2015, 12, 1), until=dt.date(2015, 12, 31))
    assert [(c.key, c.papers) for c in december] == [("2015-12", expected["2015-12"])]


def test_papers_per_tag_query_and_condition(library: Engine) -> None:
    tags = {c.key: (c.kind, c.papers) for c in stats.by_tag(library)}
    assert tags["TNF"] == ("gene", 4)
    assert tags["migraine"] == ("condition", 3)  # PRESSURE tagged from title and abstract counts once
    assert [(c.key, c.papers) for c in stats.counts(library, "condition")] == [("migraine", 3), ("endometriosis", 2)]
    assert [(c.key, c.papers) for c in stats.counts(library, "query")] == [
        ("migraine-immunology", 3), ("endometriosis-genetics", 2)]
    recent = {c.key: c.papers for c in stats.by_tag(library, since=dt.date(2015, 1, 1))}
    assert "FOXP3" not in recent  # SPINE is from 2014


def test_comorbidity_overlap(library: Engine) -> None:
    overlaps = stats.comorbidity(library)
    assert [(o.tag, o.kind) for o in overlaps] == [("FOXP3", "gene"), ("IL-1 signalling", "pathway"), ("TNF", "gene")]
    foxp3, _, tnf = overlaps
    assert dict(foxp3.conditions) == {"endometriosis": 1, "migraine": 1}
    assert (foxp3.papers, foxp3.comorbid_papers) == (1, 1)  # SPINE has both conditions itself
    assert dict(tnf.conditions) == {"endometriosis": 1, "migraine": 1}
    assert (tnf.papers, tnf.comorbid_papers) == (2, 0)  # PRESSURE (migraine), AMH (endometriosis)
    assert "IL6" not in {o.tag for o in stats.comorbidity(library, min_conditions=1)}  # no condition at all
    assert [o.tag for o in stats.comorbidity(library, since=dt.date(2015, 1, 1))] == ["TNF"]


def test_comorbidity_leaves_deleted_papers_out(engine: Engine) -> None:
    load_library(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE papers SET deleted_at = :t WHERE pmid = :p"),
                     {"t": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "p": SPINE})
    assert [o.tag for o in stats.comorbidity(engine)] == ["TNF"]
    assert "FOXP3" not in {c.key for c in stats.by_tag(engine)}
    assert {c.key: c.papers for c in stats.by_query(engine)}["migraine-immunology"] == 2


def test_dates_the_wrong_way_round(library: Engine) -> None:
    with pytest.raises(InputError, match="is after"):
        stats.by_month(library, since=dt.date(2020, 1, 1), until=dt.date(2019, 1, 1))


def test_monthly_series(library: Engine) -> None:
    series = stats.monthly_series(library, "query")
    assert set(series) == {"migraine-immunology", "endometriosis-genetics"}
    assert sum(series["migraine-immunology"].values()) == 3
    assert set(stats.monthly_series(library, "condition")) == {"migraine", "endometriosis"}
    assert len(stats.monthly_series(library, "tag", top=2)) == 2


def test_plot_draws_a_png(library: Engine, tmp_path: Path) -> None:
    path = stats.plot(stats.monthly_series(library, "tag"), tmp_path / "tags.png", title="tags")
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
    with pytest.raises(InputError, match="nothing to plot"):
        stats.plot({}, tmp_path / "empty.png", title="empty")


def test_stats_command_by_month(cli: CliRunner) -> None:
    result = cli.invoke(main, ["stats", "--since", "2015-12-01", "--until", "2015-12-31"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["month", "papers"] and lines[1].startswith("2015-12")
    assert lines[-1].split()[0] == "total"


def test_stats_command_by_condition_shows_the_overlap(cli: CliRunner) -> None:
    result = cli.invoke(main, ["stats", "--by", "condition"])
    assert result.exit_code == 0, result.output
    assert "Genes and pathways in papers of 2 or more conditions:" in result.stdout
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line}
    assert rows["FOXP3"].split()[1:5] == ["gene", "2", "1", "1"]
    assert rows["FOXP3"].endswith("endometriosis 1, migraine 1")
    assert rows["TNF"].split()[1:5] == ["gene", "2", "2", "0"]


def test_stats_command_plots(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    result = cli.invoke(main, ["stats", "--by", "tag", "--plot", "out/tags.png", "--top", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "tags.png").read_bytes().startswith(PNG)
    assert "wrote out/tags.png (3 line(s), one per tag)" in result.stderr
    result = cli.invoke(main, ["stats", "--plot", "chart.jpg"])
    assert result.exit_code == 2 and "must end in .png" in result.stderr


def test_stats_on_an_empty_store(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITWATCH_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(main, ["stats", "--by", "condition"])
    assert result.exit_code == 0, result.output
    assert "nothing to count" in result.stderr and "none" in result.stdout


def test_tagged_pmids_used_here_exist(library: Engine) -> None:
    with library.connect() as conn:
        found = set(conn.execute(sa.text("SELECT pmid FROM papers WHERE pmid IN (:a, :b, :c, :d, :e)"),
                                 {"a": PRESSURE, "b": MDA5, "c": AMH, "d": SPINE, "e": RETRACTED}).scalars())
    assert found == {PRESSURE, MDA5, AMH, SPINE, RETRACTED}
