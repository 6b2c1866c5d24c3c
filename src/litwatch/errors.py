"""Every error litwatch raises on purpose, in one tree.

    LitwatchError                 base; ``exit_code`` says how the CLI exits (1 = a run failed)
    ├── InputError                bad input from a user or a file; exit 2
    │   ├── ConfigError           settings file or environment variable is wrong
    │   ├── QueryFileError        a saved query, group or vocabulary file is wrong (file and line)
    │   └── ParseError            PubMed XML that is malformed or truncated (file and position)
    ├── StoreError                the database cannot be opened, migrated or written
    ├── EutilsError               E-utilities failed after every retry, or answered with an ERROR
    ├── PubtatorError             PubTator3 failed after every retry, or cannot be reached at its URL
    ├── EuropePmcError            Europe PMC failed after every retry, or cannot be reached at its URL
    ├── MailError                 a digest could not be handed to the SMTP server
    │   └── MailUncertain         the content was sent but no answer came: it may have arrived
    ├── LockHeldError             another process holds the lease on this work
    └── Interrupted               Ctrl-C stopped the work; the message says what was kept; exit 130

Messages say what is wrong, where, and what to do. Errors raised while handling an error from a
library underneath are chained (``raise X(...) from exc``) so the cause stays in the logs.
"""

from __future__ import annotations

from pathlib import Path


class LitwatchError(Exception):
    """Base of every error litwatch raises on purpose."""

    exit_code = 1


class InputError(LitwatchError):
    """Invalid input given by a user: options, files, settings."""

    exit_code = 2


class ConfigError(InputError):
    """A setting in litwatch.toml or the environment is missing or wrong."""


class QueryFileError(InputError):
    """A problem in a librarian-edited file, located by file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {message}")


class ParseError(InputError):
    """PubMed XML that cannot be read; records before the fault were already handed on."""

    def __init__(self, source: str, line: int | None, column: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.column = column
        self.message = message
        where = source
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(
            f"{where}: malformed PubMed XML: {message} "
            "(records before this point were loaded; fix or re-download the file and ingest it again)"
        )


class StoreError(LitwatchError):
    """The database could not be opened, migrated or written."""


class EutilsError(LitwatchError):
    """E-utilities failed after every retry, or answered with an explicit error."""


class HistoryLost(EutilsError):
    """NCBI's history server lost the search a history request read ("Unable to obtain query
    #N"): asking for the same WebEnv again cannot help, running the search again does."""


class PubtatorError(LitwatchError):
    """PubTator3 failed after every retry, or cannot be reached at ``LITWATCH_PUBTATOR_URL``."""


class EuropePmcError(LitwatchError):
    """Europe PMC failed after every retry, refused the connection or is not at the URL set."""


class MailError(LitwatchError):
    """A digest could not be delivered."""


class MailUncertain(MailError):
    """The connection broke (or timed out) after the message content was sent and before the
    server answered: the server may have taken it. SMTP cannot be asked afterwards, so a digest
    in this state is not sent again without a person deciding to."""


class LockHeldError(LitwatchError):
    """Another process holds the lease on this work; it was not started twice.

    ``holder`` names that process (host:pid:random) when it is known.
    """

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class Interrupted(LitwatchError):
    """Ctrl-C (SIGINT) stopped the work; the message says what was kept and how to go on."""

    exit_code = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
