"""Importing HGNC's gene table from genenames.org as a genes file.

Two real layouts are read, told apart by their header: the complete set
(``hgnc_complete_set.txt``: ``symbol``, ``name``, ``locus_group``, ``alias_symbol``,
``prev_symbol``, ``alias_name``, ``prev_name``, ``entrez_id``; lists joined by ``|``) and the
custom download (``Approved symbol``, ``Approved name``, ``Locus type``, ``Alias symbols``,
``Previous symbols``, ``NCBI Gene ID(supplied by NCBI)``; lists joined by ``, ``). The import
writes ``hgnc.tsv`` in the format ``files/vocab.py`` reads, whole or not at all, keeping the
approved genes of the chosen locus groups (protein-coding genes unless told otherwise: HGNC's
pseudogenes and RNA genes lend their aliases to text that means something else, ``p16`` a histone
pseudogene), their NCBI Gene ID (so dictionary tags and PubTator3's agree), and leaving out
aliases that in running text are nearly always something else (``ambiguous_alias``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

from litwatch.errors import QueryFileError
from litwatch.files.atomic import replacing
from litwatch.files.vocab import GENE_COLUMNS, IMPORTED_MARK, split_cell

LOCUS_GROUPS = ("protein-coding gene", "non-coding RNA", "pseudogene", "other")
DEFAULT_LOCUS_GROUPS = frozenset({"protein-coding gene"})

# The custom download's column names for the complete set's (genenames.org "Custom downloads").
_CUSTOM = {"Approved symbol": "symbol", "Approved name": "name", "Status": "status",
           "Locus group": "locus_group", "Locus type": "locus_type", "Alias symbols": "alias_symbol",
           "Previous symbols": "prev_symbol", "NCBI Gene ID(supplied by NCBI)": "entrez_id",
           "NCBI Gene ID": "entrez_id", "NCBI gene ID": "entrez_id"}
_PSEUDOGENE_TYPES = frozenset({"pseudogene", "T cell receptor pseudogene", "immunoglobulin pseudogene"})


def locus_group_of(locus_type: str) -> str:
    """HGNC's locus group for a locus type, for the custom download that gives only the type."""
    if locus_type == "gene with protein product":
        return "protein-coding gene"
    if locus_type.startswith("RNA,"):
        return "non-coding RNA"
    return "pseudogene" if locus_type in _PSEUDOGENE_TYPES else "other"


def import_hgnc(src: Path, dest: Path, *, locus_groups: frozenset[str] = DEFAULT_LOCUS_GROUPS) -> int:
    """Write the genes file ``dest`` from an HGNC download; return the genes written.

    Only ``Approved`` entries of the given locus groups are kept. Alias and previous symbols
    become the aliases and previous symbols, alias and previous names the other names, and
    ``entrez_id`` the ``ncbi_gene`` column. Approved symbols are always kept (the stop-list can
    still drop one); aliases and previous symbols that are almost never the gene when seen in a
    text are not imported: see ``ambiguous_alias``.
    """
    src, dest = Path(src), Path(dest)
    unknown = sorted(locus_groups - set(LOCUS_GROUPS))
    if unknown:
        raise QueryFileError(src, None, f"unknown locus group {', '.join(unknown)}: "
                             f"choose among {', '.join(LOCUS_GROUPS)}")
    with src.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if header is None:
            raise QueryFileError(src, 1, "empty file: download hgnc_complete_set.txt again")
        columns, split = _columns([name.strip() for name in header])
        missing = [c for c in ("symbol", "alias_symbol", "prev_symbol") if c not in columns]
        if missing:
            raise QueryFileError(src, 1, f"not an HGNC complete set: no {', '.join(missing)} column; "
                                 "download hgnc_complete_set.txt (tab-separated) from genenames.org")

        def get(row: list[str], name: str) -> str:
            i = columns.get(name)
            return row[i].strip().strip('"') if i is not None and i < len(row) else ""

        rows: list[str] = []
        for row in reader:
            symbol = get(row, "symbol") if row else ""
            if not symbol or get(row, "status") not in ("", "Approved"):
                continue
            group = get(row, "locus_group") or locus_group_of(get(row, "locus_type"))
            if group not in locus_groups:
                continue
            aliases = [a for a in split(get(row, "alias_symbol")) if a != symbol and not ambiguous_alias(a)]
            previous = [p for p in split(get(row, "prev_symbol")) if p != symbol and not ambiguous_alias(p)]
            names = split_cell(get(row, "alias_name")) + split_cell(get(row, "prev_name"))
            cells = [symbol, get(row, "name"), "|".join(aliases), "|".join(previous), "|".join(names),
                     get(row, "entrez_id")]
            rows.append("\t".join(_clean(c) for c in cells))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dest, encoding="utf-8") as out:
        out.write(f"{IMPORTED_MARK} {src.name} by litwatch: {len(rows)} approved genes "
                  f"({', '.join(sorted(locus_groups))}). Re-importing overwrites this file; put local\n"
                  "# additions in another .tsv file (genes.tsv), whose entries win over these.\n")
        out.write("\t".join(GENE_COLUMNS) + "\n")
        out.writelines(r + "\n" for r in rows)
    return len(rows)


def _columns(header: list[str]) -> tuple[dict[str, int], Callable[[str], list[str]]]:
    """Column positions under the complete set's names, and how the layout separates a list."""
    if "Approved symbol" in header:
        return {_CUSTOM[n]: i for i, n in enumerate(header) if n in _CUSTOM}, _split_custom
    return {n: i for i, n in enumerate(header)}, split_cell


def _split_custom(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


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
