"""The ``litwatch`` group: settings, the database, and the one place a LitwatchError becomes one line.

Commands live one family per module (``ingest``, ``queries``, ``run``, ``digest``, ``feed``, ``search``) and
are imported only when invoked, so ``litwatch --help`` and ``litwatch search`` start without
loading what other commands need (alembic, requests, lxml, jinja2, matplotlib). Nothing here holds
pipeline logic; the scheduler calls the same core functions.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from litwatch.config import Settings, load_settings
from litwatch.errors import InputError, LitwatchError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from litwatch.files.queries import Problem

# name: (module under litwatch.cli, attribute, its --help summary for `litwatch --help`).
# The summary saves importing every command to list them; tests/test_cli.py pins it to the help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "coverage": ("coverage", "coverage_command",
                 "Show the dates each saved query's term has searched completely, and the gaps left."),
    "digest": ("digest", "digest_command", "Digests of new papers for the research groups in groups.toml."),
    "export": ("search", "export_command",
               "Export the papers matching the same filters as `search` (all of them unless --limit), newest first."),
    "feed": ("feed", "feed_command", "Write GROUP's Atom feed: the papers its digests delivered, newest first."),
    "ingest": ("ingest", "ingest_command",
               "Load PubMed XML files (.xml or .xml.gz, or folders of them) into the store, and tag them."),
    "init": ("ingest", "init", "Create the database, or migrate it to the newest schema."),
    "merge": ("merge", "merge_command",
              "List the preprints linked to their journal version (one work), or undo a link."),
    "queries": ("queries", "queries_group", "Saved PubMed queries (the files in the queries folder)."),
    "run": ("run", "run_command", "Run the saved queries against PubMed and store what is new."),
    "run-due": ("run", "run_due_command",
                "Run the saved queries and digests whose schedule has come since their last run, then exit."),
    "schedule": ("run", "schedule_command",
                 "Run saved queries and digests on their schedules until stopped (a daemon)."),
    "search": ("search", "search_command",
               "Find papers: full text (title, abstract, keywords) and filters, newest first."),
    "stats": ("search", "stats_command", "Count papers over time, per tag, per saved query or per condition."),
    "tag": ("ingest", "tag_command",
            "Tag papers by gene, pathway and condition, or explain why a text or a paper is tagged."),
    "vocab": ("ingest", "vocab_group", "Tag vocabularies (the files in QUERIES_DIR/vocab)."),
}


class _Group(click.Group):
    """Loads a command's module when it is used; prints a LitwatchError as one line on stderr."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"litwatch.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from ``COMMANDS``, as click would print it, without importing them."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LitwatchError as exc:
            click.echo(f"litwatch: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


class _Context:
    def __init__(self, config: Path | None) -> None:
        self._config = config
        self._settings: Settings | None = None
        self._engine: Engine | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(config_path=self._config)
        return self._settings

    def engine(self, *, require_schema: bool = True) -> Engine:
        from litwatch.store import (
            engine as db,  # SQLAlchemy: only for commands that open the store
        )

        if self._engine is None:
            self._engine = db.make_engine(self.settings.database_url,
                                          busy_timeout=self.settings.database_busy_timeout)
            if require_schema:
                db.require_schema(self._engine)
        return self._engine

    def close(self) -> None:
        """Release the database connections when the command ends."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


pass_ctx = click.make_pass_decorator(_Context)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Settings file (default: $LITWATCH_CONFIG or ./litwatch.toml if present).",
)
@click.version_option(package_name="litwatch")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """Literature monitoring: saved PubMed queries, a deduplicated paper store, tags and digests."""
    ctx.obj = _Context(config)
    ctx.call_on_close(ctx.obj.close)


def report_problems(problems: Sequence[Problem]) -> int:
    """Print problems to stderr; return how many are errors."""
    for problem in problems:
        click.echo(str(problem), err=True)
    return sum(1 for p in problems if p.severity == "error")


def require_module(module: str, extra: str) -> None:
    """Refuse, in one line, an option whose optional dependency is not installed."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"needs {module}: pip install 'litwatch[{extra}]'") from exc


def existing_folder(path: Path, option: str) -> None:
    """Refuse a file whose folder does not exist, rather than create folders nobody asked for."""
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{option} {path}: the folder {folder} does not exist; create it or choose another path")
