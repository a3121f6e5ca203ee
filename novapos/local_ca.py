"""A local certificate authority: its certificate and key in one folder, and the certificates it issues.

The demo and the tests make one under their state folder; `novapos certs` makes one for a chain that has
no CA of its own. Keys are ECDSA P-256, written owner-only; every file is written whole and then renamed
into place (a temporary file of a random name, made exclusively in the target folder), so a process reloading
its certificate (novapos.tls) never reads half a file. A folder written into must be closed to group and others'
writes and, for a caller other than root, be the caller's or root's: anyone who may write there could swap a key.

An issued certificate is a server's (serverAuth) unless asked for a client's too (`client`: serverAuth and
clientAuth): a store box's certificate is its HTTP server's identity and its NATS client's, so `hub store add
--ca-dir` issues it with both; a NATS server's or the hub's HTTPS certificate cannot then pass as a client
where client certificates are verified.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 397
"""Browsers refuse a server certificate valid for more than 398 days."""
CA_CERT, CA_KEY = "ca.pem", "ca.key"


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as files."""
    cert_file: Path
    key_file: Path


class UnsafeFolder(ValueError):
    """A folder others could write keys into or swap them in."""


def _check_folder(folder: Path) -> None:
    found = os.stat(folder)
    if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeFolder(f"{folder} is writable by group or others (mode {stat.S_IMODE(found.st_mode):04o}): "
                           f"write certificates and keys into a private folder (e.g. `mktemp -d`)")
    if found.st_uid not in (os.geteuid(), 0) and os.geteuid() != 0:  # root may write into a folder it gave away
        # (a store's bundle chowned to its --owner): the files are made exclusively and renamed, never followed
        raise UnsafeFolder(f"{folder} belongs to another user (uid {found.st_uid}): write certificates and keys "
                           f"into a folder of yours (e.g. `mktemp -d`)")


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_folder(path.parent)
    fd, part = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, path)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NovaPOS"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(folder: Path, name: str = "NovaPOS local CA", days: int = CA_DAYS) -> Issued:
    """A new CA in `folder` (ca.pem, ca.key). FileExistsError if one is there: a new CA would orphan every
    certificate the old one issued."""
    made = Issued(folder / CA_CERT, folder / CA_KEY)
    if made.cert_file.exists() or made.key_file.exists():
        raise FileExistsError(f"{folder} already holds a CA ({CA_CERT}, {CA_KEY}); issue certificates from it")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = _name(name)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write(made.key_file, _key_pem(key), 0o600)
    _write(made.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return made


def ensure_ca(folder: Path) -> Issued:
    """The CA in `folder`, made on first use (the demo's and the tests')."""
    if (folder / CA_CERT).exists() and (folder / CA_KEY).exists():
        return Issued(folder / CA_CERT, folder / CA_KEY)
    return make_ca(folder)


def _subject_alternative_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue(ca_folder: Path, name: str, hosts: Sequence[str], *, out: Path | None = None,
          days: int = LEAF_DAYS, not_before: datetime.datetime | None = None, client: bool = False) -> Issued:
    """A certificate for `name` (its common name and file name: `out`/<name>.pem and .key, `out` defaulting to
    the CA's folder) valid for `hosts` (DNS names or IP addresses) for `days`, signed by the CA in `ca_folder`.
    Replaces an earlier certificate of that name: the key first, then the certificate. A server's certificate
    (serverAuth) unless `client`: then a client's too (clientAuth), for a process a NATS verifies."""
    ca_cert = x509.load_pem_x509_certificate((ca_folder / CA_CERT).read_bytes())
    ca_key = serialization.load_pem_private_key((ca_folder / CA_KEY).read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_folder / CA_KEY} is not an ECDSA key made by `novapos certs ca`")
    if not hosts:
        raise ValueError("a certificate needs at least one host name or address")
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(_subject_alternative_names(hosts)), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]
                                                 + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder = out or ca_folder
    made = Issued(folder / f"{name}.pem", folder / f"{name}.key")
    _write(made.key_file, _key_pem(key), 0o600)
    _write(made.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return made


def ensure_issued(ca_folder: Path, name: str, hosts: Sequence[str], *, client: bool = False) -> Issued:
    """The certificate `name` in the CA's folder, issued when missing or within 30 days of its end (the demo's
    and the tests' servers, restarted on the same state)."""
    made = Issued(ca_folder / f"{name}.pem", ca_folder / f"{name}.key")
    if made.cert_file.exists() and made.key_file.exists():
        ends = x509.load_pem_x509_certificate(made.cert_file.read_bytes()).not_valid_after_utc
        if ends - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=30):
            return made
    return issue(ca_folder, name, hosts, client=client)
