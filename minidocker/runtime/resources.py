"""linux.cgroupsPath and linux.resources: which cgroup, and what goes into its files.

The runtime makes the cgroup and writes the limits itself, from the spec alone, as runc does;
the files are written through minidocker.cgroups, which knows v1 from v2.
"""

import os

from minidocker import cgroups
from minidocker.cgroups.base import keyed, write
from minidocker.errors import MinidockerError


def cgroup_path(container_id: str, cgroups_path: str | None) -> str:
    """linux.cgroupsPath as a path below the hierarchy root(s).

    Empty: `$MINIDOCKER_CGROUP_PARENT/<id>` (default parent `minidocker`), where the engine keeps
    its containers. "/a/b" is relative to the root of the cgroup filesystem, as in runc; a
    relative "a/b" is taken the same way (runc would put it under its own cgroup). systemd's
    "slice:prefix:name" form needs systemd's D-Bus API, which we do not speak.
    """
    if not cgroups_path:
        return f"{os.environ.get('MINIDOCKER_CGROUP_PARENT') or 'minidocker'}/{container_id}"
    if ":" in cgroups_path:
        raise MinidockerError(f"cgroupsPath {cgroups_path!r} is systemd's form",
                              "use a path such as /minidocker/<id>")
    return cgroups_path.strip("/")


def cgroup_for(container_id: str, cgroups_path: str | None) -> cgroups.Cgroup:
    return cgroups.detect()(cgroup_path(container_id, cgroups_path))


def apply(cgroup: cgroups.Cgroup, resources: dict) -> None:
    """memory.limit/swap, pids.limit, cpu.quota/period into the cgroup's files.

    Ignored (no test or chapter needs them yet): cpu.shares, cpuset, blockIO, hugepageLimits,
    network, and the devices cgroup (the container only gets the nodes the spec lists anyway).
    """
    memory, pids, cpu = (resources.get(k) or {} for k in ("memory", "pids", "cpu"))
    limit = memory.get("limit")
    limit = limit if limit is not None and limit > 0 else None
    pids_limit = pids.get("limit") or None  # OCI: 0 is "not set"; -1 is unlimited ("max")
    # set_limits checks every controller first, then writes memory (with Docker's default swap:
    # as much again as the memory) and pids.max.
    cgroup.set_limits(memory=limit, pids=pids_limit)
    if limit is not None and memory.get("swap") is not None:
        _swap(cgroup, limit, memory["swap"])
    if cpu.get("quota") or cpu.get("period"):
        _cpu(cgroup, cpu.get("quota"), cpu.get("period") or cgroups.CFS_PERIOD_US)


def _swap(cgroup, limit: int, swap: int) -> None:
    """OCI's memory.swap is memory *plus* swap, as v1's memsw; v2's swap.max is the swap alone."""
    if cgroup.VERSION == 1:
        path, value = cgroup.file("memory", "memory.memsw.limit_in_bytes"), swap
    else:
        path, value = cgroup.file("memory", "memory.swap.max"), "max" if swap < 0 else swap - limit
    if os.path.exists(path):  # a kernel without swap accounting: Docker warns and goes on
        write(path, value)


def _cpu(cgroup, quota: int | None, period: int) -> None:
    if "cpu" not in cgroup.controllers():
        raise MinidockerError("cannot apply cpu.quota: the cpu controller is not available here",
                              cgroup._missing_hint("cpu"))
    unlimited = quota is None or quota < 0
    if cgroup.VERSION == 1:
        write(cgroup.file("cpu", "cpu.cfs_period_us"), period)
        write(cgroup.file("cpu", "cpu.cfs_quota_us"), -1 if unlimited else quota)
    else:
        write(cgroup.file("cpu", "cpu.max"), f"{'max' if unlimited else quota} {period}")


def oom_kills(cgroup: cgroups.Cgroup) -> int:
    """How many processes the OOM killer took in this cgroup (and below)."""
    if "memory" not in cgroup.controllers():
        return 0
    name = "memory.oom_control" if cgroup.VERSION == 1 else "memory.events"
    return int(keyed(cgroup.file("memory", name)).get("oom_kill", 0))
