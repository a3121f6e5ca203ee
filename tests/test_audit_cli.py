"""`novapos hub audit checkpoint|verify` as an operator runs them: one line, exit 0 when intact, 1 naming the
first broken record (or the checkpoint the chain fails), 2 when it cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import tomli_w

from tests.audit_support import fill, run, tampering


def _novapos(config: Path, *args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOVAPOS_DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "novapos.cli", "hub", "--config", str(config), "audit", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_checkpoint_and_verify_from_the_command_line(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    folder = tmp_path / "checkpoints"
    config.write_text(tomli_w.dumps({"tenants": ["demo", "other"], "audit": {"checkpoint_dir": str(folder)}}))

    async def chains(pool: asyncpg.Pool) -> None:
        await fill(pool, "demo", 12)
        await fill(pool, "other", 3)
    run(database_url, chains)

    signed = _novapos(config, "checkpoint", database_url=database_url)
    assert signed.returncode == 0, signed.stderr
    assert "2 checkpoint(s) written" in signed.stdout and (folder / "demo" / f"{12:012d}.note").exists()
    intact = _novapos(config, "verify", database_url=database_url)
    assert intact.returncode == 0, intact.stderr
    assert "audit chain of demo is intact: 12 records" in intact.stdout and "checkpoint at 12" in intact.stdout

    run(database_url, lambda pool: tampering(
        pool, "UPDATE audit_records SET actor = 'eve' WHERE tenant = 'demo' AND seq = 4"))
    broken = _novapos(config, "verify", "--tenant", "demo", database_url=database_url)
    assert broken.returncode == 1
    assert broken.stdout.startswith("audit chain of demo is broken at record 4: hash mismatch")
    # The checkpointer checks what it signs: the records since the last checkpoint.
    run(database_url, lambda pool: fill(pool, "demo", 2))
    run(database_url, lambda pool: tampering(
        pool, "UPDATE audit_records SET actor = 'eve' WHERE tenant = 'demo' AND seq = 13"))
    refused = _novapos(config, "checkpoint", "--tenant", "demo", database_url=database_url)
    assert refused.returncode == 1 and "not signing" in refused.stdout
    other = _novapos(config, "verify", "--tenant", "other", database_url=database_url)
    assert other.returncode == 0 and "intact: 3 records" in other.stdout
    erased = _novapos(config, "erase", "nobody@example.com", "--tenant", "other", database_url=database_url)
    assert erased.returncode == 0 and "erased 0 personal value(s)" in erased.stdout
    bad = _novapos(config, "verify", "--tenant", "../x", database_url=database_url)
    assert bad.returncode == 2 and "--tenant" in bad.stderr
