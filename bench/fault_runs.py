"""`litwatch run` as users meet it under faults: 10 seeded first runs, each at 20% injected faults.

The CLI runs as a process (the venv's ``litwatch``) with its real settings, backoff and rate
limit (an API key is set, so 10 requests/s) against a loopback fake E-utilities in this process
that mixes a 500, a 502 with an HTML body, a 200 cut short, ``<ERROR>Unable to obtain query
#1</ERROR>`` in a 200 and stalls past the request timeout (``tests/fault_corpus.py``); the shipped
queries search Europe PMC for preprints too, so a loopback fake Europe PMC (no faults, no
preprints) answers that step and its requests are counted apart. Each run starts from an empty
database; the figures are first-run exit codes, papers stored against a
fault-free run, and requests against the fault-free run's.

    PYTHONPATH=src:tests .venv/bin/python bench/fault_runs.py
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import fault_corpus  # noqa: E402
from fake_europepmc import FakeEuropePmc  # noqa: E402
from fake_eutils import FakeEutils  # noqa: E402

LITWATCH = str(Path(sys.executable).parent / "litwatch")
TIMEOUT = 1.0  # LITWATCH_REQUEST_TIMEOUT; a stall lasts 1.5x that
PER_QUERY = 40
BATCH = 5


def run_once(fake: FakeEutils, europepmc: FakeEuropePmc, folder: Path, name: str) -> tuple[int, set[int], str]:
    database = folder / f"{name}.sqlite"
    env = os.environ | {
        "LITWATCH_DATABASE_URL": f"sqlite:///{database}", "LITWATCH_QUERIES_DIR": str(fault_corpus.QUERIES),
        "LITWATCH_EUTILS_URL": fake.url, "LITWATCH_EUROPEPMC_URL": europepmc.url, "LITWATCH_EMAIL": "bench@example.org", "NCBI_API_KEY": "bench",
        "LITWATCH_FETCH_BATCH": str(BATCH), "LITWATCH_REQUEST_TIMEOUT": str(TIMEOUT),
        "LITWATCH_PUBTATOR": "off",  # E-utilities faults are measured here; PubTator3 has its own bench
    }
    subprocess.run([LITWATCH, "init"], env=env, cwd=folder, check=True, capture_output=True)
    done = subprocess.run([LITWATCH, "run"], env=env, cwd=folder, capture_output=True, text=True)
    with sqlite3.connect(database) as conn:
        stored = {row[0] for row in conn.execute("SELECT pmid FROM papers")}
    return done.returncode, stored, done.stdout + done.stderr


def main() -> None:
    today = dt.date.today()
    with FakeEutils() as fake, FakeEuropePmc() as europepmc, tempfile.TemporaryDirectory() as tmp:
        total = fault_corpus.fill(fake, today, PER_QUERY)
        code, expected, output = run_once(fake, europepmc, Path(tmp), "clean")
        assert code == 0 and len(expected) == total, output
        clean = fake.count()
        print(f"{os.cpu_count()} cores; {len(fake.terms)} saved queries, {total} papers, batches of {BATCH}; "
              f"fault-free run: exit 0, {len(expected)} papers, {clean} requests "
              f"(and {len(europepmc.requests)} to Europe PMC)")
        codes, made = [], []
        for seed in fault_corpus.SEEDS:
            fake.requests.clear()
            fake.inject_seeded(fault_corpus.faults(stall=TIMEOUT * 1.5), rate=fault_corpus.RATE, seed=seed)
            started = time.perf_counter()
            code, stored, output = run_once(fake, europepmc, Path(tmp), f"seed{seed}")
            fake.clear_faults()
            codes.append(code)
            made.append(fake.count())
            print(f"seed {seed}: exit {code}, {len(stored & expected)}/{len(expected)} papers stored, "
                  f"{made[-1]} requests ({made[-1] / clean:.2f}x), {time.perf_counter() - started:.1f} s")
            if code != 0:
                print("   " + "\n   ".join(output.strip().splitlines()[-5:]))
        print(f"first runs exiting 0: {codes.count(0)} of {len(codes)} (target 10 of 10); requests "
              f"{sum(made)} for {clean * len(made)} fault-free: {sum(made) / (clean * len(made)):.2f}x "
              f"(per run {min(made) / clean:.2f}-{max(made) / clean:.2f}x; target <= 1.3x)")


if __name__ == "__main__":
    main()
