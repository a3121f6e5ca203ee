"""CPU of this benchmark's process tree, by role: which process burns the machine's cores.

Read from /proc (Linux): every live descendant of this process, named by what it runs: `nats` (nats-server),
`postgresql` (the postmaster and its backends), `hub` (`novapos hub`), `sim` (any other Python child: the
simulator's workers), and `bench` (this process itself, where an in-process simulator also runs).
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _role(pid: int, argv: list[str]) -> str:
    if pid == os.getpid():
        return "bench"
    program = Path(argv[0]).name if argv else ""
    if program == "nats-server":
        return "nats"
    if program.startswith("postgres"):  # backends rename themselves "postgres: user db ..."
        return "postgresql"
    if "novapos.cli" in argv and "hub" in argv:
        return "hub"
    return "sim"


def _processes() -> dict[int, tuple[int, float, list[str]]]:
    """pid -> (parent pid, CPU seconds so far, argv) of every process we may read."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone meanwhile
            continue
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, [a for a in argv if a])
    return found


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU seconds used so far, user and system) of this process and each live descendant."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found = {}
    pending = [os.getpid()]
    while pending:
        pid = pending.pop()
        if pid in processes:
            _, cpu, argv = processes[pid]
            found[pid] = (_role(pid, argv), cpu)
        pending.extend(children.get(pid, ()))
    return found


def cpu_share(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
              seconds: float) -> dict[str, float]:
    """Cores each role kept busy between two readings `seconds` apart (1.0: one core all the time): what each
    process alive at the second used since the first (or since it started); a process gone meanwhile (killed)
    counts for nothing."""
    used: dict[str, float] = {}
    for pid, (role, cpu) in after.items():
        used[role] = used.get(role, 0.0) + cpu - (before[pid][1] if pid in before else 0.0)
    return {role: round(used[role] / seconds, 2) for role in sorted(used)}
