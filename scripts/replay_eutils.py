"""Run a litwatch command against recorded PubMed answers instead of NCBI (no network needed).

Starts the loopback fake E-utilities from the test suite on 127.0.0.1, loads it with the real
recorded PubMed records in tests/fixtures/pubmed (their create dates set to two days ago, and
every saved query finds all of them), points LITWATCH_EUTILS_URL at it and runs the command:

    python scripts/replay_eutils.py .venv/bin/litwatch run-due

Everything else is real: the database, the tagging, the digests written to the outbox.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from fake_eutils import FakeEutils  # noqa: E402


@contextlib.contextmanager
def serve() -> Iterator[FakeEutils]:
    """The loopback E-utilities, loaded with the recorded records, for as long as the block runs."""
    with FakeEutils() as fake:
        created = dt.date.today() - dt.timedelta(days=2)
        for folder in ("metapub", "biopython"):
            for path in sorted((ROOT / "tests" / "fixtures" / "pubmed" / folder).glob("*.xml")):
                fake.add_records_from_file(path, crdt=created)
        yield fake


def main(command: list[str]) -> int:
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    with serve() as fake:
        env = dict(os.environ, LITWATCH_EUTILS_URL=fake.url)
        env.setdefault("LITWATCH_EMAIL", "demo@example.org")
        print(f"replaying {len(fake.records)} recorded PubMed records at {fake.url}", file=sys.stderr)
        return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
