"""Settings: defaults in code, then ``litwatch.toml``, then ``LITWATCH_*`` environment variables.

Secrets (the NCBI API key, the SMTP password) come from the environment only: a config file that
holds one is refused, and they are kept out of ``repr`` so they never reach a log line.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litwatch.errors import ConfigError

NCBI_EUTILS_URL = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
PUBTATOR3_URL = "https://www.ncbi.nlm.nih.gov/research/pubtator3-api/"
EUROPEPMC_URL = "https://www.ebi.ac.uk/europepmc/webservices/rest/"
DEFAULT_DATABASE_URL = "sqlite:///db/litwatch.sqlite"
CONFIG_FILE = "litwatch.toml"

def default_rate_file() -> Path:
    """Where this machine's litwatch processes share NCBI's rate budget (sources/rate_limit.py):
    ``$XDG_CACHE_HOME/litwatch/ncbi-rate``, ``~/.cache`` when that is unset."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "litwatch" / "ncbi-rate"


SECRET_KEYS = {"api_key": "NCBI_API_KEY", "smtp_password": "LITWATCH_SMTP_PASSWORD"}


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    database_busy_timeout: float = 30.0  # seconds SQLite waits for another writer before "is locked"
    queries_dir: Path = Path("queries")
    eutils_url: str = NCBI_EUTILS_URL
    europepmc_url: str = EUROPEPMC_URL
    email: str | None = None  # sent to NCBI and Europe PMC with every request; required for `litwatch run`
    api_key: str | None = field(default=None, repr=False)
    overlap_days: int = 3  # each gap a run searches reaches this many days into the covered dates before it
    fetch_batch: int = 200  # PMIDs per efetch POST
    max_record_mb: int = 32  # a PubMed XML record longer than this is refused, not parsed (memory)
    request_timeout: float = 30.0
    max_retries: int = 5
    rate_file: Path = field(default_factory=default_rate_file)  # NCBI's rate budget, shared by this machine's processes
    pubtator_url: str = PUBTATOR3_URL  # PubTator3 gene and disease annotations (sources/pubtator.py)
    pubtator: str = "on"  # on | off: off asks PubTator3 nothing
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_tls: str = "starttls"  # none | starttls | ssl
    mail_from: str = "litwatch@localhost"
    outbox: Path = Path("outbox")
    feeds_dir: Path | None = None  # every digest rewrites <feeds_dir>/<group>.atom; default: feeds/ beside the outbox
    feed_entries: int = 50  # papers in each group's feed, newest first
    feed_base_url: str | None = None  # where feeds_dir is served, for the feeds' self links

    @property
    def vocab_dir(self) -> Path:
        return self.queries_dir / "vocab"

    @property
    def feeds_folder(self) -> Path:
        """Where the groups' Atom feeds are written (delivery/feed.py)."""
        return self.feeds_dir if self.feeds_dir is not None else self.outbox.parent / "feeds"

    @property
    def groups_file(self) -> Path:
        return self.queries_dir / "groups.toml"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_ENV = {name: f"LITWATCH_{name.upper()}" for name in _FIELDS} | SECRET_KEYS


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    try:
        if "Path" in str(kind):
            return Path(str(value))
        if "int" in str(kind) and "str" not in str(kind):
            return int(value)
        if "float" in str(kind):
            return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {name} must be a number, got {value!r}") from exc
    if not isinstance(value, str):
        raise ConfigError(f"{source}: {name} must be a string, got {value!r}")
    return value


def load_settings(
    env: Mapping[str, str] | None = None, config_path: Path | None = None
) -> Settings:
    """Build the settings for this process.

    ``config_path`` defaults to ``$LITWATCH_CONFIG`` or ``./litwatch.toml`` when that file exists.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_path or (Path(env["LITWATCH_CONFIG"]) if env.get("LITWATCH_CONFIG") else None)
    if path is None and Path(CONFIG_FILE).is_file():
        path = Path(CONFIG_FILE)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: config file not found (set LITWATCH_CONFIG to an existing file)") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        for key, value in data.items():
            if key in SECRET_KEYS:
                raise ConfigError(
                    f"{path}: {key} is a secret and is read only from the environment; "
                    f"remove it from the file and set {SECRET_KEYS[key]}"
                )
            if key not in _FIELDS:
                raise ConfigError(f"{path}: unknown setting {key!r}; known: {', '.join(sorted(_FIELDS))}")
            values[key] = _coerce(key, value, str(path))
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = _coerce(name, env[var], var)
    if values.get("smtp_tls", "starttls") not in ("none", "starttls", "ssl"):
        raise ConfigError(f"LITWATCH_SMTP_TLS must be none, starttls or ssl, got {values['smtp_tls']!r}")
    if values.get("database_busy_timeout", 0.0) < 0:
        raise ConfigError(
            "database_busy_timeout (LITWATCH_DATABASE_BUSY_TIMEOUT) must be 0 or more seconds, "
            f"got {values['database_busy_timeout']:g}"
        )
    if values.get("feed_entries", 1) < 1:
        raise ConfigError(f"feed_entries (LITWATCH_FEED_ENTRIES) must be 1 or more, got {values['feed_entries']}")
    if values.get("max_record_mb", 1) < 1:
        raise ConfigError(f"max_record_mb (LITWATCH_MAX_RECORD_MB) must be 1 or more, got {values['max_record_mb']}")
    if values.get("pubtator", "on") not in ("on", "off"):
        raise ConfigError(f"LITWATCH_PUBTATOR must be on or off, got {values['pubtator']!r}")
    return Settings(**values)
