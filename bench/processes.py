"""CPU of this benchmark's process tree, by role: which process burns the machine's cores.

Read from /proc (Linux): every live descendant of this process, named by what it runs: `nats` (nats-server),
`postgresql` (the postmaster and its backends), `hub` (`novapos hub`), `generator` (bench.lean_stores' workers),
`sim` (any other Python child: the simulator's workers), and `bench` (this process itself, where an in-process
simulator also runs). And the whole machine's (`machine_ticks`): what else ran meanwhile, and the hypervisor's steal.
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
    if "bench.lean_stores" in argv:
        return "generator"
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


def machine_ticks() -> tuple[int, int, int]:
    """The whole machine's CPU time so far, in ticks (/proc/stat's first line): (busy, stolen, all). Busy is all
    but idle, I/O wait and steal; steal is what the hypervisor gave other guests while this one wanted to run."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle, iowait, steal = fields[3], fields[4], fields[7]
    total = sum(fields)
    return total - idle - iowait - steal, steal, total


def machine_share(before: tuple[int, int, int], after: tuple[int, int, int]) -> dict[str, float]:
    """Between two machine_ticks readings: the cores the whole machine kept busy (this benchmark and anything
    else) and the share of CPU time stolen by the hypervisor."""
    busy, steal, total = (later - earlier for later, earlier in zip(after, before, strict=True))
    cpus = os.cpu_count() or 1
    return {"busy_cores": round(busy / total * cpus, 2) if total else 0.0,
            "steal_share": round(steal / total, 3) if total else 0.0}
