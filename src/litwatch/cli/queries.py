"""`litwatch queries check` and `queries diff`: the saved query files, the vocabulary and groups.toml,
and what an edited term would change before it goes live."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

import click

from litwatch.cli.app import _Context, pass_ctx
from litwatch.cli.app import report_problems as _report_problems
from litwatch.config import Settings
from litwatch.errors import InputError, LitwatchError
from litwatch.files import groups as groups_mod
from litwatch.files import queries, vocab


def select_queries(settings: Settings, names: Sequence[str], today: dt.date) -> tuple[list[queries.SavedQuery], int]:
    """The valid saved queries named (all when none is), and how many errors the query files have
    (printed); a name with no valid file is an InputError."""
    found, problems = queries.load_queries(settings.queries_dir, today=today)
    bad_files = _report_problems(problems)
    by_name = {q.name: q for q in found}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(
            f"no valid saved query named {unknown[0]!r} in {settings.queries_dir} "
            f"(known: {', '.join(sorted(by_name)) or 'none'}; `litwatch queries check` shows broken files)"
        )
    return ([by_name[n] for n in dict.fromkeys(names)] if names else found), bad_files


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


@queries_group.command(name="diff")
@click.argument("name")
@pass_ctx
def queries_diff(ctx: _Context, name: str) -> None:
    """Show what an edited query's term adds and drops, before it goes live.

    Compares the term in NAME's file with the term its coverage ledger was searched with: PubMed's
    Count of each over the dates the old term covered, and the stored papers the new term would add
    to the query or drop from it. Two searches; nothing is stored.
    """
    from litwatch.pipeline.coverage import diff_query
    from litwatch.sources.eutils import EutilsClient

    (query,), _bad = select_queries(ctx.settings, [name], dt.date.today())
    diff = diff_query(ctx.engine(), EutilsClient.from_settings(ctx.settings), query)
    if not diff.changed:
        click.echo(f"{name}: term unchanged since its last run (sha256 {diff.new_sha256[:12]}); nothing to compare")
        return
    click.echo(f"{name}: term edited since its last run (sha256 {diff.old_sha256[:12]} -> {diff.new_sha256[:12]})")
    if diff.span is None:
        click.echo("the old term covered no dates: nothing to compare")
        return
    lo, hi = diff.span
    click.echo(f"PubMed Count over {lo}..{hi}: old term {diff.old_count}, new term {diff.new_count} "
               f"({diff.new_count - diff.old_count:+d})")
    click.echo(f"stored papers: the query found {diff.found}; the new term adds {len(diff.adds)}, "
               f"drops {len(diff.drops)}")
    for label, pmids in (("adds", diff.adds), ("drops", diff.drops)):
        for pmid in pmids:
            click.echo(f"  {label[:-1]}  {pmid}  {diff.titles.get(pmid, '')}")
    for warning in diff.warnings:
        click.echo(f"{name}: warning: {warning}", err=True)



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

