"""`litwatch ingest` of baseline-size files of every real record kind into SQLite, against the floor.

The files come from bench/make_baseline.py (every recorded record, shuffled, fresh PMIDs and DOIs:
articles and a book in a ``PubmedArticleSet``, old citations in a ``MedlineCitationSet``). The floor
is a bare lxml iterparse scan reading PMID, title and abstract (bench/parse_speed.py). Targets: ingest
in at most 2x the floor, plain and gzipped, peak memory under 300 MB, tagging adding at most 25%.

Each run times, alternating so machine noise hits them alike, best of N:

- ``floor``: the bare scan, in this process;
- ``ingest`` and ``ingest+tag``: ``pipeline.ingest.ingest_paths`` in a forked child (so the floor
  and the file building do not count toward its memory): the writer's peak plus, for each worker
  process, the largest worker's peak (getrusage gives no sum), an upper bound;
- ``cli``: ``litwatch ingest --no-tag FOLDER`` as a user runs it, a new process after
  ``litwatch init``, start-up included; its peak is the largest single process's (``wait4``), its
  CPU seconds (its own and its parse workers') are printed against the floor's: on a machine
  shared with other work the CPU ratio moves less than the wall-clock one.

    PYTHONPATH=src python bench/ingest_speed.py [n] [runs] [--gzip] [--profile]

With --gzip the files are .xml.gz, as PubMed ships its baseline; the floor reads them through
Python's gzip module too. --profile prints the top of a cProfile of a single-process ingest
(no parse workers) instead, to show which per-record work dominates.
"""

from __future__ import annotations

import cProfile
import multiprocessing as mp
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_baseline import build, files  # noqa: E402
from parse_speed import floor_scan  # noqa: E402

from litwatch.pipeline import ingest  # noqa: E402
from litwatch.sources import parse_pool  # noqa: E402
from litwatch.store import engine as db  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ROOT / "queries" / "vocab"
_SCRIPT = Path(sys.executable).parent / "litwatch"
LITWATCH = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-c", "from litwatch.cli import main; main()"]


def _fresh(db_path: Path) -> str:
    for leftover in db_path.parent.glob(db_path.name + "*"):
        leftover.unlink()
    return f"sqlite:///{db_path}"


def ingest_once(folder: Path, db_path: Path, tag: bool) -> tuple[float, int]:
    """Ingest into a fresh database; returns (seconds, papers stored)."""
    engine = db.make_engine(_fresh(db_path))
    db.migrate(engine)
    started = time.perf_counter()
    summary = ingest.ingest_paths(engine, files(folder), vocab_dir=VOCAB if tag else None)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, summary.total.new


def _child(folder: Path, db_path: Path, tag: bool, queue: "mp.Queue[tuple[float, int, float]]") -> None:
    seconds, stored = ingest_once(folder, db_path, tag)
    # getrusage gives the writer's peak and the largest worker's: count every worker at that peak
    workers = parse_pool.worker_count()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + workers * resource.getrusage(
        resource.RUSAGE_CHILDREN).ru_maxrss
    queue.put((seconds, stored, rss / 1024))


def ingest_in_child(folder: Path, db_path: Path, tag: bool) -> tuple[float, int, float]:
    queue: mp.Queue[tuple[float, int, float]] = mp.get_context("fork").Queue()
    proc = mp.get_context("fork").Process(target=_child, args=(folder, db_path, tag, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def ingest_cli(folder: Path, db_path: Path) -> tuple[float, float, float]:
    """``litwatch ingest --no-tag FOLDER`` as a new process: (seconds, CPU seconds of it and its
    workers, its largest process's peak MB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITWATCH_")}
    env |= {"LITWATCH_DATABASE_URL": _fresh(db_path), "LITWATCH_QUERIES_DIR": str(ROOT / "queries")}
    subprocess.run([*LITWATCH, "init"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    child = subprocess.Popen([*LITWATCH, "ingest", "--no-tag", str(folder)], env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"litwatch ingest failed (exit {child.returncode})")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def profile(folder: Path, db_path: Path) -> None:
    """cProfile a single-process ingest (workers off) and print where its time goes."""
    ingest.PIPELINE_MIN_BYTES = sys.maxsize  # every file parsed in this process
    profiler = cProfile.Profile()
    profiler.runcall(ingest_once, folder, db_path, False)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main(n: int = 10000, runs: int = 3, gz: bool = False, prof: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = build(Path(tmp) / "baseline", n, gz=gz)
        size = sum(p.stat().st_size for p in files(folder)) / 1e6
        print(f"{os.cpu_count()} cores; {n} records in {', '.join(p.name for p in files(folder))}: "
              f"{size:.0f} MB{' gzipped' if gz else ''}")
        if prof:
            profile(folder, Path(tmp) / "bench.sqlite")
            return
        best = {"floor": float("inf"), "ingest": float("inf"), "ingest+tag": float("inf"), "cli": float("inf")}
        peak = cli_peak = 0.0
        cpu = {"floor": float("inf"), "cli": float("inf")}
        for run in range(runs):
            started, cpu_started = time.perf_counter(), time.process_time()
            floor_scan(folder)
            times = {"floor": time.perf_counter() - started}
            cpu["floor"] = min(cpu["floor"], time.process_time() - cpu_started)
            for label, tag in (("ingest", False), ("ingest+tag", True)):
                seconds, stored, rss = ingest_in_child(folder, Path(tmp) / "bench.sqlite", tag)
                times[label] = seconds
                peak = max(peak, rss)
            times["cli"], cli_cpu, cli_rss = ingest_cli(folder, Path(tmp) / "bench.sqlite")
            cpu["cli"] = min(cpu["cli"], cli_cpu)
            cli_peak = max(cli_peak, cli_rss)
            best = {k: min(best[k], times[k]) for k in best}
            print(f"run {run + 1}: " + "   ".join(f"{k} {v:6.2f} s" for k, v in times.items())
                  + f"   ({stored} papers)")
        floor = best["floor"]
        print(f"ingest in process / floor = {best['ingest'] / floor:.2f}x; "
              f"`litwatch ingest --no-tag` as a process / floor = {best['cli'] / floor:.2f}x (target <= 2.0x); "
              f"CPU seconds {cpu['cli']:.2f} / {cpu['floor']:.2f} = {cpu['cli'] / cpu['floor']:.2f}x "
              f"(the work, whatever else the {os.cpu_count()} cores run)")
        print(f"ingest with tagging / floor = {best['ingest+tag'] / floor:.2f}x; tagging adds "
              f"{100 * (best['ingest+tag'] / best['ingest'] - 1):.0f}% to ingest (target <= 25%)")
        print(f"peak RSS: in process, writer and its {parse_pool.worker_count()} parser processes at most "
              f"{peak:.0f} MB; the CLI's largest process {cli_peak:.0f} MB (target < 300 MB); best of {runs}")


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if not a.startswith("--")]
    main(*numbers[:2], gz="--gzip" in sys.argv, prof="--profile" in sys.argv)
