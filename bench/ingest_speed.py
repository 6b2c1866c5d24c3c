"""`litwatch ingest` of a 30,000-record baseline-size file into SQLite, against the floor.

The floor is a bare lxml iterparse scan reading PMID, title and abstract (bench/parse_speed.py);
the target is ingest in at most 2x the floor, peak memory under 300 MB. Both run in this process,
alternating, best of N, so machine noise hits them alike. Ingest's peak memory is measured in a
child process so the floor and the file building do not count toward it.

    PYTHONPATH=src python bench/ingest_speed.py [n] [runs]
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

from litwatch import db, ingest  # noqa: E402


def ingest_once(path: Path, db_path: Path) -> tuple[float, int]:
    """Ingest into a fresh database; returns (seconds, papers stored)."""
    db_path.unlink(missing_ok=True)
    engine = db.make_engine(f"sqlite:///{db_path}")
    db.migrate(engine)
    started = time.perf_counter()
    summary = ingest.ingest_paths(engine, [path])
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, summary.total.new


def _child(path: Path, db_path: Path, queue: "mp.Queue[tuple[float, int, float]]") -> None:
    seconds, stored = ingest_once(path, db_path)
    queue.put((seconds, stored, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def ingest_in_child(path: Path, db_path: Path) -> tuple[float, int, float]:
    queue: mp.Queue[tuple[float, int, float]] = mp.get_context("fork").Queue()
    proc = mp.get_context("fork").Process(target=_child, args=(path, db_path, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(n: int = 30000, runs: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp) / "baseline.xml", n)
        print(f"file: {n} records, {path.stat().st_size / 1e6:.0f} MB")
        floor_best = ingest_best = float("inf")
        peak = 0.0
        for run in range(runs):
            started = time.perf_counter()
            floor_scan(path)
            floor = time.perf_counter() - started
            seconds, stored, rss = ingest_in_child(path, Path(tmp) / "bench.sqlite")
            floor_best, ingest_best, peak = min(floor_best, floor), min(ingest_best, seconds), max(peak, rss)
            print(f"run {run + 1}: floor {floor:6.2f} s   ingest {seconds:6.2f} s ({stored} papers)   "
                  f"ingest peak RSS {rss:.0f} MB")
        print(f"ingest / floor = {ingest_best / floor_best:.2f}x (target <= 2.0x; best of {runs}: "
              f"{ingest_best:.2f} s vs {floor_best:.2f} s); ingest peak RSS {peak:.0f} MB (target < 300 MB)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
