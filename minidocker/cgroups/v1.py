"""cgroup v1: one hierarchy per controller, a container is a directory in each."""

import os

from minidocker.cgroups.base import MOUNTINFO, Cgroup, cgroup_mounts, keyed, read, read_int, wait_for, write
from minidocker.errors import MinidockerError


class V1(Cgroup):
    VERSION = 1
    # freezer for pause/kill, cpuacct for the CPU usage statistic. No cpuset: a new cpuset cgroup
    # is unusable until cpuset.cpus and cpuset.mems are filled in, and we do not pin CPUs.
    HIERARCHIES = ("memory", "pids", "cpu", "cpuacct", "freezer")
    # devices (chapter 08): joined where it is mounted, never reported missing (a v1 host without
    # it has no device cgroup at all, and pure v2 hosts use a BPF program instead).
    OPTIONAL = ("devices",)

    def __init__(self, path: str, mountinfo: str = MOUNTINFO):
        super().__init__(path, mountinfo)
        # Each controller's directory for this cgroup. cpu and cpuacct are often mounted together
        # ("/sys/fs/cgroup/cpu,cpuacct"), and then share one directory.
        self.hierarchies = {c: os.path.join(point, path) for c, point in self._mounted(mountinfo).items()}

    @classmethod
    def _mounted(cls, mountinfo: str) -> dict[str, str]:
        mounts = [(point, opts) for point, fstype, opts in cgroup_mounts(mountinfo) if fstype == "cgroup"]
        # The first mount of each controller; a later one is a bind mount of the same hierarchy.
        return {c: next(p for p, opts in mounts if c in opts) for c in cls.HIERARCHIES + cls.OPTIONAL
                if any(c in opts for _, opts in mounts)}

    @classmethod
    def describe(cls, mountinfo: str = MOUNTINFO) -> str:
        points = cls._mounted(mountinfo)
        if all(p == f"/sys/fs/cgroup/{c}" for c, p in points.items()):
            where = "/sys/fs/cgroup/<controller>"
        else:
            where = " ".join(f"{c}={p}" for c, p in points.items())
        line = f"v1: {' '.join(points)} at {where}"
        missing = [c for c in cls.HIERARCHIES if c not in points]
        if missing:
            line += f" (missing: {' '.join(missing)})"
        unified = [p for p, fstype, _ in cgroup_mounts(mountinfo) if fstype == "cgroup2"]
        if unified:
            line += f" (v2 unified hierarchy beside them at {unified[0]})"
        return line

    # --8<-- [start:tasks]
    def procs_file(self, pid: int) -> str:
        # Moving a whole process takes a kernel-wide lock, and taking it first waits for an RCU
        # grace period: 5 to 30 ms here, the slowest step of a container's start (runc pays it
        # too). v1's `tasks` file moves one thread, and "0" there (the calling thread) needs no
        # such lock: the kernel's own comment says so, in cgroup_procs_write_start(). A process
        # with one thread (the container's, just forked) moves whole that way.
        if pid == 0 and len(os.listdir("/proc/self/task")) == 1:
            return "tasks"
        return "cgroup.procs"
    # --8<-- [end:tasks]

    def dirs(self) -> list[str]:
        return list(dict.fromkeys(self.hierarchies.values()))  # unique, in a stable order

    def controllers(self) -> set[str]:
        return set(self.hierarchies)

    def file(self, controller: str, name: str) -> str:
        return os.path.join(self.hierarchies[controller], name)

    def _missing_hint(self, controller: str) -> str:
        where = f"/sys/fs/cgroup/{controller}"
        return f"mount it: mkdir {where} && mount -t cgroup -o {controller} none {where}"

    def create(self) -> None:
        if not self.hierarchies:
            raise MinidockerError("no cgroup v1 hierarchy is mounted", "use the V2 driver (cgroups.detect())")
        for directory in self.dirs():
            # mkdir in a cgroupfs *is* creating a cgroup: the kernel fills the directory with the
            # controller's files. exist_ok makes create() idempotent.
            os.makedirs(directory, exist_ok=True)

    # --8<-- [start:v1-devices]
    def set_devices(self, rules: list[dict]) -> None:
        """linux.resources.devices into devices.deny and devices.allow, as runc writes them: the
        reset ("a": deny all, forget every exception), then one exception per write."""
        if "devices" not in self.hierarchies:
            return  # no devices hierarchy on this v1 host: nothing to enforce the rules with
        from minidocker.cgroups import devices  # only create writes rules: see cgroups/__init__.py

        for name, line in devices.v1_writes(rules):
            write(self.file("devices", name), line)
    # --8<-- [end:v1-devices]

    def freeze(self) -> None:
        self._freezer("FROZEN")

    def thaw(self) -> None:
        self._freezer("THAWED")

    def can_freeze(self) -> bool:
        return "freezer" in self.hierarchies

    def _freezer(self, state: str) -> None:
        if not self.can_freeze():
            raise MinidockerError("the freezer controller is not mounted", self._missing_hint("freezer"))
        path = self.file("freezer", "freezer.state")
        write(path, state)
        # The kernel answers FREEZING until every task has stopped at a safe point. A cgroup
        # removed meanwhile (its container ended) has nothing left to wait for.
        wait_for(lambda: (read(path) or state).strip() == state, f"cgroup {self.path} to be {state}")

    def stats(self) -> dict:
        def read(controller, name):
            return read_int(self.file(controller, name)) if controller in self.hierarchies else None

        return {"memory_bytes": read("memory", "memory.usage_in_bytes"),
                "pids": read("pids", "pids.current"),
                "cpu_usage_ns": read("cpuacct", "cpuacct.usage")}  # nanoseconds, all CPUs

    def oom_killed(self) -> bool:
        if "memory" not in self.hierarchies:
            return False
        return int(keyed(self.file("memory", "memory.oom_control")).get("oom_kill", 0)) > 0
