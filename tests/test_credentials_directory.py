"""`${CREDENTIALS_DIRECTORY}` in path settings (systemd's LoadCredential= folder) and the database URL from a file:
how the installed configs reach their secrets, and what a wrong value says."""

from __future__ import annotations

from pathlib import Path

import pytest

from novapos.cli.main import CONFIGS
from novapos.config import ConfigError, load_hub, load_store
from novapos.config.reading import check_credentials_file
from novapos.deploy import hub_config

SECRET_URL = "postgresql://novapos:s3cret-Pa55@db.example:5432/novapos"


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "run-credentials"
    folder.mkdir()
    (folder / "database-url").write_text(SECRET_URL + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(folder))
    for variable in ("NOVAPOS_DATABASE_URL", "NOVAPOS_NATS_CREDENTIALS", "NOVAPOS_NATS_URL"):
        monkeypatch.delenv(variable, raising=False)
    return folder


def test_the_installed_hub_config_reads_every_secret_from_the_credentials_directory(tmp_path: Path,
                                                                                    credentials: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(hub_config((CONFIGS / "hub.toml").read_text()))
    hub = load_hub(path)
    assert hub.database_url == SECRET_URL
    assert hub.nats_credentials == credentials / "nats.seed"
    assert hub.gift_card_key_file == credentials / "gift-cards.key"
    assert hub.audit.signing_key == credentials / "audit-signing.key"
    assert hub.tls.key_file == credentials / "tls.key"


def test_a_store_config_reads_its_seed_and_state_folder_through_it(tmp_path: Path, credentials: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_text('tenant = "demo"\nstore = "store-001"\ncurrency = "EUR"\n'
                    '[nats]\nurl = "nats://127.0.0.1:4222"\ncredentials = "${CREDENTIALS_DIRECTORY}/nats.seed"\n')
    assert load_store(path).nats_credentials == credentials / "nats.seed"


@pytest.mark.parametrize("directory, says", [
    (None, "which is not set"),
    ("", "which is not set"),
    ("relative/folder", "not an absolute path"),
])
def test_the_variable_unset_or_relative_is_refused_naming_the_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, directory: str | None, says: str) -> None:
    if directory is None:
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    else:
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", directory)
    path = tmp_path / "hub.toml"
    path.write_text('[gift_cards]\nkey_file = "${CREDENTIALS_DIRECTORY}/gift-cards.key"\n')
    with pytest.raises(ConfigError, match=r"\[gift_cards\] key_file.*" + says):
        load_hub(path)


@pytest.mark.parametrize("value", ["${CREDENTIAL_DIRECTORY}/gift-cards.key", "${HOME}/.ssh/id_ed25519", "${}/x"])
def test_any_other_variable_is_refused_not_taken_literally(tmp_path: Path, credentials: Path, value: str) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(f'[gift_cards]\nkey_file = "{value}"\n')
    with pytest.raises(ConfigError, match=r"\[gift_cards\] key_file: unknown variable"):
        load_hub(path)


def test_the_database_url_file(tmp_path: Path, credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "hub.toml"
    path.write_text('[database]\nurl_file = "${CREDENTIALS_DIRECTORY}/database-url"\n')
    assert load_hub(path).database_url == SECRET_URL  # its first line, without the newline
    monkeypatch.setenv("NOVAPOS_DATABASE_URL", "postgresql://other/db")
    assert load_hub(path).database_url == "postgresql://other/db"  # the environment still wins (tests, demo)
    monkeypatch.delenv("NOVAPOS_DATABASE_URL")

    (credentials / "database-url").write_text(SECRET_URL + "\x1b[2J\n")  # a control character in it
    with pytest.raises(ConfigError) as refused:
        load_hub(path)
    assert "url_file" in str(refused.value) and "s3cret" not in str(refused.value)
    (credentials / "database-url").write_text("x" * 5000)
    with pytest.raises(ConfigError, match="over 4096 bytes"):
        load_hub(path)
    (credentials / "database-url").unlink()
    with pytest.raises(ConfigError, match=r"\[database\] url_file: cannot read .*database-url"):
        load_hub(path)

    path.write_text(f'[database]\nurl = "{SECRET_URL}"\nurl_file = "${{CREDENTIALS_DIRECTORY}}/database-url"\n')
    with pytest.raises(ConfigError, match="url or url_file, not both"):
        load_hub(path)


@pytest.mark.parametrize("value", ["$CREDENTIALS_DIRECTORY/gift-cards.key", "/etc/$HOME/x"])
def test_a_variable_without_braces_is_refused_not_taken_literally(tmp_path: Path, credentials: Path,
                                                                  value: str) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(f'[gift_cards]\nkey_file = "{value}"\n')
    with pytest.raises(ConfigError, match=r"\[gift_cards\] key_file: \$\w+ .* is not replaced.*with braces"):
        load_hub(path)


def _store_with_seed(tmp_path: Path, seed: Path) -> Path:
    seed.write_text("SUAEXAMPLE\n")
    path = tmp_path / "store.toml"
    path.write_text('tenant = "demo"\nstore = "store-001"\ncurrency = "EUR"\n'
                    f'[nats]\nurl = "nats://127.0.0.1:4222"\ncredentials = "{seed}"\n')
    return path


def test_a_load_credential_seed_with_its_acl_mask_is_accepted(tmp_path: Path, credentials: Path) -> None:
    """systemd >= 254 on tmpfs: 0400 plus an ACL for the service user, which stat shows as 0440."""
    seed = credentials / "nats.seed"
    path = _store_with_seed(tmp_path, seed)
    seed.chmod(0o440)
    check_credentials_file(load_store(path).nats_credentials)


@pytest.mark.parametrize("mode", [0o444, 0o460, 0o404])
def test_a_seed_open_to_others_or_group_write_is_refused_even_there(tmp_path: Path, credentials: Path,
                                                                   mode: int) -> None:
    seed = credentials / "nats.seed"
    path = _store_with_seed(tmp_path, seed)
    seed.chmod(mode)
    with pytest.raises(ConfigError, match="open to group or others"):
        check_credentials_file(load_store(path).nats_credentials)


def test_a_group_readable_seed_elsewhere_is_refused(tmp_path: Path, credentials: Path) -> None:
    seed = tmp_path / "nats.seed"
    path = _store_with_seed(tmp_path, seed)
    seed.chmod(0o440)
    with pytest.raises(ConfigError, match="open to group or others"):
        check_credentials_file(load_store(path).nats_credentials)


def test_the_audit_signing_key_through_load_credential_is_not_called_open(
        tmp_path: Path, credentials: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from hub.audit.checkpoints import load_signing_key
    key = credentials / "audit-signing.key"
    load_signing_key(key, tmp_path / "checkpoints")  # made 0600
    key.chmod(0o440)  # as systemd's ACL shows it
    with caplog.at_level(logging.WARNING, logger="hub.audit.checkpoints"):
        load_signing_key(key, tmp_path / "checkpoints")
        assert not [r for r in caplog.records if "readable by others" in r.getMessage()]
        key.chmod(0o444)
        load_signing_key(key, tmp_path / "checkpoints")
        assert [r for r in caplog.records if "readable by others" in r.getMessage()]
