"""Importing HGNC's gene table (``hgnc_complete_set.txt`` from genenames.org) as a genes file.

The import writes ``hgnc.tsv`` in the vocabulary folder in the format ``files/vocab.py`` reads,
whole or not at all, keeping approved genes of the chosen locus groups and leaving out aliases
that in running text are nearly always something else (``ambiguous_alias``).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from litwatch.errors import QueryFileError
from litwatch.files.atomic import replacing
from litwatch.files.vocab import GENE_COLUMNS, split_cell

# HGNC locus groups imported by default: pseudogenes are almost never what a paper means.
DEFAULT_LOCUS_GROUPS = frozenset({"protein-coding gene", "non-coding RNA", "other", ""})


def import_hgnc(src: Path, dest: Path, *, locus_groups: frozenset[str] = DEFAULT_LOCUS_GROUPS) -> int:
    """Write the genes file ``dest`` from HGNC's ``hgnc_complete_set.txt``; return the genes written.

    Only ``Approved`` entries of the given locus groups are kept. ``alias_symbol`` and
    ``prev_symbol`` become the aliases and previous symbols, ``alias_name`` and ``prev_name`` the
    other names. Approved symbols are always kept (the stop-list can still drop one); aliases and
    previous symbols that are almost never the gene when seen in a text are not imported: see
    ``ambiguous_alias``.
    """
    src, dest = Path(src), Path(dest)
    with src.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise QueryFileError(src, 1, "empty file: download hgnc_complete_set.txt again")
        columns = {name.strip(): i for i, name in enumerate(header)}
        missing = [c for c in ("symbol", "alias_symbol", "prev_symbol") if c not in columns]
        if missing:
            raise QueryFileError(src, 1, f"not an HGNC complete set: no {', '.join(missing)} column; "
                                 "download hgnc_complete_set.txt (tab-separated) from genenames.org")

        def get(row: list[str], name: str) -> str:
            i = columns.get(name)
            return row[i].strip().strip('"') if i is not None and i < len(row) else ""

        rows: list[str] = []
        for row in reader:
            if not row or not get(row, "symbol"):
                continue
            if get(row, "status") not in ("", "Approved") or get(row, "locus_group") not in locus_groups:
                continue
            symbol = get(row, "symbol")
            aliases = [a for a in split_cell(get(row, "alias_symbol")) if a != symbol and not ambiguous_alias(a)]
            previous = [p for p in split_cell(get(row, "prev_symbol")) if p != symbol and not ambiguous_alias(p)]
            names = split_cell(get(row, "alias_name")) + split_cell(get(row, "prev_name"))
            cells = [symbol, get(row, "name"), "|".join(aliases), "|".join(previous), "|".join(names)]
            rows.append("\t".join(_clean(c) for c in cells))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dest, encoding="utf-8") as out:
        out.write(f"# Imported from {src.name} by litwatch: {len(rows)} approved genes. Re-importing\n"
                  "# overwrites this file; put local additions in another .tsv file (genes.tsv).\n")
        out.write("\t".join(GENE_COLUMNS) + "\n")
        out.writelines(r + "\n" for r in rows)
    return len(rows)


_GREEK_WORD = re.compile(r"(?i)(alpha|beta|gamma|delta|epsilon|kappa|lambda|mu|sigma|tau|theta|zeta)[\W\d]*")
_CAPITAL_NUMBER = re.compile(r"[A-Z]\d+")


def ambiguous_alias(alias: str) -> bool:
    """True for alias shapes that in text are nearly always something else: two characters or
    fewer (CT, ER), a plain word (delta, polymerase, Protease), a Greek letter and a number
    (beta2), or one capital and a number (E2 the hormone, G1 the phase, P19 the mouse strain)."""
    return (len(alias) <= 2 or (alias.isalpha() and alias[1:].islower())
            or bool(_GREEK_WORD.fullmatch(alias)) or bool(_CAPITAL_NUMBER.fullmatch(alias)))


def _clean(cell: str) -> str:
    return " ".join(cell.split())
