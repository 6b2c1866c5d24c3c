"""Every `$ litwatch ...` session in README.md and docs/ is what a real run prints.

The sessions are cog blocks that run the commands (``scripts/doc_sessions.py``); here each document
is generated again into a scratch file and every block compared with the committed text, times,
durations, dates, ports and random tokens aside. When this fails, the output changed: regenerate
with ``.venv/bin/python -m cogapp -r -I scripts README.md docs/*.md`` and read the diff.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from doc_sessions import mask  # noqa: E402

DOCS = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if "[[[cog" in p.read_text()]
BLOCK = re.compile(r"\[\[\[cog\n(.*?)\]\]\] -->\n(.*?)<!-- \[\[\[end\]\]\]", re.DOTALL)


def blocks(text: str) -> list[tuple[str, str]]:
    return BLOCK.findall(text)


def test_the_readme_and_docs_hold_generated_sessions() -> None:
    names = {p.name for p in DOCS}
    assert "README.md" in names
    assert sum(len(blocks(p.read_text())) for p in DOCS) >= 7


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_each_session_is_what_a_real_run_prints(doc: Path, tmp_path: Path) -> None:
    fresh = tmp_path / doc.name
    subprocess.run([sys.executable, "-m", "cogapp", "-I", str(ROOT / "scripts"), "-o", str(fresh), str(doc)],
                   cwd=ROOT, check=True, capture_output=True)
    committed, generated = blocks(doc.read_text()), blocks(fresh.read_text())
    assert [code for code, _ in committed] == [code for code, _ in generated]
    for (code, old), (_, new) in zip(committed, generated, strict=True):
        assert mask(old) == mask(new), (
            f"{doc.name}: the session of block {code.strip().splitlines()[-1]!r} no longer matches a real run;\n"
            f"--- committed\n{old}\n--- real run now\n{new}")
