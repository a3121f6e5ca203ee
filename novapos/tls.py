"""TLS from the `[tls]` settings: the HTTP server's and the NATS client's SSL contexts, reloaded in place.

`[tls]` (store.toml and hub.toml): `cert_file` and `key_file`, this process's certificate and key (PEM): the
HTTP server's identity (HTTPS on when set) and the NATS client's (for a NATS that verifies clients);
`ca_file`, the CA that signs the peers: the NATS client verifies the server with it and, with `client_auth`,
the HTTP server requires a client certificate it signed (mutual TLS); `check_every_s`, how often the files
are looked at. All empty: TLS off, with a warning at start.

`Certificates` builds each context once and keeps it: when a file changes, `load_cert_chain` and
`load_verify_locations` are called again on the same context objects, so every new handshake (an HTTP
connection, a NATS reconnect) uses the new certificate while open connections carry on. A replacement that
does not load (a key that does not match its certificate, a half-copied file) is logged and tried again at
the next check; the old certificate stays in use. A CA added to `ca_file` is trusted at once; a CA taken
out of it stays trusted until the process restarts (OpenSSL cannot forget one).

`novapos_tls_certificate_expiry_timestamp_seconds{use}`: when this process's certificate ends (`http`,
`nats_client`) and when the NATS server's does (`nats_server`, from the handshake: novapos.adapters.nats).
"""

from __future__ import annotations

import logging
import os
import ssl
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trio
from cryptography import x509
from prometheus_client import Gauge

log = logging.getLogger(__name__)

EXPIRY = Gauge("novapos_tls_certificate_expiry_timestamp_seconds",
               "When a TLS certificate in use ends (Unix time): use is http (this process's HTTPS), "
               "nats_client (this process's certificate towards NATS) or nats_server (the NATS server's)", ["use"])
ALPN = ["h2", "http/1.1"]


class TlsError(ValueError):
    """The [tls] files cannot be used; the message says which and why."""


@dataclass(frozen=True)
class TlsSettings:
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    client_auth: bool = False
    """Mutual TLS on the HTTP server: a client without a certificate signed by ca_file is refused."""
    check_every_s: float = 30.0

    @property
    def off(self) -> bool:
        return self.cert_file is None and self.ca_file is None

    def files(self) -> tuple[Path, ...]:
        return tuple(path for path in (self.cert_file, self.key_file, self.ca_file) if path is not None)


def expiry(cert_file: Path) -> float:
    """When the first certificate in `cert_file` ends, as Unix time."""
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).not_valid_after_utc.timestamp()


def _check_key(key_file: Path, mode: int) -> None:
    if mode & stat.S_IRWXO:
        raise TlsError(f"the TLS key {key_file} is open to others (mode {stat.S_IMODE(mode):04o}): "
                       f"make it readable by the service user alone (chmod 600 {key_file})")


def server_context(settings: TlsSettings) -> ssl.SSLContext | None:
    """The HTTP server's context (None: plain HTTP): TLS 1.2 or later, HTTP/2 or 1.1, and with client_auth
    a client certificate from ca_file required (ca_file alone: not the system's CAs, which would let any
    certificate a public CA signed in)."""
    if settings.cert_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN)
    if settings.client_auth:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(settings: TlsSettings) -> ssl.SSLContext | None:
    """The NATS client's context (None: no settings; a tls:// URL then trusts the system's CAs): the server
    verified (its name too) against ca_file alone when set, the system's CAs only without one, and this
    process's certificate presented."""
    if settings.off:
        return None
    if settings.ca_file is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:  # no system CA: a certificate a public CA signed for the NATS name must not pass
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname on, CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@dataclass(frozen=True)
class _Files:
    """The [tls] files' bytes, read once per load: the check and the live load see the same bytes."""
    chain: bytes | None  # key then certificate, PEM
    cert: bytes | None
    ca: str | None


def _read(settings: TlsSettings) -> _Files:
    chain = cert = None
    if settings.cert_file is not None and settings.key_file is not None:
        with open(settings.key_file, "rb") as key:
            _check_key(settings.key_file, os.fstat(key.fileno()).st_mode)
            key_bytes = key.read()
        cert = settings.cert_file.read_bytes()
        chain = key_bytes.rstrip(b"\n") + b"\n" + cert
    ca = None if settings.ca_file is None else settings.ca_file.read_bytes().decode("ascii", "ignore")
    return _Files(chain, cert, ca)


class Certificates:
    """This process's contexts from `settings`, loaded now (TlsError says why not) and reloaded by watch()."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self.server = server_context(settings)
        self.client = client_context(settings)
        self._seen = self._stamps()
        try:
            self._load()
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise TlsError(f"cannot use the [tls] files ({', '.join(map(str, settings.files()))}): {_reason(exc)}") from None

    @property
    def verifies_servers(self) -> bool:
        """Whether a CA to verify servers with is configured: a NATS link must then be TLS (novapos.adapters.nats)."""
        return self.settings.ca_file is not None

    def _stamps(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self.settings.files():
            try:
                found = os.stat(path)  # follows a symlink: a swapped link target is a change too
                stamps.append((found.st_mtime_ns, found.st_size, found.st_ino))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def _load(self) -> None:
        """Read the files once; load those bytes into a scratch context first (a key that does not match fails
        there, touching nothing), then the same bytes into the live ones (a file changed meanwhile cannot
        reach them unchecked); set the expiry gauge."""
        settings = self.settings
        files = _read(settings)
        with tempfile.TemporaryDirectory(prefix="novapos-tls-") as scratch:  # 0700, ours; gone at once
            chain_file = None
            if files.chain is not None:
                chain_file = Path(scratch) / "chain.pem"
                descriptor = os.open(chain_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(descriptor, "wb") as out:
                    out.write(files.chain)
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(chain_file)
            if files.ca is not None:
                ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=files.ca)
            for context in (self.server, self.client):
                if context is None:
                    continue
                if chain_file is not None:
                    context.load_cert_chain(chain_file)
                if files.ca is not None and (context is self.client or settings.client_auth):
                    context.load_verify_locations(cadata=files.ca)
        if files.cert is not None:
            ends = x509.load_pem_x509_certificate(files.cert).not_valid_after_utc.timestamp()
            EXPIRY.labels("http").set(ends)
            EXPIRY.labels("nats_client").set(ends)

    def reload_if_changed(self) -> bool:
        """Reload when a file changed since the last load; whether it did. A failed load keeps the old
        certificate and is retried at the next call."""
        stamps = self._stamps()
        if stamps == self._seen:
            return False
        try:
            self._load()
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("the TLS files changed but cannot be used (%s); still using the previous certificate, "
                        "trying again in %g s", _reason(exc), self.settings.check_every_s)
            return False
        self._seen = stamps
        log.info("reloaded the TLS certificate from %s: new connections use it",
                 ", ".join(map(str, self.settings.files())))
        return True

    async def watch(self) -> None:
        """Check the files every check_every_s, until cancelled."""
        if self.settings.off:
            return
        while True:
            await trio.sleep(self.settings.check_every_s)
            self.reload_if_changed()

    def warn_if_off(self, process: str) -> None:
        if self.settings.off:
            log.warning("TLS is off for the %s ([tls] is empty): NATS and HTTP travel in clear text; "
                        "set [tls] cert_file, key_file and ca_file (see `novapos certs`)", process)
        elif self.server is None:
            log.warning("the %s serves plain HTTP ([tls] cert_file and key_file are empty)", process)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, ssl.SSLError):
        return f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")
    return str(exc) or type(exc).__name__
