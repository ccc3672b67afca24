"""What one job may use: memory, processes, CPU time (SPEC §5.5, docs/jobs.md).

The numbers come from `[runner]`; `cgroup.py` enforces them for the job as a whole where the
host allows it. Where it does not, `rlimits` is the per-process fallback: an address-space
and a CPU-time limit on every process of the job, each on its own (the kernel has no per-job
process count outside a cgroup: RLIMIT_NPROC counts every process of opsroom's user).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from opsroom.config import RunnerSettings
from opsroom.runner.platform import ON_WINDOWS

# After the soft CPU limit a process gets SIGXCPU once a second; the hard limit is SIGKILL.
_CPU_HARD_EXTRA = 5


@dataclass(frozen=True, slots=True)
class Limits:
    """One job's limits; 0 means none. `cgroups`: use a cgroup per job where possible."""

    memory: int = 0  # bytes
    pids: int = 0
    cpu_seconds: float = 0.0
    cgroups: bool = True

    @classmethod
    def from_settings(cls, runner: RunnerSettings) -> Limits:
        """The limits `[runner]` sets for every job."""
        return cls(
            memory=runner.max_memory,
            pids=runner.max_pids,
            cpu_seconds=runner.max_cpu_seconds,
            cgroups=runner.cgroups,
        )

    def memory_reason(self) -> str:
        """The outcome line of a job that went past its memory limit."""
        return f"memory limit {format_bytes(self.memory)} reached"

    def pids_reason(self) -> str:
        """The outcome line of a job that tried to run more processes than it may."""
        return f"process limit {self.pids} reached"

    def cpu_reason(self) -> str:
        """The outcome line of a job that used up its CPU time."""
        return f"CPU time limit {self.cpu_seconds:g} s reached"


NO_LIMITS = Limits()


def format_bytes(n: int) -> str:
    """`2 GiB`, `512 MiB`, `1.5 GiB`: a size as people write a limit."""
    for unit, power in (("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)):
        size = 1024**power
        if n >= size:
            return f"{round(n / size, 2):g} {unit}"
    return f"{n} bytes"


def rlimits(limits: Limits, *, memory: bool, cpu: bool) -> list[tuple[int, tuple[int, int]]]:
    """The setrlimit calls for the limits a cgroup does not enforce (per process, not per job)."""
    if ON_WINDOWS:
        return []  # a Job Object holds them (winjob.py)
    import resource

    wanted: list[tuple[int, int, int]] = []
    if memory and limits.memory:
        wanted.append((resource.RLIMIT_AS, limits.memory, limits.memory))
    if cpu and limits.cpu_seconds:
        soft = max(1, math.ceil(limits.cpu_seconds))
        wanted.append((resource.RLIMIT_CPU, soft, soft + _CPU_HARD_EXTRA))
    calls: list[tuple[int, tuple[int, int]]] = []
    for which, soft, hard in wanted:
        # Never above what opsroom itself may use: raising a hard limit needs privilege.
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            hard = min(hard, current)
            soft = min(soft, hard)
        calls.append((which, (soft, hard)))
    return calls
