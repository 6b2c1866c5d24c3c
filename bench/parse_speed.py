"""How much the full PubMed parser costs over a bare lxml scan of 30,000 records (bench/make_baseline.py).

The floor is the least any ingest must do: iterparse every record (article, book, old citation),
read PMID, title and abstract text, clear. The full parse is ``litwatch.sources.pubmed_xml.iter_records`` consumed without
keeping the records. Each is timed best of 3 in this process, the two alternating; CPU time is
printed beside wall time because on a shared 2-core machine other work skews the wall clock.
Peak RSS comes from getrusage and covers the whole process. The ratio is then given per file, that is
per record shape (articles with their MeSH, chemicals and references; old MEDLINE citations).

    PYTHONPATH=src python bench/parse_speed.py [n]
"""

from __future__ import annotations

import gzip
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_baseline import build, files  # noqa: E402

from litwatch.sources.pubmed_xml import iter_records  # noqa: E402


def _files(target: Path) -> list[Path]:
    return files(target) if target.is_dir() else [target]


def floor_scan(target: Path) -> int:
    """Bare iterparse of a file, or of every file ``make_baseline`` wrote: the PMID, title and abstract
    text of each record, then clear it (a ``.gz`` file read through Python's gzip, as litwatch reads it)."""
    count = 0
    for path in _files(target):
        source = gzip.open(path, "rb") if path.suffix == ".gz" else str(path)
        for _event, elem in etree.iterparse(
            source, events=("end",), tag=("PubmedArticle", "PubmedBookArticle", "MedlineCitation"),
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True,
        ):
            parent = elem.getparent()
            if parent is not None and parent.tag == "PubmedArticle":
                continue  # read with its PubmedArticle, which ends next
            pmid = next(elem.iter("PMID")).text
            title = next(elem.iter("ArticleTitle", "BookTitle")).text
            abstract = " ".join("".join(t.itertext()) for t in elem.iter("AbstractText"))
            if pmid and (title or abstract):
                count += 1
            elem.clear()
            while elem.getprevious() is not None:
                del parent[0]
    return count


def full_parse(target: Path) -> int:
    count = 0
    for path in _files(target):
        for _record in iter_records(path):
            count += 1
    return count


def timed(func: Callable[[Path], int], path: Path) -> tuple[float, float, int]:
    """Wall-clock and CPU seconds of one run, and the records it counted."""
    wall, cpu = time.perf_counter(), time.process_time()
    count = func(path)
    return time.perf_counter() - wall, time.process_time() - cpu, count


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(n: int = 30000, runs: int = 3) -> None:
    """Build the file, then run floor and full parse alternately so both meet the same machine load."""
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp) / "baseline", n)
        size_mb = sum(p.stat().st_size for p in files(path)) / 1e6
        print(f"file: {n} records, {size_mb:.0f} MB; peak RSS after building {peak_mb():.0f} MB")
        best = {"floor": (float("inf"), float("inf")), "full": (float("inf"), float("inf"))}
        for run in range(runs):
            for label, func in (("floor", floor_scan), ("full", full_parse)):
                wall, cpu, count = timed(func, path)
                best[label] = (min(best[label][0], wall), min(best[label][1], cpu))
                print(f"run {run + 1} {label:5s}: {wall:6.2f} s wall, {cpu:6.2f} s CPU, {count} records, "
                      f"peak RSS {peak_mb():.0f} MB")
        (floor_wall, floor_cpu), (full_wall, full_cpu) = best["floor"], best["full"]
        print(f"best floor (bare iterparse):   {floor_wall:6.2f} s wall  {floor_cpu:6.2f} s CPU")
        print(f"best full (iter_records):      {full_wall:6.2f} s wall  {full_cpu:6.2f} s CPU  "
              f"({n / full_wall:,.0f} records/s)")
        print(f"ratio full/floor: {full_wall / floor_wall:.2f}x wall, {full_cpu / floor_cpu:.2f}x CPU; "
              f"peak RSS {peak_mb():.0f} MB; {os.cpu_count()} cores")
        for part in files(path):  # by record shape: articles (and a book), old MEDLINE citations
            cpu = {label: min(timed(func, part)[1] for _ in range(runs)) for label, func in
                   (("floor", floor_scan), ("full", full_parse))}
            count = floor_scan(part)
            print(f"  {part.name:16} {count:6} records: full {cpu['full'] / count * 1e6:4.0f} us/record, "
                  f"floor {cpu['floor'] / count * 1e6:4.0f} us/record: {cpu['full'] / cpu['floor']:.2f}x CPU")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30000)
