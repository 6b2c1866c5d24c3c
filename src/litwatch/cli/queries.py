"""`litwatch queries check`: the saved query files, the vocabulary and groups.toml."""

from __future__ import annotations

import datetime as dt
import sys

import click

from litwatch.cli.app import _Context, pass_ctx
from litwatch.cli.app import report_problems as _report_problems
from litwatch.config import Settings
from litwatch.errors import LitwatchError
from litwatch.files import groups as groups_mod
from litwatch.files import queries, vocab


@click.group(name="queries")
def queries_group() -> None:
    """Saved PubMed queries (the files in the queries folder)."""



@queries_group.command(name="check")
@pass_ctx
def queries_check(ctx: _Context) -> None:
    """Validate the saved query files, the vocabulary and groups.toml; exit 2 if any has an error."""
    settings = ctx.settings
    folder = settings.queries_dir
    found, problems = queries.load_queries(folder, today=dt.date.today())
    if settings.vocab_dir.is_dir():
        problems += [
            queries.Problem(e.path, e.line, e.message, "error") for e in vocab.check_vocabulary(settings.vocab_dir)
        ]
    groups, group_problems = _load_groups(settings, check_tags=True)
    errors = _report_problems([*problems, *group_problems])
    if errors:
        click.echo(f"{errors} error(s) in {folder} (query files, vocab/, groups.toml)", err=True)
        sys.exit(2)
    warnings = len(problems) + len(group_problems)
    click.echo(f"{len(found)} saved queries in {folder} are valid")
    if settings.vocab_dir.is_dir():
        vocabulary = vocab.load_vocabulary(settings.vocab_dir)
        kinds = {k: len(vocabulary.tags(k)) for k in ("gene", "pathway", "condition")}
        click.echo(
            f"vocabulary {settings.vocab_dir} is valid: {kinds['gene']} genes, {kinds['pathway']} pathways, "
            f"{kinds['condition']} conditions, {len(vocabulary.stoplist)} stop-list entries (version {vocabulary.version})"
        )
    click.echo(f"{len(groups)} digest groups in {settings.groups_file} are valid")
    if warnings:
        click.echo(f"{warnings} warning(s) above", err=True)



def _vocabulary_tags(settings: Settings) -> list[str] | None:
    """The vocabulary's tags, to check group ``tags`` against; None when it cannot be read."""
    try:
        return vocab.load_vocabulary(settings.vocab_dir).tags()
    except (LitwatchError, OSError):
        return None


def _load_groups(settings: Settings, *, check_tags: bool = False) -> tuple[list[groups_mod.Group], list[queries.Problem]]:
    found, _ = queries.load_queries(settings.queries_dir, today=dt.date.today())
    return groups_mod.load_groups(settings.groups_file, found,
                                  vocabulary_tags=_vocabulary_tags(settings) if check_tags else None)

