"""The hub's PostgreSQL: a base backup plus the WAL archive bring it back to a point in time (PITR), with the
command lines of docs/backups.md, on the pgserver wheel's binaries.

A primary archives its WAL (archive_command); pg_basebackup copies it while it runs, pg_verifybackup checks the
copy, pg_archivecleanup drops the WAL it does not need; rows are written after the backup (only the WAL archive
has them), then a mistake destroys the table. The backup, recovered with restore_command up to a time before the
mistake, has every row and the table."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from novapos.demo.embedded_postgres import EmbeddedPostgres, postgres_bin_dir

BIN = postgres_bin_dir()


def _own(path: Path, user: str | None) -> Path:
    """`path`, a folder the server's user (when we are root) can write in."""
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(path, user, user)
    return path


def psql(server: EmbeddedPostgres, statement: str) -> str:
    done = subprocess.run([str(BIN / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", server.url(), "-c",
                           statement], capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def run(server: EmbeddedPostgres, tool: str, *args: str) -> None:
    """One of the server's tools, as the server's user; its error output in the failure."""
    done = subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=120, user=server.user)
    assert done.returncode == 0, done.stderr


def wait_for(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def work() -> Iterator[Path]:
    """Not under pytest's tmp folder: pytest keeps that 0700, and PostgreSQL runs as another user."""
    folder = Path(tempfile.mkdtemp(prefix="novapos-test-pitr-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_base_backup_and_the_wal_archive_recover_to_a_point_in_time(work: Path) -> None:
    archive = work / "wal-archive"
    primary = EmbeddedPostgres(work / "primary", settings={
        "wal_level": "replica", "archive_mode": "on",
        "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f"})
    _own(archive, primary.user)
    primary.start()
    try:
        psql(primary, "CREATE TABLE sales (n int PRIMARY KEY); INSERT INTO sales SELECT generate_series(1, 3)")
        base = _own(work / "restored", primary.user) / "pgdata"
        run(primary, "pg_basebackup", "-h", primary.host, "-p", str(primary.port), "-U", "postgres", "-D", str(base),
            "-Fp", "-X", "stream", "-c", "fast")
        run(primary, "pg_verifybackup", str(base))
        label = (base / "backup_label").read_text()
        first_needed = re.search(r"START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)", label)
        assert first_needed is not None, label
        psql(primary, "INSERT INTO sales SELECT generate_series(4, 6)")  # after the backup: in the WAL alone
        target = psql(primary, "SELECT clock_timestamp()")
        time.sleep(1.1)
        psql(primary, "DROP TABLE sales")  # the mistake
        segment = psql(primary, "SELECT pg_walfile_name(pg_switch_wal())")
        wait_for(lambda: (archive / segment).exists())
        older = sorted(path.name for path in archive.iterdir() if path.name < first_needed[1])
        assert older  # the segments before the base backup were archived
        run(primary, "pg_archivecleanup", str(archive), first_needed[1])  # the base backup does not need them
        assert not [path for path in archive.iterdir() if path.name in older]
    finally:
        primary.kill()  # the primary is gone (its disk with it)

    with (base / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"restore_command = 'cp {archive}/%f %p'\nrecovery_target_time = '{target}'\n"
                   "recovery_target_action = 'promote'\n")
    (base / "recovery.signal").touch()
    restored = EmbeddedPostgres(work / "restored")
    restored.start()
    try:
        wait_for(lambda: psql(restored, "SELECT pg_is_in_recovery()") == "f")
        assert psql(restored, "SELECT string_agg(n::text, ',' ORDER BY n) FROM sales") == "1,2,3,4,5,6"
        assert not (base / "recovery.signal").exists()  # promoted: it takes writes again, on a new timeline
        psql(restored, "INSERT INTO sales VALUES (7)")
        assert psql(restored, "SELECT timeline_id FROM pg_control_checkpoint()") != "1"
    finally:
        restored.stop()
