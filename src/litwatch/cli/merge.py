"""`litwatch merge`: the preprints made one work with their journal versions, and undoing a link."""

from __future__ import annotations

import click

from litwatch.cli import tables
from litwatch.cli.app import _Context, pass_ctx
from litwatch.clock import utcnow
from litwatch.store import works

_links_table = tables.Layout(narrow=("id", "preprint", "pmid", "link", "state", "title"),
                             clip=("title", "journal"))


@click.command(name="merge")
@tables.wide_option
@click.option("--undo", "undo", type=int, metavar="ID",
              help="Undo link ID: the preprint and the paper are two works again, and are never linked again.")
@pass_ctx
def merge_command(ctx: _Context, undo: int | None) -> None:
    """List the preprints linked to their journal version (one work), or undo a link.

    A link is strong when Europe PMC links the two or the published DOI is stored, weak when
    only the title and first author match (within two years): check weak links, and undo a
    wrong one with --undo ID.
    """
    engine = ctx.engine()
    if undo is not None:
        with engine.begin() as conn:
            link = works.undo_link(conn, undo, now=utcnow())
        click.echo(f"undid link {link.id}: {link.preprint} and PMID {link.published_pmid} are two works again")
        return
    with engine.connect() as conn:
        found = works.list_links(conn)
    if not found:
        click.echo("no preprint is linked to a journal version yet")
        return
    rows = [(link.id, link.preprint, link.published_pmid, link.journal or "", link.strength, link.evidence,
             "undone" if link.undone else "one work", link.preprint_title) for link in found]
    click.echo(_links_table(("id", "preprint", "pmid", "journal", "link", "evidence", "state", "title"), rows))
