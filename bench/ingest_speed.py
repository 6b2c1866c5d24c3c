"""`litwatch ingest` of a 30,000-record baseline-size file into SQLite, against the floor.

The floor is a bare lxml iterparse scan reading PMID, title and abstract (bench/parse_speed.py);
the targets: ingest in at most 2x the floor, peak memory under 300 MB, and tagging (the shipped
vocabulary in queries/vocab) adding at most 25% to ingest. All run in this process, alternating,
best of N, so machine noise hits them alike. Ingest's peak memory is measured in a child process
so the floor and the file building do not count toward it: the writer's peak plus, for each worker
process, the largest worker's peak (getrusage gives no sum), an upper bound.

    PYTHONPATH=src python bench/ingest_speed.py [n] [runs] [--gzip]

With --gzip the file is a .xml.gz, as PubMed ships its baseline; the floor then reads it through
Python's gzip module too.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_baseline import build  # noqa: E402
from parse_speed import floor_scan  # noqa: E402

from litwatch.pipeline import ingest  # noqa: E402
from litwatch.sources import parse_pool  # noqa: E402
from litwatch.store import engine as db  # noqa: E402

VOCAB = Path(__file__).resolve().parent.parent / "queries" / "vocab"


def ingest_once(path: Path, db_path: Path, tag: bool) -> tuple[float, int]:
    """Ingest into a fresh database; returns (seconds, papers stored)."""
    for leftover in db_path.parent.glob(db_path.name + "*"):
        leftover.unlink()
    engine = db.make_engine(f"sqlite:///{db_path}")
    db.migrate(engine)
    started = time.perf_counter()
    summary = ingest.ingest_paths(engine, [path], vocab_dir=VOCAB if tag else None)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, summary.total.new


def _child(path: Path, db_path: Path, tag: bool, queue: "mp.Queue[tuple[float, int, float]]") -> None:
    seconds, stored = ingest_once(path, db_path, tag)
    # getrusage gives the writer's peak and the largest worker's: count every worker at that peak
    workers = parse_pool.worker_count()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + workers * resource.getrusage(
        resource.RUSAGE_CHILDREN).ru_maxrss
    queue.put((seconds, stored, rss / 1024))


def ingest_in_child(path: Path, db_path: Path, tag: bool) -> tuple[float, int, float]:
    queue: mp.Queue[tuple[float, int, float]] = mp.get_context("fork").Queue()
    proc = mp.get_context("fork").Process(target=_child, args=(path, db_path, tag, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(n: int = 30000, runs: int = 3, gz: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp) / ("baseline.xml.gz" if gz else "baseline.xml"), n)
        print(f"file: {n} records, {path.stat().st_size / 1e6:.0f} MB{' gzipped' if gz else ''}")
        best = {"floor": float("inf"), "ingest": float("inf"), "ingest+tag": float("inf")}
        peak = 0.0
        for run in range(runs):
            started = time.perf_counter()
            floor_scan(path)
            times = {"floor": time.perf_counter() - started}
            for label, tag in (("ingest", False), ("ingest+tag", True)):
                seconds, stored, rss = ingest_in_child(path, Path(tmp) / "bench.sqlite", tag)
                times[label] = seconds
                peak = max(peak, rss)
            best = {k: min(best[k], times[k]) for k in best}
            print(f"run {run + 1}: " + "   ".join(f"{k} {v:6.2f} s" for k, v in times.items())
                  + f"   ({stored} papers, peak RSS {rss:.0f} MB)")
        print(f"ingest / floor = {best['ingest'] / best['floor']:.2f}x (target <= 2.0x)")
        print(f"ingest with tagging / floor = {best['ingest+tag'] / best['floor']:.2f}x; tagging adds "
              f"{100 * (best['ingest+tag'] / best['ingest'] - 1):.0f}% to ingest (target <= 25%)")
        print(f"peak RSS of the writer and its {parse_pool.worker_count()} parser processes at most {peak:.0f} MB "
              f"(target < 300 MB); best of {runs}")


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a != "--gzip"]
    main(*numbers[:2], gz="--gzip" in sys.argv)
