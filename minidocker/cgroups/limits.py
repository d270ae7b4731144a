"""Limits as cgroup files: which file takes which value, for cgroup v1 and for v2.

`docker run -m 32m --pids-limit 10 --cpus 0.5` reaches the runtime as the OCI spec's
`linux.resources` (the engine translates the flags, see minidocker/container/spec.py):

    {"memory": {"limit": 33554432, "swap": 67108864},   # swap: memory+swap, Docker's 2x default
     "pids": {"limit": 10},
     "cpu": {"quota": 50000, "period": 100000}}         # 50 ms of CPU time per 100 ms

This module turns that into the writes that set it, as runc's two cgroup drivers do. It is pure:
it reads and writes no file, so its tests run for both versions on any host, with or without
the kernel's controllers (see docs/01-isolation.md#ex-01-cgroup-limits).
"""

from minidocker.errors import MinidockerError

CFS_PERIOD_US = 100_000  # Docker's CFS period: CPU time is granted per 100 ms window
MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses less: "Minimum memory limit allowed is 6MB"
SWAP_FILES = ("memory.memsw.limit_in_bytes", "memory.swap.max")  # absent without swap accounting


def limit_writes(version: int, resources: dict) -> list[tuple[str, str, str]]:
    """linux.resources -> the writes that set its limits, in order: (controller, file, value).

    "Not set" is left as the kernel has it (unlimited in a new cgroup): a missing field, a limit
    of 0, an empty dict. -1 means unlimited, as in the OCI spec.
    """
    memory, pids, cpu = (resources.get(key) or {} for key in ("memory", "pids", "cpu"))
    limit, swap = memory.get("limit") or 0, memory.get("swap") or 0
    if limit > 0 and 0 < swap < limit:  # the files could not say it: v2's swap.max would be < 0
        raise MinidockerError(f"memory+swap limit {swap} is below the memory limit {limit}",
                              "memory.swap counts memory and swap together: give at least the limit, or -1")
    # --8<-- [start:ex-01-cgroup-limits]
    # Return the writes (controller, file, value) that set the memory (limit, swap), pids and cpu
    # (quota, period) limits of `resources` in cgroup `version` 1 or 2, in an order the kernel
    # accepts. The table in the docs says which file takes which value.
    #
    # v1 refuses any write that leaves memory.limit_in_bytes above memory.memsw.limit_in_bytes,
    # whatever the two files held before. Writing memsw = -1 (unlimited) first makes every new pair
    # writable in order: the limit, then memsw.
    writes = []
    if limit > 0:
        if version == 1:
            writes += [("memory", "memory.memsw.limit_in_bytes", "-1"),
                       ("memory", "memory.limit_in_bytes", str(limit))]
            if swap:
                writes.append(("memory", "memory.memsw.limit_in_bytes", str(swap)))
        else:
            writes.append(("memory", "memory.max", str(limit)))
            if swap:  # v2 counts swap on its own: memory+swap minus memory
                writes.append(("memory", "memory.swap.max", "max" if swap < 0 else str(swap - limit)))
    if pids.get("limit"):
        writes.append(("pids", "pids.max", str(pids["limit"]) if pids["limit"] > 0 else "max"))
    if cpu.get("quota") or cpu.get("period"):
        period = cpu.get("period") or CFS_PERIOD_US
        quota = cpu["quota"] if (cpu.get("quota") or 0) > 0 else None  # None: no quota
        if version == 1:
            writes += [("cpu", "cpu.cfs_period_us", str(period)),
                       ("cpu", "cpu.cfs_quota_us", str(quota or -1))]
        else:
            writes.append(("cpu", "cpu.max", f"{quota or 'max'} {period}"))
    return writes
    # --8<-- [end:ex-01-cgroup-limits]
