#!/usr/bin/env bash
# Build .venv from the lock file: the exact, hash-checked versions CI tested, then litwatch itself
# (editable, no further resolution). Used by the README's two commands and by .ci/run.
#
# Upgrade the lock (then run the tests and commit requirements.lock):
#     .venv/bin/pip install uv && .venv/bin/uv pip compile --upgrade --universal --python-version 3.11 \
#         --all-extras --group pyproject.toml:build --generate-hashes pyproject.toml -o requirements.lock
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
