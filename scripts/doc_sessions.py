"""The `$ litwatch ...` sessions in README.md and docs/*.md, run for real.

The documents hold cog blocks (https://nedbatchelder.com/code/cog/) that call :func:`show`; each
runs the command as a process, the way a user types it, and pastes what it printed. Regenerate
every session after a change of output:

    .venv/bin/python -m cogapp -r -I scripts README.md docs/*.md

Each document gets one workspace, used by its sessions in order: a scratch folder with a copy of
``queries/``, an empty SQLite database under ``db/``, an ``outbox/``, links to ``tests/`` and
``scripts/``, and (when a session needs PubMed) the loopback replay E-utilities that
``scripts/replay_eutils.py`` serves. ``tests/test_docs.py`` regenerates the documents the same way
and fails when a session's text differs from a real run in anything but what changes on every run
(see :func:`mask`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = 100
BIN = Path(sys.executable).parent

# what differs between two honest runs: durations, ports, dates and times, random tokens, pids
_VOLATILE = [
    # which jobs come next, and when, depends on the hour the session runs (a weekly digest at 07:00
    # on Mondays is next at 06:50 and not at 07:10): the list of a run-due or schedule line
    (re.compile(r"\bnext: \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC: [^\n]*"), "next: <jobs>"),
    (re.compile(r"(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),
    (re.compile(r"\d{1,8}T\d{6}Z\.[0-9a-f]{8}"), "<stamp>"),  # 1-8: a narrow table may clip the date on the left
    (re.compile(r"\b\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}([.,]\d+)?)?)?( UTC)?"), "<when>"),
    (re.compile(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun),? \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                r"( \d{4})?"), "<day>"),
    (re.compile(r"\b\d{2}:\d{2}(:\d{2})?\b"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)? ?(s|ms)\b"), "<secs>"),
    (re.compile(r"(?<![\d.])\d+\.\d+(?![\d.])"), "<secs>"),  # a seconds column has no unit
    (re.compile(r"\bpid \d+"), "pid <n>"),
    (re.compile(r"\s+"), " "),
]


def mask(text: str) -> str:
    """``text`` with what changes on every run (times, durations, ports, tokens) blotted out."""
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    return text.strip()


class Workspace:
    """A scratch folder laid out like a fresh checkout, where a document's sessions run."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="litwatch-docs-"))
        atexit.register(shutil.rmtree, self.path, True)
        shutil.copytree(ROOT / "queries", self.path / "queries")
        for name in ("tests", "scripts"):
            (self.path / name).symlink_to(ROOT / name)
        (self.path / "db").mkdir()
        self._replay: contextlib.ExitStack | None = None
        self.eutils_url: str | None = None
        self.europepmc_url: str | None = None
        self.pubtator_url: str | None = None

    def replay(self) -> None:
        """Serve the recorded PubMed records on loopback for the sessions after this call."""
        if self._replay is None:
            sys.path.insert(0, str(ROOT / "scripts"))
            import replay_eutils

            self._replay = contextlib.ExitStack()
            atexit.register(self._replay.close)
            fake = self._replay.enter_context(replay_eutils.serve())
            self.eutils_url = fake.url
            self.europepmc_url = self._replay.enter_context(replay_eutils.serve_europepmc()).url
            self.pubtator_url = self._replay.enter_context(replay_eutils.serve_pubtator()).url

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LITWATCH_") and k != "NCBI_API_KEY"}
        env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", COLUMNS=str(COLUMNS), LINES="50",
                   LITWATCH_EMAIL="demo@example.org", PYTHONWARNINGS="ignore")
        if self.eutils_url:
            env["LITWATCH_EUTILS_URL"] = self.eutils_url
        if self.europepmc_url:
            env["LITWATCH_EUROPEPMC_URL"] = self.europepmc_url
        if self.pubtator_url:
            env["LITWATCH_PUBTATOR_URL"] = self.pubtator_url
        else:
            env["LITWATCH_PUBTATOR"] = "off"  # a session without the replay asks no real PubTator3
        return env

    def run(self, command: str, *, stdin: str | None = None) -> str:
        """Run ``command`` (a shell line) here; what it printed, standard error interleaved."""
        done = subprocess.run(command, shell=True, cwd=self.path, env=self.env(), input=stdin,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        return done.stdout.replace(str(self.path) + "/", "")


_WORKSPACES: dict[str, Workspace] = {}


def workspace() -> Workspace:
    """The workspace of the document cog is processing now."""
    import cog  # provided by cogapp while it runs a block

    return _WORKSPACES.setdefault(str(cog.inFile), Workspace())


def setup(*commands: str, replay: bool = False) -> None:
    """Run ``commands`` in the document's workspace without showing them (the state a page assumes)."""
    ws = workspace()
    if replay:
        ws.replay()
    for command in commands:
        ws.run(command)


def show(*commands: str, replay: bool = False, fence: str = "```", indent: str = "",
         stdin: str | None = None, echo: bool = True) -> None:
    """Run each command and paste ``$ command`` (unless not ``echo``) and its output into the document."""
    import cog

    ws = workspace()
    if replay:
        ws.replay()
    lines: list[str] = []
    for command in commands:
        if echo:
            lines.append(f"$ {command}")
        lines.extend(ws.run(command, stdin=stdin).rstrip("\n").split("\n"))
    body = "\n".join(indent + line if line else line for line in lines)
    cog.outl(f"{indent}{fence}" if fence else "")
    cog.outl(body)
    if fence:
        cog.outl(f"{indent}{fence}")


def daemon_session(part: int) -> None:
    """``litwatch schedule`` on a fresh database, as in docs/scheduling.md: it catches up (part 0);
    then a query file gets a slip, is repaired and SIGHUP sent, and SIGTERM stops it (part 1)."""
    import cog

    ws = workspace()
    if not hasattr(ws, "daemon_parts"):
        ws.replay()
        for command in ("rm -rf db/litwatch.sqlite* outbox", "litwatch init"):
            ws.run(command)
        slips = ROOT / "tests" / "fixtures" / "queries" / "slips"
        process = subprocess.Popen(["litwatch", "schedule", "--watch-interval", "1"], cwd=ws.path, env=ws.env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        out: list[str] = []

        def until(marker: str) -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                out.append(line)
                if marker in line:
                    return
            raise RuntimeError(f"litwatch schedule ended before printing {marker!r}: {''.join(out)}")

        until("caught up")
        split = len(out)
        shutil.copy(slips / "migraine-trpm8.toml", ws.path / "queries" / "migraine-trpm8.toml")
        until("disable what they define")
        target = ws.path / "queries" / "migraine-trpm8.toml"
        before = target.stat()
        shutil.copyfile(slips / "migraine-trpm8-fixed.toml", target)
        # the repair has the slip's size; its old mtime keeps the file watcher from racing SIGHUP on a
        # loaded machine, so the session shows SIGHUP's reload, the one it documents
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        process.send_signal(signal.SIGHUP)
        until("caught up")
        process.send_signal(signal.SIGTERM)
        out.extend(process.stdout)
        process.wait(timeout=60)
        ws.daemon_parts = ["".join(out[:split]), "".join(out[split:])]  # type: ignore[attr-defined]
    text = ws.daemon_parts[part].replace(str(ws.path) + "/", "")  # type: ignore[attr-defined]
    cog.outl("```")
    if part == 0:
        cog.outl("$ litwatch schedule")
    cog.outl(text.rstrip("\n"))
    cog.outl("```")


def quote(text: str) -> str:
    """``text`` as one shell word, for commands built in a block."""
    return shlex.quote(text)
