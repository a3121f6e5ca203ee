"""TLS (novapos.tls, novapos.local_ca): HTTPS on the edge, certificates reloaded in place, mutual TLS, NATS
refusing plain TCP and clients without a certificate, the expiry gauge, and `novapos certs`."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import nats
import pytest
import trio
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edge.app import run_edge
from novapos.adapters.http import route, serve, with_api_errors
from novapos.adapters.nats import NatsLink
from novapos.config import ConfigError, StoreConfig, load_store
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.local_ca import Issued, UnsafeFolder, ensure_ca, issue, make_ca
from novapos.tls import Certificates, TlsError, TlsSettings, expiry
from tests.conftest import wait_until

HOSTS = ["127.0.0.1", "localhost"]


def _serial(cert_file: Path) -> int:
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number


def _handshake(port: int, ca_file: Path, client: tuple[Path, Path] | None = None) -> int:
    """A new TLS handshake with 127.0.0.1:`port`: the serial number of the certificate the server presented."""
    context = ssl.create_default_context(cafile=ca_file)
    if client is not None:
        context.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % port)
        answer = tls.recv(4096)  # mutual TLS with TLS 1.3: a refused client certificate shows here
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
        peer = tls.getpeercert(binary_form=True)
    assert peer is not None
    return x509.load_der_x509_certificate(peer).serial_number


async def _ping(_request: Request) -> Response:
    return JSONResponse({"ok": True})


def _gauge(use: str) -> float | None:
    return REGISTRY.get_sample_value("novapos_tls_certificate_expiry_timestamp_seconds", {"use": use})


async def test_a_replaced_certificate_is_served_to_the_next_handshake_without_a_restart(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    first = issue(tmp_path / "ca", "server", HOSTS, out=tmp_path / "live")
    certificates = Certificates(TlsSettings(cert_file=first.cert_file, key_file=first.key_file, ca_file=ca.cert_file))
    app = with_api_errors(Starlette(routes=[route("/ping", GET=_ping)]))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(lambda task_status: serve(app, "127.0.0.1", 0, tls=certificates.server,
                                                             task_status=task_status))
        assert urls[0].startswith("https://")
        port = int(urls[0].rsplit(":", 1)[1])
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca.cert_file)) as client:
            assert (await client.get(f"{urls[0]}/ping")).json() == {"ok": True}
            kept_open = client  # its connection stays open across the rotation
            before = await trio.to_thread.run_sync(_handshake, port, ca.cert_file)
            assert before == _serial(first.cert_file)
            first_ends = expiry(first.cert_file)
            assert _gauge("http") == first_ends

            assert not certificates.reload_if_changed()  # nothing changed: nothing reloaded
            second = issue(tmp_path / "ca", "server", HOSTS, out=tmp_path / "live", days=30)  # the same files, rewritten
            assert certificates.reload_if_changed()
            after = await trio.to_thread.run_sync(_handshake, port, ca.cert_file)
            assert after == _serial(second.cert_file) != before
            assert _gauge("http") == expiry(second.cert_file) < first_ends - 300 * 86400
            assert (await kept_open.get(f"{urls[0]}/ping")).status_code == 200

            # a broken replacement (a key that is not the certificate's) is refused; the last good one stays
            other = issue(tmp_path / "ca", "other", HOSTS, out=tmp_path / "elsewhere")
            second.key_file.write_bytes(other.key_file.read_bytes())
            assert not certificates.reload_if_changed()
            assert await trio.to_thread.run_sync(_handshake, port, ca.cert_file) == after
        nursery.cancel_scope.cancel()


async def test_mutual_tls_refuses_a_client_without_a_certificate_from_the_ca(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    served = issue(tmp_path / "ca", "server", HOSTS)
    certificates = Certificates(TlsSettings(cert_file=served.cert_file, key_file=served.key_file,
                                            ca_file=ca.cert_file, client_auth=True))
    till = issue(tmp_path / "ca", "till-1", HOSTS, client=True)
    make_ca(tmp_path / "stranger-ca")
    stranger = issue(tmp_path / "stranger-ca", "till-x", HOSTS, client=True)
    app = with_api_errors(Starlette(routes=[route("/ping", GET=_ping)]))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(lambda task_status: serve(app, "127.0.0.1", 0, tls=certificates.server,
                                                             task_status=task_status))
        port = int(urls[0].rsplit(":", 1)[1])
        assert await trio.to_thread.run_sync(_handshake, port, ca.cert_file, (till.cert_file, till.key_file)) \
            == _serial(served.cert_file)
        for client in (None, (stranger.cert_file, stranger.key_file)):
            with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
                await trio.to_thread.run_sync(_handshake, port, ca.cert_file, client)
        with pytest.raises(ssl.SSLCertVerificationError):  # the server's own certificate, checked by a client
            await trio.to_thread.run_sync(_handshake, port, tmp_path / "stranger-ca" / "ca.pem",
                                          (till.cert_file, till.key_file))
        nursery.cancel_scope.cancel()


async def test_the_edge_serves_https_and_talks_to_nats_over_tls(store_config: StoreConfig, nats_server: EmbeddedNats,
                                                                tmp_path: Path) -> None:
    ca = ensure_ca(nats_server.ca_dir)
    box = issue(nats_server.ca_dir, "store-001", HOSTS, out=tmp_path / "box", client=True)
    config = replace(store_config, tls=TlsSettings(cert_file=box.cert_file, key_file=box.key_file,
                                                   ca_file=ca.cert_file))
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, config)
        assert edge.url.startswith("https://127.0.0.1:")
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca.cert_file)) as client:
            assert (await client.get(f"{edge.url}/healthz")).status_code == 200
        with pytest.raises(httpx.TransportError):  # plain HTTP to the HTTPS port: no answer
            async with httpx.AsyncClient() as plain:
                await plain.get(edge.url.replace("https://", "http://") + "/healthz")
        # the store's link reached NATS over TLS: the server's certificate end is in the gauge
        server_cert = nats_server.ca_dir / "nats-server.pem"
        await wait_until(lambda: trio.to_thread.run_sync(lambda: _gauge("nats_server") == expiry(server_cert)))
        assert _gauge("nats_client") == expiry(box.cert_file)
        nursery.cancel_scope.cancel()


def _plain_nats(port: int) -> bytes:
    """What a client that does not speak TLS gets from the server: its INFO, then a refusal."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.settimeout(5)
        info = raw.recv(4096)
        raw.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    return info + answer


def test_nats_refuses_plain_tcp_and_with_client_verification_a_client_without_a_certificate(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path / "nats", verify_clients=True) as server:
        assert server.url.startswith("tls://")
        seen = _plain_nats(server.port)
        assert b'"tls_required":true' in seen and b"PONG" not in seen

        async def attempts() -> None:
            linked = NatsLink(server.url, "verified", tls=server.client_tls())
            await linked.connect()
            await linked.close()
            bare = Certificates(TlsSettings(ca_file=server.tls_settings().ca_file)).client  # the CA, no certificate
            with pytest.raises(ConnectionError):
                await NatsLink(server.url, "no-certificate", tls=bare).connect(timeout=2)
            with pytest.raises((ssl.SSLError, nats.errors.Error, OSError)):  # the system's CAs do not know ours
                await nats.connect(server.url, allow_reconnect=False, connect_timeout=2)
        asyncio.run(attempts())


def test_tls_settings_that_cannot_work_are_refused_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_ca(tmp_path / "ca")
    made = issue(tmp_path / "ca", "box", HOSTS)
    base = 'tenant = "demo"\nstore = "s1"\ncurrency = "EUR"\n[nats]\nurl = "tls://127.0.0.1:4222"\n'
    config = tmp_path / "store.toml"
    for table, refusal in ((f'cert_file = "{made.cert_file}"', "set both"),
                           (f'ca_file = "{tmp_path}/ca/ca.pem"\nclient_auth = true', "needs cert_file"),
                           ('client_auth = "yes"', "true or false"), ("check_every_s = 0", "check_every_s"),
                           ('cafile = "x"', "unknown setting(s) [tls] cafile")):
        config.write_text(f"{base}[tls]\n{table}\n")
        with pytest.raises(ConfigError, match=re.escape(refusal)):
            load_store(config)
    os.chmod(made.key_file, 0o644)
    with pytest.raises(TlsError, match="open to others.*chmod 600"):
        Certificates(TlsSettings(cert_file=made.cert_file, key_file=made.key_file))
    os.chmod(made.key_file, 0o600)
    other = issue(tmp_path / "ca", "other", HOSTS)
    with pytest.raises(TlsError, match="cannot use the \\[tls\\] files"):
        Certificates(TlsSettings(cert_file=made.cert_file, key_file=other.key_file))
    with pytest.raises(TlsError, match="No such file"):
        Certificates(TlsSettings(ca_file=tmp_path / "missing.pem"))
    config.write_text(f'{base}[tls]\ncert_file = "{made.cert_file}"\nkey_file = "{other.key_file}"\n'
                      f'ca_file = "{tmp_path}/ca/ca.pem"\n')
    loaded = load_store(config)
    with pytest.raises(ConfigError, match="cannot use the \\[tls\\] files"):  # `novapos edge` exits 2 before starting
        loaded.check_runnable()
    # the key as systemd's LoadCredential= hands it over (configs/systemd): a path under its credentials folder
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "ca"))
    config.write_text(f'{base}[tls]\ncert_file = "{made.cert_file}"\nkey_file = "${{CREDENTIALS_DIRECTORY}}/box.key"\n')
    assert load_store(config).tls.key_file == made.key_file


def test_novapos_certs_makes_a_ca_and_certificates_openssl_accepts(tmp_path: Path) -> None:
    def certs(*words: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "novapos.cli", "certs", *words], capture_output=True, text=True,
                              timeout=60)
    ca = tmp_path / "ca"
    assert certs("ca", "--dir", str(ca)).returncode == 0
    again = certs("ca", "--dir", str(ca))
    assert again.returncode == 1 and "already holds a CA" in again.stderr
    assert certs("issue", "store-001", "--dir", str(ca), "--host", "store-001.lan", "--host", "10.1.0.5",
                 "--out", str(tmp_path / "box")).returncode == 0
    assert (tmp_path / "box" / "store-001.key").stat().st_mode & 0o777 == 0o600
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(ca / "ca.pem"), "-purpose", "sslserver",
                               str(tmp_path / "box" / "store-001.pem")], capture_output=True, text=True, timeout=30)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    shown = certs("show", str(tmp_path / "box" / "store-001.pem"))
    assert "store-001.lan, 10.1.0.5" in shown.stdout and "CN=NovaPOS local CA" in shown.stdout
    hostile = certs("issue", "../../etc/x", "--dir", str(ca), "--host", "a")
    assert hostile.returncode == 1 and not (tmp_path / "etc").exists()


def _tls_server_once(context: ssl.SSLContext) -> tuple[int, list[BaseException | None]]:
    """A TLS server on 127.0.0.1 answering one handshake in a thread: its port and, once done, its outcome."""
    import threading
    listener = socket.create_server(("127.0.0.1", 0))
    outcome: list[BaseException | None] = []

    def serve() -> None:
        with listener:
            raw, _ = listener.accept()
            try:
                with context.wrap_socket(raw, server_side=True) as tls:
                    tls.sendall(b"hello")
                    tls.recv(16)
                outcome.append(None)
            except (ssl.SSLError, OSError) as exc:
                outcome.append(exc)
    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], outcome


def test_with_a_ca_file_the_system_cas_are_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server (or a client, under client_auth) with a certificate from a CA in the system's store but not in
    ca_file is refused: SSL_CERT_FILE stands in for the system store here."""
    ca = make_ca(tmp_path / "ca")
    ours = issue(tmp_path / "ca", "ours", HOSTS, client=True)
    public = make_ca(tmp_path / "public-ca")
    impostor = issue(tmp_path / "public-ca", "impostor", HOSTS, client=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(public.cert_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    client = Certificates(TlsSettings(cert_file=ours.cert_file, key_file=ours.key_file, ca_file=ca.cert_file)).client
    assert client is not None
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(impostor.cert_file, impostor.key_file)
    port, _ = _tls_server_once(served)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        client.wrap_socket(raw, server_hostname="127.0.0.1")

    server = Certificates(TlsSettings(cert_file=ours.cert_file, key_file=ours.key_file, ca_file=ca.cert_file,
                                      client_auth=True)).server
    assert server is not None
    port, outcome = _tls_server_once(server)
    stranger = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    stranger.load_verify_locations(ca.cert_file)
    stranger.load_cert_chain(impostor.cert_file, impostor.key_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with stranger.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.recv(16)
        except (ssl.SSLError, OSError):
            pass
    wait_until_done = 50
    while not outcome and wait_until_done:
        import time
        time.sleep(0.1)
        wait_until_done -= 1
    assert outcome and isinstance(outcome[0], ssl.SSLError), outcome


def test_certificates_are_servers_only_unless_a_client_is_asked_for(tmp_path: Path) -> None:
    make_ca(tmp_path / "ca")

    def usages(made: Issued) -> set[x509.ObjectIdentifier]:
        cert = x509.load_pem_x509_certificate(made.cert_file.read_bytes())
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages(issue(tmp_path / "ca", "nats-server", HOSTS)) == {ExtendedKeyUsageOID.SERVER_AUTH}
    assert usages(issue(tmp_path / "ca", "store-001", HOSTS, client=True)) == {ExtendedKeyUsageOID.SERVER_AUTH,
                                                                                ExtendedKeyUsageOID.CLIENT_AUTH}


def test_certificates_are_not_written_into_a_folder_others_may_write(tmp_path: Path) -> None:
    make_ca(tmp_path / "ca")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp: anyone could have planted a link or swap the key
    with pytest.raises(UnsafeFolder, match="writable by group or others"):
        issue(tmp_path / "ca", "store-001", HOSTS, out=shared)
    assert list(shared.iterdir()) == []
    made = issue(tmp_path / "ca", "store-001", HOSTS, out=tmp_path / "private")
    assert (made.key_file.stat().st_mode & 0o777, made.cert_file.stat().st_mode & 0o777) == (0o600, 0o644)
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o700
    assert sorted(path.name for path in (tmp_path / "private").iterdir()) == ["store-001.key", "store-001.pem"]


async def test_an_idle_keep_alive_connection_outlives_the_clients_own_limit() -> None:
    """httpx drops an idle connection after 5 s, hypercorn's default would close it after 5 s too: the two raced,
    and a request sent on a connection the server was closing failed ("server disconnected"). The server now keeps
    it KEEP_ALIVE_S, so a connection idle for longer than the clients' 5 s still answers."""
    app = with_api_errors(Starlette(routes=[route("/ping", GET=_ping)]))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(lambda task_status: serve(app, "127.0.0.1", 0, task_status=task_status))
        port = int(urls[0].rsplit(":", 1)[1])
        request = f"GET /ping HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode()
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            for pause in (0.0, 6.0):
                await trio.sleep(pause)
                await stream.send_all(request)
                answer = b""
                with trio.fail_after(5):
                    while not answer.endswith(b'{"ok":true}'):  # the whole answer, headers and body
                        assert (chunk := await stream.receive_some(65536)), f"closed after {pause} s idle"
                        answer += chunk
                assert answer.startswith(b"HTTP/1.1 200"), answer[:60]
        nursery.cancel_scope.cancel()
