"""`novapos hub user ...` as an operator runs it (a subprocess, real PostgreSQL and NATS): users added with
roles and secrets from stdin, refusals with a sentence and exit 1 changing nothing, a deactivation sent to
the store's staff subject, every change audited as cli:<os user>."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from pathlib import Path

import asyncpg
import nats

from hub.db import close_pool, create_pool, migrate
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.staff import decode_list, staff_subject
from tests.conftest import tls_toml
from tests.stock_world import WORLD_SQL


async def _novapos(config: Path, *words: str, stdin: str = "") -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVAPOS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "novapos.cli", "hub", "--config", str(config), "user", *words, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def test_user_commands_add_refuse_deactivate_list_and_audit(tmp_path: Path, database_url: str,
                                                           nats_server: EmbeddedNats) -> None:
    asyncio.run(_scenario(tmp_path, database_url, nats_server))


async def _scenario(tmp_path: Path, database_url: str, nats_server: EmbeddedNats) -> None:
    pool = await create_pool(database_url, max_size=2)
    try:
        await migrate(pool)
        await pool.execute(WORLD_SQL)
    finally:
        await close_pool(pool)
    config = tmp_path / "hub.toml"
    config.write_text(f'tenants = ["demo"]\n[nats]\nurl = "{nats_server.url}"\n'
                      f'credentials = "{nats_server.hub_credentials}"\n[database]\nurl = "{database_url}"\n'
                      f'{tls_toml(nats_server.tls_settings())}')
    listener = await nats.connect(nats_server.url, **nats_server.hub_options())
    lists = await listener.subscribe(staff_subject("demo", "store-001"))
    try:
        code, out, err = await _novapos(config, "add", "boss", "--tenant", "demo", "--name", "Boss", "--role",
                                        "tenant_admin", "--password-stdin", stdin="a long enough secret\n")
        assert (code, out.strip()) == (0, "user demo/boss added"), err
        code, out, err = await _novapos(config, "add", "kim", "--tenant", "demo", "--name", "Kim", "--role",
                                        "cashier:store-001", "--role", "supervisor:store-002", "--no-password",
                                        "--pin-stdin", stdin="8152\n")
        assert code == 0, err
        first = decode_list((await lists.next_msg(timeout=5)).data)
        assert [(u.login, u.roles) for u in first.users] == [("kim", ("cashier",))]

        refusals = [
            (("add", "x1", "--tenant", "demo", "--name", "X", "--role", "cashier:o-1", "--no-password"), "",
             "no store 'o-1'"),
            (("add", "x2", "--tenant", "demo", "--name", "X", "--role", "cashier:store-001", "--no-password",
              "--pin-stdin"), "1234\n", "too easy"),
            (("add", "x3", "--tenant", "demo", "--name", "X", "--role", "owner", "--no-password"), "", "must start"),
            (("add", "x4", "--tenant", "nope", "--name", "X", "--role", "tenant_admin", "--no-password"), "",
             "no tenant"),
            (("add", "kim", "--tenant", "demo", "--name", "X", "--role", "tenant_admin", "--no-password"), "", "taken"),
            (("passwd", "boss", "--stdin"), "short\n", "at least 10"),
            (("passwd", "boss"), "", "on stdin"),
            (("deactivate", "nobody"), "", "no user"),
        ]
        for words, stdin, said in refusals:
            code, out, err = await _novapos(config, *words, stdin=stdin)
            assert code == 1 and said in err, (words, code, out, err)

        code, _, err = await _novapos(config, "deactivate", "kim")
        assert code == 0, err
        after = decode_list((await lists.next_msg(timeout=5)).data)
        assert after.users == () and after.version > first.version
        code, out, err = await _novapos(config, "list", "--tenant", "demo")
        assert code == 0, err
        assert "demo/kim  Kim  [cashier:store-001, supervisor:store-002]  inactive till" in out
        assert "demo/boss  Boss  [tenant_admin]  console" in out and out.strip().endswith("2 user(s)")
    finally:
        await listener.close()
    actor = f"cli:{getpass.getuser()}"
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT actor, action, target FROM audit_records WHERE tenant = 'demo' ORDER BY seq")
    finally:
        await conn.close()
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        (actor, "user.created", "boss"), (actor, "user.created", "kim"), (actor, "user.deactivated", "kim")]
