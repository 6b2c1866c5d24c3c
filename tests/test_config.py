"""Settings: defaults, then litwatch.toml, then the environment; secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from litwatch.config import DEFAULT_DATABASE_URL, NCBI_EUTILS_URL, load_settings
from litwatch.errors import ConfigError


def test_defaults_use_the_embedded_sqlite_database_and_ncbi() -> None:
    settings = load_settings(env={})
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///db/litwatch.sqlite"
    assert settings.eutils_url == NCBI_EUTILS_URL
    assert settings.queries_dir == Path("queries")


def test_file_then_environment_override_defaults(tmp_path: Path) -> None:
    config = tmp_path / "litwatch.toml"
    config.write_text('database_url = "sqlite:///from-file.sqlite"\nemail = "file@example.org"\nfetch_batch = 50\n')
    settings = load_settings(env={"LITWATCH_EMAIL": "env@example.org"}, config_path=config)
    assert settings.database_url == "sqlite:///from-file.sqlite"
    assert settings.email == "env@example.org"
    assert settings.fetch_batch == 50


def test_sqlite_waits_30_s_for_another_writer_unless_told(tmp_path: Path) -> None:
    assert load_settings(env={}).database_busy_timeout == 30.0
    config = tmp_path / "litwatch.toml"
    config.write_text("database_busy_timeout = 5\n")
    assert load_settings(env={}, config_path=config).database_busy_timeout == 5.0
    assert load_settings(env={"LITWATCH_DATABASE_BUSY_TIMEOUT": "0.5"}, config_path=config).database_busy_timeout == 0.5


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    config = tmp_path / "other.toml"
    config.write_text('queries_dir = "/srv/queries"\n')
    assert load_settings(env={"LITWATCH_CONFIG": str(config)}).queries_dir == Path("/srv/queries")


def test_secrets_come_only_from_the_environment_and_never_show(tmp_path: Path) -> None:
    config = tmp_path / "litwatch.toml"
    config.write_text('api_key = "abc123"\n')
    with pytest.raises(ConfigError, match=r"litwatch.toml: api_key is a secret .* set NCBI_API_KEY"):
        load_settings(env={}, config_path=config)
    settings = load_settings(env={"NCBI_API_KEY": "s3cr3t-key", "LITWATCH_SMTP_PASSWORD": "hunter2"})
    assert settings.api_key == "s3cr3t-key" and settings.smtp_password == "hunter2"
    assert "s3cr3t-key" not in repr(settings) and "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('databse_url = "x"\n', {}, "unknown setting 'databse_url'"),
        ("database_url = [\n", {}, "not valid TOML"),
        ("", {"LITWATCH_FETCH_BATCH": "lots"}, "LITWATCH_FETCH_BATCH: fetch_batch must be a number"),
        ("", {"LITWATCH_SMTP_TLS": "tls"}, "LITWATCH_SMTP_TLS must be none, starttls or ssl"),
        ("", {"LITWATCH_DATABASE_BUSY_TIMEOUT": "soon"}, "LITWATCH_DATABASE_BUSY_TIMEOUT: database_busy_timeout must be a number"),
        ("database_busy_timeout = -1\n", {}, r"LITWATCH_DATABASE_BUSY_TIMEOUT\) must be 0 or more seconds, got -1"),
    ],
)
def test_bad_settings_say_what_and_where(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    config = tmp_path / "litwatch.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env, config_path=config)
