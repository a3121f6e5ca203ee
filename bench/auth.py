"""NATS authorization benchmark: a generated config with one NKEY user per store, at 1,000 and 10,000 stores.

    python -m bench.auth [--stores 1000,10000] [--connects 50]

What a plain nats-server config with a block per store costs, measured on a real nats-server (the one the
demo and the tests run), for each store count:

- generate_ms: hub.tenancy.nats_auth.authorization() for that many stores (the pure function), and the
  file's size (config_kb).
- start_s: nats-server started with that config until it accepts connections.
- rss_mb: the server's resident memory once started, beside rss_floor_mb, the same server with no
  authorization at all (measured once): what the users themselves cost.
- reload_ms: one store added (the file rewritten, SIGHUP) until that store's new key can log in: how long a
  provisioned store waits; revoke_ms: one store removed until its key is refused.
- connect_ms: a store logging in (TCP, nonce signed with its seed, CONNECT, PING/PONG) beside
  connect_floor_ms, an anonymous login to the server with no authorization.
- publish_eps: core publishes by a store user on its own subject (each checked against its permissions,
  cached by the server) beside publish_floor_eps, the same by the unrestricted hub user.

And once, the alternative, operator/JWT mode (memory resolver, one account): jwt_rss_mb (independent of the
number of stores: their user JWTs live on the stores), jwt_connect_ms (a login with a user JWT), jwt_issue_ms
(signing one store's user JWT) and jwt_revoke_ms (the account JWT re-issued with a revocation, reloaded,
until the store's login is refused).

Every server here runs without TLS: the figures are the authorization's own cost (TLS adds the same
handshake to every login, authorized or not).

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import secrets
import signal
import tempfile
import time
from pathlib import Path

import nats
import nkeys

from bench.figures import progress, ratio, summary
from hub.tenancy.credentials import new_seed, public_key, write_seed
from hub.tenancy.nats_auth import StoreUser, authorization, write_atomically
from novapos.adapters.nats import store_inbox_prefix
from novapos.demo.embedded_nats import EmbeddedNats, nats_server_binary
from novapos.demo.processes import ManagedProcess, free_port, wait_for_port

PUBLISHES = 50_000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def quiet(_exc: Exception) -> None:
    """Refused logins are expected while polling for a reload: not worth nats-py's traceback."""


async def login(url: str, seed: Path | None, inbox: str | None = None) -> float:
    """Seconds for one login to answer a PING (a refused login raises)."""
    started = time.perf_counter()
    options: dict[str, object] = {} if seed is None else {"nkeys_seed": str(seed)}
    if inbox:
        options["inbox_prefix"] = inbox
    client = await nats.connect(url, allow_reconnect=False, connect_timeout=2, error_cb=quiet, **options)
    await client.flush()
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


async def until_login(url: str, seed: Path, accepted: bool, reload_pid: int | None = None,
                      timeout: float = 30.0) -> float:
    """Seconds until a login with `seed` is accepted (or refused, when not `accepted`), counted from the
    reload signal sent to `reload_pid` when given."""
    started = time.perf_counter()
    if reload_pid is not None:
        os.kill(reload_pid, signal.SIGHUP)
    while time.perf_counter() - started < timeout:
        try:
            await login(url, seed)
            if accepted:
                return time.perf_counter() - started
        except Exception:
            if not accepted:
                return time.perf_counter() - started
        await asyncio.sleep(0.002)
    raise TimeoutError(f"the reload did not take effect within {timeout:.0f} s")


async def publish_rate(url: str, seed: Path | None, subject: str, inbox: str | None) -> float:
    options: dict[str, object] = {} if seed is None else {"nkeys_seed": str(seed)}
    if inbox:
        options["inbox_prefix"] = inbox
    client = await nats.connect(url, error_cb=quiet, **options)
    payload = b"x" * 200
    started = time.perf_counter()
    for _ in range(PUBLISHES):
        await client.publish(subject, payload)
    await client.flush(timeout=60)
    elapsed = time.perf_counter() - started
    await client.close()
    return PUBLISHES / elapsed


def users(count: int, folder: Path) -> tuple[list[StoreUser], Path]:
    """`count` store users (a fresh key each) and the seed file of the first one."""
    made = []
    first = folder / "store-00000.seed"
    for number in range(count):
        seed = new_seed()
        if number == 0:
            write_seed(first, seed)
        made.append(StoreUser("bench", f"store-{number:05d}", public_key(seed)))
    return made, first


def measure(count: int, connects: int, state: Path, hub_seed: str, hub_file: Path) -> dict[str, object]:
    progress(f"{count} stores: keys, then the authorization")
    stores, first_seed = users(count, state)
    started = time.perf_counter()
    text = authorization(public_key(hub_seed), stores)
    generated = time.perf_counter() - started
    auth = state / "authorization.conf"
    write_atomically(auth, text)
    # without TLS, as the floor and the JWT server: the figures are the authorization's own cost
    server = EmbeddedNats(state / "nats", authorization=auth, hub_credentials=hub_file, tls=False)
    started = time.perf_counter()
    server.start(timeout=120)
    try:
        asyncio.run(until_login(server.url, first_seed, accepted=True))
        start_s = time.perf_counter() - started
        pid = int(server.pid_file.read_text())
        rss = rss_mb(pid)
        progress(f"{count} stores: reloads (one store added, then removed)")
        newcomer = new_seed()
        write_seed(state / "newcomer.seed", newcomer)
        added = [*stores, StoreUser("bench", "newcomer", public_key(newcomer))]
        write_atomically(auth, authorization(public_key(hub_seed), added))
        reload_s = asyncio.run(until_login(server.url, state / "newcomer.seed", accepted=True, reload_pid=pid))
        write_atomically(auth, authorization(public_key(hub_seed), stores))
        revoke_s = asyncio.run(until_login(server.url, state / "newcomer.seed", accepted=False, reload_pid=pid))
        rss_after = rss_mb(pid)
        progress(f"{count} stores: {connects} logins, then {PUBLISHES} publishes as a store and as the hub")
        logins = [asyncio.run(login(server.url, first_seed, store_inbox_prefix("bench", "store-00000")))
                  for _ in range(connects + 1)][1:]  # the first one warms up
        subject = "novapos.bench.store-00000.evt.bench"
        store_eps = asyncio.run(publish_rate(server.url, first_seed, subject, store_inbox_prefix("bench", "store-00000")))
        hub_eps = asyncio.run(publish_rate(server.url, hub_file, subject, None))
    finally:
        server.stop()
    return {"generate_ms": round(generated * 1000, 1), "config_kb": round(len(text) / 1024),
            "start_s": round(start_s, 2), "rss_mb": rss, "rss_after_reloads_mb": rss_after,
            "reload_ms": round(reload_s * 1000, 1), "revoke_ms": round(revoke_s * 1000, 1),
            "connect_ms": summary(logins), "publish_eps": round(store_eps), "publish_floor_eps": round(hub_eps),
            "publish_ratio": ratio(store_eps, hub_eps)}


def floor(connects: int, state: Path) -> dict[str, object]:
    """The same server with no authorization: its memory and an anonymous login."""
    server = EmbeddedNats(state / "open", tls=False)
    server.start()
    try:
        logins = [asyncio.run(login(server.url, None)) for _ in range(connects + 1)][1:]
        rss = rss_mb(int(server.pid_file.read_text()))
    finally:
        server.stop()
    return {"rss_floor_mb": rss, "connect_floor_ms": summary(logins)}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(issuer_seed: str, subject: str, claims: dict[str, object]) -> str:
    """A NATS JWT (nats-io/jwt v2 layout) signed by `issuer_seed`: enough for the comparison, not for production."""
    issuer = nkeys.from_seed(bytearray(issuer_seed.encode()))
    body: dict[str, object] = {"jti": "", "iat": int(time.time()), "iss": bytes(issuer.public_key).decode(),
                               "name": subject[:8], "sub": subject, "nats": {**claims, "version": 2}}
    body["jti"] = base64.b32encode(hashlib.sha256(json.dumps(body).encode()).digest()).decode().rstrip("=")
    signing = f"{_b64(json.dumps({'typ': 'JWT', 'alg': 'ed25519-nkey'}).encode())}.{_b64(json.dumps(body).encode())}"
    return f"{signing}.{_b64(issuer.sign(signing.encode()))}"


def _seed(prefix: int) -> tuple[str, str]:
    seed = bytes(nkeys.encode_seed(secrets.token_bytes(32), prefix)).decode()
    return seed, bytes(nkeys.from_seed(bytearray(seed.encode())).public_key).decode()


def jwt_mode(connects: int, state: Path) -> dict[str, object]:
    """The alternative: operator/JWT mode with a memory resolver. The server holds the operator and one
    account; each store's user JWT (its permissions inside, signed by the account) lives on the store, so the
    server's config and memory do not grow with stores and adding one needs no reload; revoking one is a new
    account JWT (its revocation list) pushed to the resolver."""
    operator_seed, operator = _seed(nkeys.PREFIX_BYTE_OPERATOR)
    account_seed, account = _seed(nkeys.PREFIX_BYTE_ACCOUNT)
    user_seed, user = _seed(nkeys.PREFIX_BYTE_USER)
    limits = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True, "conn": -1,
              "leaf": -1}
    started = time.perf_counter()
    user_jwt = _jwt(account_seed, user, {"type": "user", "pub": {"allow": ["novapos.bench.s1.evt.>"]},
                                         "sub": {"allow": ["_INBOX.bench.s1.>"]}, "subs": -1, "data": -1,
                                         "payload": -1})
    issue_s = time.perf_counter() - started
    creds = state / "store.creds"
    creds.write_text(f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
                     f"-----BEGIN USER NKEY SEED-----\n{user_seed}\n------END USER NKEY SEED------\n")
    creds.chmod(0o600)
    (state / "operator.jwt").write_text(_jwt(operator_seed, operator, {"type": "operator"}))
    port = free_port()

    def configure(revoked: dict[str, int]) -> None:
        account_jwt = _jwt(operator_seed, account, {"type": "account", "limits": limits, "revocations": revoked})
        (state / "server.conf").write_text(
            f'listen: "127.0.0.1:{port}"\npid_file: "{state / "jwt.pid"}"\noperator: "{state / "operator.jwt"}"\n'
            f'resolver: MEMORY\nresolver_preload: {{ {account}: "{account_jwt}" }}\n')
    configure({})
    server = ManagedProcess("nats-server (JWT)", [nats_server_binary(), "-c", str(state / "server.conf")],
                            state / "jwt.log")
    wait_for_port("127.0.0.1", port, 30, server.spawn())
    url = f"nats://127.0.0.1:{port}"

    async def creds_login() -> float:
        started = time.perf_counter()
        client = await nats.connect(url, user_credentials=str(creds), inbox_prefix="_INBOX.bench.s1",
                                    allow_reconnect=False, connect_timeout=2, error_cb=quiet)
        await client.flush()
        elapsed = time.perf_counter() - started
        await client.close()
        return elapsed
    try:
        logins = [asyncio.run(creds_login()) for _ in range(connects + 1)][1:]
        assert server.process is not None
        rss = rss_mb(server.process.pid)
        configure({user: int(time.time()) + 1})  # revoked: JWTs issued before this instant no longer count

        async def until_refused() -> float:
            started = time.perf_counter()
            os.kill(int((state / "jwt.pid").read_text()), signal.SIGHUP)
            while time.perf_counter() - started < 30:
                try:
                    await creds_login()
                except Exception:
                    return time.perf_counter() - started
                await asyncio.sleep(0.002)
            raise TimeoutError("a revocation in the preloaded account JWT was not applied by a reload")
        try:
            revoke: object = round(asyncio.run(until_refused()) * 1000, 1)
        except TimeoutError as exc:
            revoke = str(exc)
    finally:
        server.stop()
    return {"jwt_issue_ms": round(issue_s * 1000, 2), "jwt_rss_mb": rss, "jwt_connect_ms": summary(logins),
            "jwt_revoke_ms": revoke}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="1000,10000", help="comma-separated store counts (default: %(default)s)")
    parser.add_argument("--connects", type=int, default=50, help="logins timed per count (default: %(default)s)")
    args = parser.parse_args()
    counts = [int(count) for count in args.stores.split(",")]
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="novapos-bench-auth-") as folder:
        state = Path(folder)
        hub_seed = new_seed()
        write_seed(state / "hub.seed", hub_seed)
        figures.update(floor(args.connects, state))
        progress("operator/JWT mode: the server's memory, a store's login, a revocation")
        (state / "jwt").mkdir()
        figures.update(jwt_mode(args.connects, state / "jwt"))
        for count in counts:
            (state / str(count)).mkdir()
            figures[f"stores_{count}"] = measure(count, args.connects, state / str(count), hub_seed,
                                                 state / "hub.seed")
    figures["python"] = platform.python_version()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
