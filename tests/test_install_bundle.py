"""A store's bundle installed on its box (novapos.deploy, run by configs/install.sh --store-bundle): the seed and the
TLS key become the unit's credentials, the certificates go to /etc/novapos/tls, and a bundle that is not what the
hub writes is refused with a sentence, never half-installed or read from outside its folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

from hub.tenancy.credentials import new_seed
from novapos.config import load_store
from novapos.deploy import DeployError, install_bundle


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    folder = tmp_path / "etc/novapos"
    for sub in ("credentials/edge", "tls"):
        (folder / sub).mkdir(parents=True)
    return folder


def bundle(tmp_path: Path, tls: dict[str, str] | None = None, seed: str | None = None) -> Path:
    """A bundle as `novapos hub store add` writes it, its paths those of the hub's folder."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "store.seed").write_text((seed or new_seed()) + "\n")
    for name in ("ca.pem", "store-001.pem", "store-001.key"):
        (folder / name).write_text(f"-----BEGIN {name}-----\n")
    config = {"tenant": "demo", "store": "store-001", "currency": "EUR", "tills": ["till-1"],
              "nats": {"url": "tls://hub.example:4222", "credentials": "/root/bundles/store-001/store.seed"}}
    (folder / "store.toml").write_text(tomli_w.dumps({**config, **({"tls": tls} if tls else {})}))
    return folder


def test_the_seed_key_and_certificates_land_where_the_unit_and_config_read_them(
        tmp_path: Path, etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = bundle(tmp_path, {"ca_file": "/root/bundles/store-001/ca.pem",
                               "cert_file": "/root/bundles/store-001/store-001.pem",
                               "key_file": "/root/bundles/store-001/store-001.key"})
    install_bundle(etc, source, os.getgid())
    credentials = etc / "credentials/edge"
    assert (credentials / "nats.seed").read_text() == (source / "store.seed").read_text()
    assert (credentials / "tls.key").read_text() == (source / "store-001.key").read_text()
    assert {path.name: path.stat().st_mode & 0o777 for path in credentials.iterdir()} == {"nats.seed": 0o600,
                                                                                          "tls.key": 0o600}
    assert sorted(path.name for path in (etc / "tls").iterdir()) == ["ca.pem", "store-001.pem"]
    assert (etc / "store.toml").stat().st_mode & 0o777 == 0o640

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/novapos-edge.service")
    monkeypatch.delenv("NOVAPOS_NATS_CREDENTIALS", raising=False)
    store = load_store(etc / "store.toml")  # as the unit reads it
    assert store.nats_credentials == Path("/run/credentials/novapos-edge.service/nats.seed")
    assert (store.tls.key_file, store.tls.cert_file, store.tls.ca_file) == (
        Path("/run/credentials/novapos-edge.service/tls.key"), Path("/etc/novapos/tls/store-001.pem"),
        Path("/etc/novapos/tls/ca.pem"))

def test_a_rotation_bundle_replaces_the_seed_and_keeps_the_operators_config(tmp_path: Path, etc: Path) -> None:
    install_bundle(etc, bundle(tmp_path), os.getgid())
    with (etc / "store.toml").open("a") as config:
        config.write('\n[[devices.rules]]\nname = "receipt-printer"\n')  # the operator's devices
    edited = (etc / "store.toml").read_text()
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    (rotated / "store.seed").write_text(new_seed() + "\n")  # `store rotate --out` writes the seed alone
    install_bundle(etc, rotated, os.getgid())
    assert (etc / "credentials/edge/nats.seed").read_text() == (rotated / "store.seed").read_text()
    assert (etc / "store.toml").read_text() == edited


@pytest.mark.parametrize("spoil, says", [
    (lambda folder: (folder / "store.seed").write_text("not a seed\n"), "is not a NATS seed"),
    (lambda folder: (folder / "other.seed").write_text(new_seed()), "must hold one seed file"),
    (lambda folder: (folder / "store.seed").unlink(), "must hold one seed file"),
    (lambda folder: (folder / "store.toml").write_text("tenant = "), "is not valid TOML"),
])
def test_a_spoilt_bundle_is_refused_before_anything_is_installed(tmp_path: Path, etc: Path, spoil: Callable[[Path], object], says: str) -> None:
    source = bundle(tmp_path)
    spoil(source)
    with pytest.raises(DeployError, match=says):
        install_bundle(etc, source, os.getgid())
    assert not (etc / "store.toml").exists()


def test_a_tls_path_is_looked_up_in_the_bundle_only(tmp_path: Path, etc: Path) -> None:
    """A store.toml naming ../../etc/shadow copies nothing from outside the bundle's folder."""
    (tmp_path / "shadow").write_text("root:secret\n")
    source = bundle(tmp_path, {"key_file": str(tmp_path / "shadow")})
    with pytest.raises(DeployError, match="names shadow, which is not in the bundle"):
        install_bundle(etc, source, os.getgid())
    assert not (etc / "credentials/edge/tls.key").exists()


TLS = {"ca_file": "/root/bundles/store-001/ca.pem", "cert_file": "/root/bundles/store-001/store-001.pem",
       "key_file": "/root/bundles/store-001/store-001.key"}


def test_installing_the_bundle_again_never_rolls_back_rotated_tls_files(tmp_path: Path, etc: Path) -> None:
    source = bundle(tmp_path, TLS)
    install_bundle(etc, source, os.getgid())
    rotated = {etc / "credentials/edge/tls.key": "rotated key\n", etc / "tls/store-001.pem": "rotated cert\n",
               etc / "tls/ca.pem": "rotated ca\n"}
    for path, text in rotated.items():
        path.write_text(text)
    (source / "store.seed").write_text(new_seed() + "\n")  # the same bundle again, with a new seed
    notes = install_bundle(etc, source, os.getgid())
    assert {path: path.read_text() for path in rotated} == rotated
    assert (etc / "credentials/edge/nats.seed").read_text() == (source / "store.seed").read_text()
    assert any("already installed" in note for note in notes)


@pytest.mark.parametrize("linked", ["store-001.key", "ca.pem", "store.toml", "store.seed"])
def test_a_symlink_in_the_bundle_is_refused_not_followed(tmp_path: Path, etc: Path, linked: str) -> None:
    (tmp_path / "shadow").write_text(new_seed() + "\n" if linked == "store.seed" else "root:secret\n")
    source = bundle(tmp_path, TLS)
    if linked == "store.toml":
        (tmp_path / "shadow").write_text((source / "store.toml").read_text())
    (source / linked).unlink()
    (source / linked).symlink_to(tmp_path / "shadow")
    with pytest.raises(DeployError, match="symlink"):
        install_bundle(etc, source, os.getgid())
    assert not (etc / "store.toml").exists()
    assert not (etc / "credentials/edge/tls.key").exists() and not list((etc / "tls").iterdir())
