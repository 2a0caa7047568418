"""How many CPUs this process may use, and why: the smallest of its affinity mask, its cgroup's CPU
quota and SLURM's allocation. torch's own default is the machine's cores, which oversubscribes a
shared node, a container with a quota or a SLURM task (measured: the reduced quickstart 7.7x slower
in wall time under contention than with one thread; issue 16). The reason goes into provenance."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def usable_cpus(cgroup: Path = CGROUP) -> tuple[int, str]:
    """(CPUs, where the number comes from), e.g. (2, 'cgroup CPU quota 200000/100000 us')."""
    limits: list[tuple[int, str]] = []
    if hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
        limits.append((n, f"affinity mask of {n} CPUs"))
    quota = _cgroup_quota(cgroup)
    if quota is not None:
        limits.append(quota)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        limits.append((int(slurm), f"SLURM_CPUS_PER_TASK={slurm}"))
    if not limits:
        n = os.cpu_count() or 1
        return n, f"os.cpu_count() = {n}"
    return min(limits, key=lambda limit: limit[0])


def _cgroup_quota(root: Path) -> tuple[int, str] | None:
    """The CPU quota of cgroup v2 (cpu.max: 'QUOTA PERIOD' or 'max ...') or v1 (cpu.cfs_quota_us), rounded up."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
        if quota.startswith("-"):
            return None
    try:
        cpus = max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None
    return cpus, f"cgroup CPU quota {quota}/{period} us"


def split_among(workers: int, cgroup: Path = CGROUP) -> tuple[int, str]:
    """Threads for each of ``workers`` processes sharing the usable CPUs, and why."""
    cpus, why = usable_cpus(cgroup)
    return max(1, cpus // workers), f"{cpus} usable CPUs ({why}) shared by {workers} workers"
