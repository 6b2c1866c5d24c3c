"""Kill trials: the real CLI as a process, SIGKILLed at a seeded random moment, then run again.

A trial copies a prepared starting state (an SQLite file) into its own folder, starts the command
in a session of its own, sleeps a delay drawn from ``random.Random(seed)`` over the command's
measured clean duration, and sends SIGKILL to that one process, as the OOM killer or a power cut
would (its worker processes get no signal). It then watches the session for up to a second for
children that outlive the writer, checks the killed database (``PRAGMA integrity_check``, and what
the caller checks, such as a watermark ahead of the stored papers), runs the same command again to
the end, and compares the store with a clean run's, row by row.

Rows are compared without what differs between two honest runs: timestamps, surrogate ids, lease
holders. Tables of receipts (``runs``, ``digests``, ``leases``) are left out of the comparison and
checked by the tests themselves.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
LITWATCH = [sys.executable, "-c", "from litwatch.cli import main; main()"]
# `litwatch` with the parallel ingest path taken for any file size, in chunks of $KILL_TRIAL_CHUNK_BYTES,
# so a file of a few hundred real records goes through the parser processes as a baseline file does
PARALLEL_INGEST = [sys.executable, "-c", (
    "import os\n"
    "from litwatch.pipeline import ingest\n"
    "from litwatch.sources import parse_pool\n"
    "ingest.PIPELINE_MIN_BYTES = 0\n"
    "parse_pool.CHUNK_BYTES = int(os.environ['KILL_TRIAL_CHUNK_BYTES'])\n"
    "from litwatch.cli import main\n"
    "main()\n"
)]
RECEIPT_TABLES = {"runs", "digests", "leases", "alembic_version"}
VOLATILE_COLUMNS = {"id", "digest_id", "run_id", "holder"}
CHILD_GRACE = 1.0  # seconds a child process may outlive its killed writer


def command_env(**settings: str) -> dict[str, str]:
    """This process's environment without any litwatch setting or secret, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITWATCH_") and k != "NCBI_API_KEY"}
    return env | {"PYTHONPATH": str(SRC), "PYTHONDONTWRITEBYTECODE": "1", "LITWATCH_PUBTATOR": "off"} | settings


def run_to_end(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> float:
    """Run a command to its end, failing on a non-zero exit; returns its wall time in seconds."""
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    args = " ".join(command[command.index("-c") + 2 :])
    assert done.returncode == 0, f"litwatch {args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return time.monotonic() - started


# -- processes --------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and session id, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, pgrp, session
    return fields[0], int(fields[3])


def session_members(session: int) -> list[int]:
    """Live (not zombie) processes of a session."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == session and stat[0] != "Z":
                members.append(int(entry.name))
    return members


@dataclass
class Kill:
    """What a SIGKILL at ``delay`` seconds found: whether the command had ended, and its children."""

    delay: float
    finished_first: bool = False
    children: int = 0  # processes of its session besides it, at the kill
    survivors: int = 0  # of them, alive CHILD_GRACE seconds after the kill


def kill_at(command: list[str], env: dict[str, str], cwd: Path, delay: float) -> Kill:
    """Start ``command``, SIGKILL it (it alone) after ``delay`` seconds, and count children that outlive it.

    Survivors are then killed by their pid, so no trial leaves a process behind.
    """
    kill = Kill(delay)
    with open(cwd / "killed.log", "wb") as log:
        victim = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=log, start_new_session=True)
    try:
        victim.wait(timeout=delay)
        kill.finished_first = True
        return kill
    except subprocess.TimeoutExpired:
        pass
    kill.children = len([p for p in session_members(victim.pid) if p != victim.pid])
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    deadline = time.monotonic() + CHILD_GRACE
    left = session_members(victim.pid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = session_members(victim.pid)
    kill.survivors = len(left)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return kill


def kill_delays(seeds: range, duration: float, busy_from: float) -> list[tuple[int, float]]:
    """One kill delay per seed over the command's clean ``duration``: uniform over all of it for even
    seeds, over its busy part (from ``busy_from``, when the clean run's first row appeared) for odd
    ones, so that start-up, which a kill cannot harm, does not take most of the trials."""
    return [(seed, random.Random(seed).uniform(busy_from if seed % 2 else 0.0, duration)) for seed in seeds]


# -- the database -----------------------------------------------------------------------------------


def connect(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{database}?mode=rw", uri=True)


def integrity(database: Path) -> str:
    with connect(database) as conn:
        return ", ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))


def query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with connect(database) as conn:
        return conn.execute(sql).fetchall()


Rows = dict[str, Counter[tuple[object, ...]]]


def content(database: Path) -> Rows:
    """Every table's rows (but the receipts'), without timestamps and surrogate ids, as multisets."""
    out: Rows = {}
    with connect(database) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for name in sorted(set(names) - RECEIPT_TABLES):
            columns = [c[1] for c in conn.execute(f'PRAGMA table_info("{name}")')
                       if c[1] not in VOLATILE_COLUMNS and "DATETIME" not in c[2].upper()]
            listed = ", ".join(f'"{c}"' for c in columns)
            out[name] = Counter(conn.execute(f'SELECT {listed} FROM "{name}"'))
    return out


def differences(clean: Rows, got: Rows) -> tuple[int, int, list[str]]:
    """Rows of the clean store missing, rows beyond it (duplicates or strays), and the tables that differ."""
    lost = extra = 0
    tables = []
    for name in sorted(set(clean) | set(got)):
        want, have = clean.get(name, Counter()), got.get(name, Counter())
        missing, beyond = sum((want - have).values()), sum((have - want).values())
        if missing or beyond:
            tables.append(f"{name}: {missing} missing, {beyond} extra")
        lost, extra = lost + missing, extra + beyond
    return lost, extra, tables


# -- trials -----------------------------------------------------------------------------------------


@dataclass
class Trial:
    """One kill and rerun, and what was found wrong (``problems`` empty when all held)."""

    seed: int
    kill: Kill
    at_kill: str = ""  # what the killed store held, e.g. "120 papers"
    lost: int = 0
    extra: int = 0
    integrity_failures: int = 0
    problems: list[str] = field(default_factory=list)


Check = Callable[[Path], list[str]]  # looks at a trial's database, returns what is wrong


@dataclass
class Scenario:
    """A command to kill: how to start it, where its store is, what to check on the killed store."""

    name: str
    command: list[str]
    env: dict[str, str]
    start: Path  # the SQLite file every run starts from
    killed_checks: Check = lambda _db: []
    rerun_checks: Check = lambda _db: []
    unit: str = "papers"  # the table whose rows show the command's progress
    before_run: Callable[[], None] = lambda: None  # e.g. empties the SMTP sink's log
    # the normal rerun after a kill; a command whose rerun needs a person's decision says so here
    rerun: Callable[[list[str], dict[str, str], Path], object] = lambda command, env, cwd: run_to_end(command, env, cwd)

    def progress(self, database: Path) -> int:
        return int(str(query(database, f'SELECT count(*) FROM "{self.unit}"')[0][0]))

    def prepare(self, folder: Path) -> tuple[Path, dict[str, str]]:
        folder.mkdir(parents=True)
        database = folder / "litwatch.sqlite"
        shutil.copy(self.start, database)
        return database, self.env | {"LITWATCH_DATABASE_URL": f"sqlite:///{database}"}

    def clean(self, folder: Path) -> tuple[float, float, Rows]:
        """A run to the end from the starting state: its duration, when its first row appeared, its store."""
        database, env = self.prepare(folder)
        self.before_run()
        started = time.monotonic()
        busy_from = None
        with open(folder / "clean.log", "wb") as log:
            clean = subprocess.Popen(self.command, env=env, cwd=folder, stdout=log, stderr=log)
        while clean.poll() is None:
            if busy_from is None and self.progress(database):
                busy_from = time.monotonic() - started
            time.sleep(0.02)
        duration = time.monotonic() - started
        assert clean.returncode == 0, f"the clean {self.name} exited {clean.returncode}:\n" + (
            folder / "clean.log").read_text()
        return duration, busy_from or 0.0, content(database)

    def trial(self, folder: Path, seed: int, delay: float, clean: Rows) -> Trial:
        database, env = self.prepare(folder)
        self.before_run()
        trial = Trial(seed, kill_at(self.command, env, folder, delay))
        trial.at_kill = f"{self.progress(database)} {self.unit}"
        after_kill = integrity(database)
        if after_kill != "ok":
            trial.integrity_failures += 1
            trial.problems.append(f"integrity_check after the kill: {after_kill}")
        trial.problems += self.killed_checks(database)
        self.rerun(self.command, env, folder)
        after_rerun = integrity(database)
        if after_rerun != "ok":
            trial.integrity_failures += 1
            trial.problems.append(f"integrity_check after the rerun: {after_rerun}")
        trial.lost, trial.extra, tables = differences(clean, content(database))
        trial.problems += tables + self.rerun_checks(database)
        return trial


def summary(name: str, trials: list[Trial], clean_s: float, busy_s: float, **figures: int) -> str:
    """A few lines: trials, kill points, outcomes."""
    killed = [t for t in trials if not t.kill.finished_first]
    points = ", ".join(f"{t.kill.delay:.2f}s/{t.at_kill}" for t in sorted(trials, key=lambda t: t.kill.delay))
    counts = {"lost rows": sum(t.lost for t in trials), "extra rows": sum(t.extra for t in trials),
              "integrity failures": sum(t.integrity_failures for t in trials),
              "trials with problems": sum(bool(t.problems) for t in trials)} | figures
    return (f"{name}: {len(trials)} trials ({len(killed)} killed mid-run, the rest had finished), clean run "
            f"{clean_s:.2f}s, its first row at {busy_s:.2f}s\n  kill points (delay/store at the kill): {points}\n  "
            + ", ".join(f"{k} {v}" for k, v in counts.items()))
