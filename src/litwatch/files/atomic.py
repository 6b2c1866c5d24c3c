"""Writing a file so that it is either whole or absent, even if the process dies midway.

The one place litwatch replaces a file: the data goes to a hidden temporary file beside the
target (``.<name>.tmp``, same folder so the rename stays on one file system), is flushed and
fsynced, then renamed over the target in one step. On an error the temporary file is removed
and the target is left as it was. Used by the outbox, the digest ledger's state folder, digest
previews and ``litwatch export -o``. Errors are the caller's ``OSError`` to translate.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, cast, overload


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


@contextlib.contextmanager
def _replacing(path: Path, mode: str, encoding: str | None, newline: str | None) -> Iterator[IO[Any]]:
    tmp = _temporary(path)
    try:
        with open(tmp, mode, encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@overload
def replacing(path: Path) -> contextlib.AbstractContextManager[BinaryIO]: ...
@overload
def replacing(path: Path, *, encoding: str, newline: str | None = None) -> contextlib.AbstractContextManager[TextIO]: ...


def replacing(path: Path, *, encoding: str | None = None,
              newline: str | None = None) -> contextlib.AbstractContextManager[BinaryIO | TextIO]:
    """A handle to write ``path`` through: bytes, or text when ``encoding`` is given.

    ``path`` holds the new content once the ``with`` block ends without an error, and is
    untouched if it raises.
    """
    mode = "wb" if encoding is None else "w"
    return cast("contextlib.AbstractContextManager[BinaryIO | TextIO]", _replacing(path, mode, encoding, newline))


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, whole or not at all."""
    with replacing(path) as handle:
        handle.write(data)
