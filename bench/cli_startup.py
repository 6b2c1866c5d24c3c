"""How long the ``litwatch`` command takes to start, as a user runs it: a new process each time.

Target (issue 14): the fixed cost of any command (interpreter, imports, settings, schema check) under
0.25 s: ``litwatch --version``, ``--help``, ``search --help``, ``search ...``, a one-record ingest and ``init`` of an up-to-date store. Every
median is also printed as a ratio to ``python -c pass`` measured in the same run, so a slower or
busier machine shows as a slower baseline; the core count is printed with them.

Each command runs twice over: with ``PYTHONDONTWRITEBYTECODE=1`` and no cached bytecode for
litwatch's own modules (they are compiled on every run, as in this development environment), and
with bytecode cached (in a temporary PYTHONPYCACHEPREFIX, warmed by one run, as after a normal
``pip install``). Installed libraries keep their bytecode in both. ``search`` runs against a
small SQLite store built from the recorded fixtures (``litwatch init`` then ``ingest``).

    python bench/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "pubmed" / "metapub"
ONE_RECORD = FIXTURES / "38833988.xml"
# the console script pip installs beside this Python, as a user runs it; else the same entry point
_SCRIPT = Path(sys.executable).parent / "litwatch"
LITWATCH = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-c", "from litwatch.cli import main; main()"]
COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "litwatch --version": [*LITWATCH, "--version"],
    "litwatch --help": [*LITWATCH, "--help"],
    "litwatch search migraine": [*LITWATCH, "search", "migraine"],
    "litwatch search --help": [*LITWATCH, "search", "--help"],
    # a record already stored: nothing to write, so what is timed is the fixed cost of ingest
    "litwatch ingest (one record)": [*LITWATCH, "ingest", "--no-tag", str(ONE_RECORD)],
    # the schema is up to date: one query, no alembic
    "litwatch init": [*LITWATCH, "init"],
    # the floors: SQLAlchemy alone, search's imports (SQLAlchemy, its ORM, the models), ingest's (Core only)
    "import sqlalchemy": [sys.executable, "-c", "import sqlalchemy"],
    "import litwatch.store.search": [sys.executable, "-c", "import litwatch.store.search"],
    "import litwatch.pipeline.ingest": [sys.executable, "-c", "import litwatch.pipeline.ingest"],
}
TARGET = 0.25


def timed(args: Sequence[str], env: Mapping[str, str], runs: int) -> tuple[float, float]:
    """Median wall-clock and CPU (user + system) seconds of ``runs`` runs of ``args``, after a warm-up.

    CPU time says more than wall-clock time on a machine shared with other work.
    """
    wall, cpu = [], []
    for n in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if n:
            wall.append(elapsed)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per command and mode (default 20)")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="litwatch-startup-") as tmp:
        drop = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
        base = {k: v for k, v in os.environ.items() if not k.startswith("LITWATCH_") and k not in drop}
        base |= {"LITWATCH_DATABASE_URL": f"sqlite:///{tmp}/lit.sqlite", "COLUMNS": "100",
                 "LITWATCH_QUERIES_DIR": str(ROOT / "queries")}
        modes = {
            "no bytecode (PYTHONDONTWRITEBYTECODE=1)": base | {"PYTHONDONTWRITEBYTECODE": "1"},
            "bytecode cached": base | {"PYTHONPYCACHEPREFIX": f"{tmp}/pycache"},
        }
        setup = modes["no bytecode (PYTHONDONTWRITEBYTECODE=1)"]
        subprocess.run([*LITWATCH, "init"], env=setup, check=True, capture_output=True)
        subprocess.run([*LITWATCH, "ingest", str(FIXTURES)], env=setup, check=True, capture_output=True)
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {runs} runs each, "
              f"Python {sys.version.split()[0]}, {' '.join(LITWATCH[:1])}")
        for mode, env in modes.items():
            print(f"\n{mode}")
            baseline = None
            for name, args in COMMANDS.items():
                median, cpu = timed(args, env, runs)
                baseline = baseline or median
                verdict = "  under target" if median < TARGET else "  OVER target"
                verdict += f" (CPU {'under' if cpu < TARGET else 'OVER'})"
                print(f"  {name:30} median {median * 1000:6.0f} ms ({cpu * 1000:4.0f} ms CPU)  "
                      f"{median / baseline:5.1f}x baseline{verdict if name.startswith('litwatch') else ''}")
        print(f"\nload average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
