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


def _check_key(key_file: Path) -> None:
    mode = key_file.stat().st_mode
    if mode & stat.S_IRWXO:
        raise TlsError(f"the TLS key {key_file} is open to others (mode {stat.S_IMODE(mode):04o}): "
                       f"make it readable by the service user alone (chmod 600 {key_file})")


def server_context(settings: TlsSettings) -> ssl.SSLContext | None:
    """The HTTP server's context (None: plain HTTP): TLS 1.2 or later, HTTP/2 or 1.1, and with client_auth
    a client certificate from ca_file required."""
    if settings.cert_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(ALPN)
    if settings.client_auth:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(settings: TlsSettings) -> ssl.SSLContext | None:
    """The NATS client's context (None: no settings; a tls:// URL then trusts the system's CAs): the server
    verified against ca_file (the system's CAs without one), and this process's certificate presented."""
    if settings.off:
        return None
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


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
        """Load the files into a scratch context first (a key that does not match fails there, touching
        nothing), then into the live ones; set the expiry gauge."""
        settings = self.settings
        if settings.cert_file is not None and settings.key_file is not None:
            _check_key(settings.key_file)
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(settings.cert_file, settings.key_file)
        if settings.ca_file is not None:
            ssl.create_default_context(cafile=settings.ca_file)
        for context in (self.server, self.client):
            if context is None:
                continue
            if settings.cert_file is not None and settings.key_file is not None:
                context.load_cert_chain(settings.cert_file, settings.key_file)
            if settings.ca_file is not None and (context is self.client or settings.client_auth):
                context.load_verify_locations(cafile=settings.ca_file)
        if settings.cert_file is not None:
            ends = expiry(settings.cert_file)
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
