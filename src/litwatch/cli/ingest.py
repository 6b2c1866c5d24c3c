"""`litwatch init`, `ingest`, `tag` and `vocab`: building the store and tagging it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from litwatch.cli import tables
from litwatch.cli.app import _Context, pass_ctx
from litwatch.clock import utcnow
from litwatch.errors import InputError
from litwatch.pipeline import ingest
from litwatch.store import engine as db

if TYPE_CHECKING:
    from litwatch.tagging.tagger import Tagger

# read, new, updated, deleted and skipped say whether a load worked; --wide adds unchanged, merged
_ingest_table = tables.Layout(narrow=("file", "read", "new", "updated", "deleted", "skipped"), clip_left=("file",))
_table = tables.table


@click.command()
@pass_ctx
def init(ctx: _Context) -> None:
    """Create the database, or migrate it to the newest schema."""
    engine = ctx.engine(require_schema=False)
    revision = db.migrate(engine)
    click.echo(f"database {db.redact_url(ctx.settings.database_url)} is at schema revision {revision}")


def _print_ingest(summary: ingest.IngestSummary) -> None:
    headers = ("file", "read", "new", "updated", "unchanged", "merged", "deleted", "skipped")
    rows: list[Sequence[object]] = []
    for report in summary.files:
        r = report.result
        rows.append((str(report.path), r.read, r.new, r.updated, r.unchanged, r.merged, r.deleted, sum(r.skipped.values())))
    t = summary.total
    if len(rows) > 1:
        rows.append(("total", t.read, t.new, t.updated, t.unchanged, t.merged, t.deleted, sum(t.skipped.values())))
    click.echo(_ingest_table(headers, rows))
    for reason, count in sorted(t.skipped.items()):
        click.echo(f"skipped {count}: {reason}")
    papers, tags = summary.annotated
    if papers:
        files = "file" if len(summary.files) == 1 else "files"
        click.echo(f"PubTator3 annotations of {papers} paper{'' if papers == 1 else 's'} stored from the {files}: "
                   f"{tags} tag{'' if tags == 1 else 's'}, no request made")
    for error in summary.errors:
        click.echo(f"litwatch: error: {error}", err=True)



@click.command(name="ingest")
@tables.wide_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--batch-size", default=ingest.BATCH_SIZE, show_default=True, help="Records per transaction.")
@click.option("--no-tag", is_flag=True, help="Do not tag the papers (the vocabulary is in QUERIES_DIR/vocab).")
@pass_ctx
def ingest_command(ctx: _Context, paths: tuple[Path, ...], batch_size: int, no_tag: bool) -> None:
    """Load PubMed XML files (.xml or .xml.gz, or folders of them) into the store, and tag them.

    PubTator3 BioC JSON files (.json, as its publications/export/biocjson answers) load too: the
    papers the store lacks, and every paper's PubTator3 annotations, without asking PubTator3.
    """
    files = ingest.expand_paths(paths)
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: no such file (give .xml or .xml.gz files, folders holding them, "
                         "or PubTator3 .json files)")
    engine = ctx.engine()
    total = sum(p.stat().st_size for p in files)
    vocab_dir = None if no_tag else ctx.settings.vocab_dir
    limit = ctx.settings.max_record_mb * 1_048_576
    if sys.stderr.isatty():
        with click.progressbar(length=total, label="ingesting", file=sys.stderr) as bar:
            summary = ingest.ingest_paths(
                engine, files, progress=bar.update, batch_size=batch_size, vocab_dir=vocab_dir, max_record_bytes=limit
            )
    else:
        summary = ingest.ingest_paths(engine, files, batch_size=batch_size, vocab_dir=vocab_dir, max_record_bytes=limit)
    _print_ingest(summary)
    if summary.errors:
        sys.exit(2)


@click.command(name="tag")
@click.option("--all", "retag", is_flag=True, help="Re-tag every paper in the store (after a vocabulary edit); "
              "PubTator3 tags stay.")
@click.option("--pubtator", is_flag=True, help="Ask PubTator3 about every stored paper it has not annotated yet, "
              "and replace their gene tags with its annotations.")
@click.option("--explain", metavar="TEXT", help="Show every match in TEXT ('-' reads standard input).")
@click.option("--explain-pmid", "explain_pmid", type=int, metavar="PMID",
              help="Show a stored paper's tags: field, origin (pubtator3 or dictionary), identifier, span.")
@click.option("--jsonl", is_flag=True, help='Read {"id": ..., "text": ...} lines on stdin; write one result line each.')
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output of --explain and --explain-pmid.")
@click.option("--batch-size", default=1000, show_default=True, help="Papers per transaction with --all.")
@pass_ctx
def tag_command(ctx: _Context, retag: bool, pubtator: bool, explain: str | None, explain_pmid: int | None,
                jsonl: bool, fmt: str, batch_size: int) -> None:
    """Tag papers by gene, pathway and condition, or explain why a text or a paper is tagged."""
    from litwatch.store import tags as tag_store  # the ORM models: not for `litwatch ingest`

    if sum((retag, pubtator, explain is not None, explain_pmid is not None, jsonl)) != 1:
        raise InputError("give exactly one of --all, --pubtator, --explain TEXT, --explain-pmid PMID, --jsonl "
                         "(see litwatch tag --help)")
    if explain_pmid is not None:
        _explain_paper(ctx.engine(), explain_pmid, fmt)
        return
    tagger = tag_store.load_tagger(ctx.settings.vocab_dir)
    if tagger is None:
        raise InputError(f"no vocabulary folder at {ctx.settings.vocab_dir} (set LITWATCH_QUERIES_DIR)")
    if pubtator:
        _ask_pubtator(ctx, tagger)
        return
    if explain is not None:
        text = sys.stdin.read() if explain == "-" else explain
        if fmt == "json":
            click.echo(json.dumps([dataclasses.asdict(m) for m in tagger.match(text)], ensure_ascii=False))
            return
        rows = [(e.match.tag, e.match.kind, e.match.text, e.match.start, e.match.end, e.status)
                for e in tagger.explain(text)]
        click.echo(_table(("tag", "kind", "text", "start", "end", "status"), rows) if rows else "no matches")
        return
    if jsonl:
        for number, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                text = item["text"]
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"standard input line {number}: expected {{\"id\": ..., \"text\": ...}} ({exc})") from exc
            matches = [dataclasses.asdict(m) for m in tagger.match(str(text))]
            click.echo(json.dumps({"id": item.get("id"), "matches": matches}, ensure_ascii=False))
        return
    engine = ctx.engine()
    if sys.stderr.isatty():
        with click.progressbar(length=_paper_count(engine), label="tagging", file=sys.stderr) as bar:
            papers, tags = tag_store.retag_all(engine, tagger, batch_size=batch_size, progress=bar.update)
    else:
        papers, tags = tag_store.retag_all(engine, tagger, batch_size=batch_size)
    click.echo(f"tagged {papers} papers: {tags} tags (vocabulary version {tagger.version})")


def _explain_paper(engine: Engine, pmid: int, fmt: str) -> None:
    """`tag --explain-pmid`: the stored tags of one paper, and where each came from."""
    from litwatch.store import tags as tag_store

    with engine.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM papers WHERE pmid = :p"), {"p": pmid}).first():
            raise InputError(f"PMID {pmid} is not in the store (litwatch search finds stored papers)")
        tags = tag_store.stored_tags(conn, pmid)
    if fmt == "json":
        click.echo(json.dumps(tags, ensure_ascii=False))
        return
    rows = [(t["tag"], t["kind"], t["source"], t["origin"], t["identifier"] or "",
             "" if t["span_start"] is None else f"{t['span_start']}-{t['span_end']}", t["matched_text"])
            for t in tags]
    headers = ("tag", "kind", "field", "origin", "identifier", "span", "text")
    click.echo(_table(headers, rows) if rows else f"PMID {pmid} has no tags")


def _ask_pubtator(ctx: _Context, tagger: Tagger) -> None:
    """`tag --pubtator`: PubTator3's annotations of every stored paper that lacks them, whatever its age."""
    from litwatch.pipeline import pubtator as pubtator_step
    from litwatch.sources.pubtator import PubtatorClient

    client = PubtatorClient.from_settings(ctx.settings)
    if not client.enabled:
        raise InputError("PubTator3 is off (LITWATCH_PUBTATOR=off): unset it to ask PubTator3")
    receipt = pubtator_step.annotate(ctx.engine(), client, tagger, now=utcnow(), max_age=None,
                                     ask_again=dt.timedelta(0), strict=True)
    click.echo(f"{receipt.line()}: {receipt.tags} tags")


def _paper_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM papers")).scalar_one())


@click.group(name="vocab")
def vocab_group() -> None:
    """Tag vocabularies (the files in QUERIES_DIR/vocab)."""


@vocab_group.command(name="import-hgnc")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Genes file to write (default: QUERIES_DIR/vocab/hgnc.tsv).")
@click.option("--locus-group", "locus_groups", multiple=True,
              type=click.Choice(["protein-coding gene", "non-coding RNA", "pseudogene", "other"]),
              help="HGNC locus group to import (repeat for several; default: protein-coding gene).")
@click.option("--all", "all_groups", is_flag=True, help="Import every locus group, pseudogenes included.")
@pass_ctx
def vocab_import_hgnc(ctx: _Context, source: Path, output: Path | None, locus_groups: tuple[str, ...],
                      all_groups: bool) -> None:
    """Import HGNC's hgnc_complete_set.txt (or a custom download) from genenames.org as a genes file."""
    dest = output or ctx.settings.vocab_dir / "hgnc.tsv"
    from litwatch.tagging import hgnc

    groups = frozenset(hgnc.LOCUS_GROUPS if all_groups else locus_groups or hgnc.DEFAULT_LOCUS_GROUPS)
    written = hgnc.import_hgnc(source, dest, locus_groups=groups)
    click.echo(f"wrote {written} genes to {dest}; run `litwatch tag --all` to re-tag the store")
