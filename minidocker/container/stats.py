"""`docker stats`: what a container uses, read from its cgroup, and the columns the CLI makes of it.

    stats(refs)    GET /containers/{id}/stats?stream=false, for each   -> [StatsResponse, ...]

The engine's half reads counters: the cgroup's memory use and CPU time, its number of processes,
and the whole machine's CPU time from /proc/stat. A counter alone says little ("3.2 s of CPU
since it started"); a *rate* needs two samples. So a one-shot answer holds two: `precpu_stats`
is a sample taken a second before `cpu_stats`, as dockerd's collector samples every second.

The CLI's half (`row`) is the docker CLI's arithmetic, reproduced: CPU % is the container's
share of all the CPU time that passed between the two samples, times the number of CPUs, so one
busy core on a 2-core machine shows 100%, and both show 200%, as `top` counts (docs/commands.md#stats).
"""

import os
import time

from minidocker import runtime, store
from minidocker.cgroups.base import keyed
from minidocker.container import formatting, records
from minidocker.container.lifecycle import cgroup_of
from minidocker.errors import MinidockerError

SAMPLE_INTERVAL = 1.0  # seconds between the two samples: dockerd's collector interval
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time, which an empty answer carries
HEADERS = {"Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
           "PIDs": "PIDS"}
TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


# ---------------------------------------------------------------------------------------------
# The engine: samples of the cgroup's counters

def stats(containers: list[records.Container], interval: float = SAMPLE_INTERVAL) -> list[dict]:
    """One StatsResponse per container, each with the sample taken `interval` seconds earlier
    as its precpu_stats. All containers are sampled together, so the wait is paid once."""
    first = {c.id: sample(c) for c in containers}
    if any(c.state["Running"] for c in containers):
        time.sleep(interval)
    answers = []
    for c in containers:
        now = sample(c)
        if c.state["Running"]:
            now.update(preread=first[c.id]["read"], precpu_stats=first[c.id]["cpu_stats"])
        answers.append(now)
    return answers


def sample(c: records.Container) -> dict:
    """The counters now. A container that does not run answers with zeros, as dockerd does."""
    answer = {"read": ZERO_TIME, "preread": ZERO_TIME, "id": c.id, "name": f"/{c.name}",
              "pids_stats": {}, "blkio_stats": {"io_service_bytes_recursive": None}, "cpu_stats": _cpu(0),
              "precpu_stats": _cpu(0), "memory_stats": {}}
    if not c.state["Running"]:
        return answer
    try:
        used = runtime.stats(c.id)  # memory_bytes, pids, cpu_usage_ns: the runtime reads the cgroup
        memory_stat = _memory_stat(c)
    except (MinidockerError, FileNotFoundError):
        return answer  # it exited just now: the runtime has let go of it
    system_ns, cpus = system_cpu()
    host = c.record["HostConfig"]
    machine = machine_memory()
    answer.update(
        read=store.now(),
        pids_stats={"current": used["pids"] or 0, **({"limit": host["PidsLimit"]} if host.get("PidsLimit", 0) > 0 else {})},
        cpu_stats=_cpu(used["cpu_usage_ns"] or 0, system_ns, cpus),
        # No --memory: the limit is the machine's memory, as dockerd reports it.
        memory_stats={"usage": used["memory_bytes"] or 0, "stats": memory_stat,
                      "limit": min(host.get("Memory") or machine, machine)})
    # Block I/O needs the blkio (v1) or io (v2) controller, which we do not put containers in;
    # network I/O needs a network, chapter 04's. Both stay empty, and show as 0B / 0B.
    return answer


def _cpu(total_ns: int, system_ns: int = 0, cpus: int = 0) -> dict:
    return {"cpu_usage": {"total_usage": total_ns}, "system_cpu_usage": system_ns, "online_cpus": cpus}


def _memory_stat(c: records.Container) -> dict[str, int]:
    """memory.stat: the kernel's breakdown of the memory use (page cache, anonymous memory...)."""
    cgroup = cgroup_of(c)
    if "memory" not in cgroup.controllers():
        return {}
    return {key: int(value) for key, value in keyed(cgroup.file("memory", "memory.stat")).items()}


# --8<-- [start:system-cpu]
def system_cpu() -> tuple[int, int]:
    """All CPU time the machine spent, in ns, and its number of CPUs, from /proc/stat.

    The first line, "cpu  user nice system idle iowait irq softirq steal ...", counts clock
    ticks (1/100 s) summed over every CPU; dockerd adds the first seven. One "cpuN" line per CPU.
    """
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    ticks = sum(int(field) for field in lines[0].split()[1:8])
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return ticks * 10**9 // os.sysconf("SC_CLK_TCK"), cpus
# --8<-- [end:system-cpu]


def machine_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB, meaning KiB
    return 0


# ---------------------------------------------------------------------------------------------
# The CLI: what the docker CLI computes from an answer, and how it writes it

# --8<-- [start:cpu-percent]
def cpu_percent(previous: dict, current: dict) -> float:
    """The container's CPU time over the machine's, between two samples, times the CPUs."""
    # In floats, subtracted after the conversion, as the docker CLI computes it (to the last bit).
    container = float(current["cpu_usage"]["total_usage"]) - float(previous["cpu_usage"]["total_usage"])
    system = float(current["system_cpu_usage"]) - float(previous["system_cpu_usage"])
    if system > 0 and container > 0:
        return container / system * current["online_cpus"] * 100
    return 0.0
# --8<-- [end:cpu-percent]


# --8<-- [start:memory-used]
def memory_used(memory: dict) -> int:
    """The use without the inactive page cache: file data the kernel can drop at any moment is
    not what a container needs. (v1 calls it total_inactive_file, v2 inactive_file.)"""
    usage, breakdown = memory.get("usage", 0), memory.get("stats") or {}
    cache = breakdown.get("total_inactive_file", breakdown.get("inactive_file", 0))
    return usage - cache if cache < usage else usage
# --8<-- [end:memory-used]


def row(answer: dict, asked_as: str, trunc: bool = True) -> dict[str, str]:
    """The fields a --format template can use, as the docker CLI's stats context has them."""
    memory = answer["memory_stats"]
    used, limit = memory_used(memory), memory.get("limit", 0)
    return {"Container": asked_as, "Name": answer["name"].lstrip("/") or "--",
            "ID": answer["id"][:12] if trunc else answer["id"],
            "CPUPerc": f"{cpu_percent(answer['precpu_stats'], answer['cpu_stats']):.2f}%",
            "MemUsage": f"{formatting.bytes_size(used)} / {formatting.bytes_size(limit)}",
            "MemPerc": f"{float(used) / float(limit) * 100 if limit else 0:.2f}%",
            "NetIO": _pair(*network_io(answer)), "BlockIO": _pair(*block_io(answer)),
            "PIDs": str(answer["pids_stats"].get("current", 0))}


def network_io(answer: dict) -> tuple[int, int]:
    """Bytes received and sent, over all of the container's networks (none until chapter 04)."""
    networks = (answer.get("networks") or {}).values()
    return sum(n.get("rx_bytes", 0) for n in networks), sum(n.get("tx_bytes", 0) for n in networks)


def block_io(answer: dict) -> tuple[int, int]:
    """Bytes read and written on block devices: the entries whose op is Read or Write."""
    entries = answer["blkio_stats"].get("io_service_bytes_recursive") or []
    read = sum(e["value"] for e in entries if e.get("op", "")[:1] in ("r", "R"))
    written = sum(e["value"] for e in entries if e.get("op", "")[:1] in ("w", "W"))
    return read, written


def _pair(first: int, second: int) -> str:
    return f"{formatting.human_size(first)} / {formatting.human_size(second)}"
