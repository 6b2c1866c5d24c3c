"""The lock file installs what pyproject.toml asks for: a dependency added to pyproject.toml
without re-locking would be missing from a fresh clone's venv (scripts/venv.sh installs the lock)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)", re.M)


def test_every_dependency_and_extra_is_pinned_in_the_lock_at_a_version_it_accepts() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = list(project["project"]["dependencies"])
    for extra in project["project"]["optional-dependencies"].values():
        wanted += [r for r in extra if not r.startswith("litwatch")]
    wanted += project["dependency-groups"]["build"]
    pins = {canonicalize_name(n): v for n, v in PIN.findall((ROOT / "requirements.lock").read_text())}
    problems = []
    for text in wanted:
        req = Requirement(text)
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            problems.append(f"{req.name} is not in requirements.lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}=={pinned} in requirements.lock does not satisfy {req.specifier}")
    assert not problems, "; ".join(problems) + " (re-lock: see scripts/venv.sh)"
