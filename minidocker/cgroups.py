"""Control groups: how much memory, how many processes and how much CPU a container may use.

A namespace changes what a process can *see*; a cgroup limits what it can *use*. The kernel
exposes cgroups as a filesystem: a cgroup is a directory, a process joins it by writing its pid
into the file `cgroup.procs`, and a limit is a value written into a file such as `pids.max`.
There is no syscall to learn, only files (see docs/01-isolation.md#cgroups).

There are two versions of that filesystem, and a host has one of three layouts:
- **v1 ("legacy")**: one hierarchy per controller, each its own mount (`/sys/fs/cgroup/memory`,
  `/sys/fs/cgroup/pids`, ...). A container is one directory *in each* hierarchy.
- **v2 ("unified")**: a single hierarchy (`cgroup2` on `/sys/fs/cgroup`) where a directory is a
  cgroup for every controller at once. Debian 12, Ubuntu 22.04 and the lab VM are pure v2.
- **hybrid**: the controllers in v1 hierarchies plus an (almost empty) v2 hierarchy beside them
  at `/sys/fs/cgroup/unified`.

Like youki's libcgroups, the engine sees one interface, `Cgroup`, and `detect()` picks the driver,
`V1` or `V2`, from the host's mount table.
"""

import errno
import os
import re
import signal
import time

from minidocker.errors import MinidockerError

MOUNTINFO = "/proc/self/mountinfo"
CFS_PERIOD_US = 100_000  # Docker's CFS period: CPU time is granted per 100 ms window
MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses less: "Minimum memory limit allowed is 6MB"
FLAGS = {"memory": "--memory", "pids": "--pids-limit", "cpu": "--cpus"}  # for error messages


# ---------------------------------------------------------------------------------------------
# The mount table: where the kernel's cgroup filesystems are

def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes: "\040" is " ".
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def cgroup_mounts(mountinfo: str = MOUNTINFO) -> list[tuple[str, str, set[str]]]:
    """The cgroup mounts as (mount point, "cgroup" or "cgroup2", super options) triples.

    A mountinfo line (proc(5)) is "ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE
    SOURCE SUPER_OPTIONS". The optional fields vary in number, hence the split at " - ". For a v1
    hierarchy the super options name its controllers: "rw,memory" or "rw,cpu,cpuacct".
    """
    found = []
    with open(mountinfo) as f:
        for line in f:
            before, sep, after = line.rstrip("\n").partition(" - ")
            if not sep:
                continue
            fstype, _source, options = (after.split(" ") + ["", ""])[:3]
            if fstype in ("cgroup", "cgroup2"):
                found.append((_unescape(before.split(" ")[4]), fstype, set(options.split(","))))
    return found


# --8<-- [start:cgroup-detect]
def detect(mountinfo: str = MOUNTINFO) -> type["Cgroup"]:
    """The driver for this host: V2 on a pure v2 host, V1 where the memory controller is in v1."""
    mounts = cgroup_mounts(mountinfo)
    v2_points = [point for point, fstype, _ in mounts if fstype == "cgroup2"]
    if "/sys/fs/cgroup" in v2_points:
        return V2  # pure v2: the unified hierarchy *is* /sys/fs/cgroup, with every controller
    if any(fstype == "cgroup" and "memory" in opts for _, fstype, opts in mounts):
        # Legacy or hybrid: a controller sits in one hierarchy only, so while memory is bound to
        # v1 the v2 hierarchy cannot limit memory. The limits must go through v1.
        return V1
    if v2_points:
        return V2
    raise MinidockerError("no cgroup filesystem is mounted",
                          "mount -t cgroup2 none /sys/fs/cgroup, or use the lab VM: vagrant up")
# --8<-- [end:cgroup-detect]


def for_container(container_id: str) -> "Cgroup":
    """The cgroup of a container: <parent>/<id>, the parent being `minidocker` unless overridden."""
    parent = os.environ.get("MINIDOCKER_CGROUP_PARENT", "minidocker")
    return detect()(f"{parent}/{container_id}")


# ---------------------------------------------------------------------------------------------
# The values Docker writes for its flags (pure functions, tested with hypothesis)

def cpu_quota(cpus: float) -> tuple[int, int]:
    """`--cpus 0.5` -> (50000, 100000): the CFS scheduler lets the cgroup run 50 ms per 100 ms.

    The quota counts CPU time over all cores, so --cpus 1.5 on a 2-core machine is 150 ms per
    100 ms window: one core and a half busy, or both cores three quarters of the time.
    """
    cores = os.cpu_count() or 1
    if not 0.01 <= cpus <= cores:
        raise MinidockerError(f"invalid --cpus {cpus}",
                              f"the range is 0.01 to {cores}, as this machine has {cores} CPUs")
    # Docker keeps --cpus as integer nanoCPUs; the kernel refuses a quota under 1000 us (1 ms).
    return round(cpus * 1e9) * CFS_PERIOD_US // 10**9, CFS_PERIOD_US


def _check_memory(memory: int) -> None:
    if memory < MIN_MEMORY:
        raise MinidockerError(f"invalid --memory {memory}", "the minimum memory limit is 6MB")


def _pids_value(pids: int) -> str:
    return str(pids) if pids > 0 else "max"  # Docker: --pids-limit 0 or -1 means unlimited


# ---------------------------------------------------------------------------------------------
# Files: a cgroup is read and written through small text files

def _write(path: str, value) -> None:
    """One write(2) of the whole value: cgroupfs parses each write on its own, so a buffered
    file that split "1234" into two writes would move pid 12 and then pid 34."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        raise MinidockerError(f"no cgroup file {path}", "create() the cgroup first") from None
    except PermissionError:
        raise MinidockerError(f"cannot write {path}", "cgroups need root: run with sudo") from None
    try:
        os.write(fd, str(value).encode())
    except OSError as e:  # EINVAL for a bad value, ESRCH for an unknown pid, EBUSY, ...
        raise OSError(e.errno, f"writing {value!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    return None if text is None else int(text.split()[0])


def _keyed(path: str) -> dict[str, str]:
    """A "key value" per line file (memory.events, cgroup.events, cpu.stat) as a dict."""
    return dict(line.split(None, 1) for line in (_read(path) or "").splitlines() if " " in line)


def _wait(condition, what: str, timeout: float = 5.0,
          hint: str = "a process may be stuck in the kernel (state D in ps)") -> None:
    """Poll until the kernel reports what we asked for (freezing and dying take a moment)."""
    deadline, delay = time.monotonic() + timeout, 0.001
    while not condition():
        if time.monotonic() > deadline:
            raise MinidockerError(f"timed out waiting for {what}", hint)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


# ---------------------------------------------------------------------------------------------
# The interface

class Cgroup:
    """One container's cgroup. `path` is relative to the hierarchy root(s): "minidocker/abc123"."""

    VERSION = 0
    CONTROLLERS = ("memory", "pids", "cpu")  # what --memory, --pids-limit and --cpus need

    def __init__(self, path: str, mountinfo: str = MOUNTINFO):
        parts = path.split("/")
        # The path is joined to /sys/fs/cgroup/...; an absolute path or ".." would escape it, and
        # remove() would then rmdir cgroups that are not ours.
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise MinidockerError(f"invalid cgroup path {path!r}", "a relative path like minidocker/<id>")
        self.path = path
        self.mountinfo = mountinfo

    # What each driver tells the shared code below.
    def dirs(self) -> list[str]:
        """This cgroup's directories: one per v1 hierarchy, or the single v2 one."""
        raise NotImplementedError

    def controllers(self) -> set[str]:
        """The controllers this cgroup can use."""
        raise NotImplementedError

    def file(self, controller: str, name: str) -> str:
        """The path of a controller's file, e.g. ("pids", "pids.max")."""
        raise NotImplementedError

    def limit_files(self, memory=None, pids=None, cpus=None) -> list[tuple[str, str, str]]:
        """The writes that set the limits, in order: (controller, file name, value)."""
        raise NotImplementedError

    @classmethod
    def describe(cls, mountinfo: str = MOUNTINFO) -> str:
        raise NotImplementedError

    def create(self) -> None:
        """Make the cgroup (idempotent)."""
        raise NotImplementedError

    # Shared by both versions.
    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs())

    def add(self, pid: int = 0) -> None:
        """Move process `pid` (0: the caller) into this cgroup; its future children follow it."""
        # --8<-- [start:ex-01-cgroup-join]
        # Write the pid into cgroup.procs in each of self.dirs(); the kernel moves the process.
        for directory in self.dirs():
            _write(os.path.join(directory, "cgroup.procs"), pid)
        # --8<-- [end:ex-01-cgroup-join]

    def set_limits(self, memory: int | None = None, pids: int | None = None,
                   cpus: float | None = None) -> None:
        """Docker's -m/--memory (bytes), --pids-limit and --cpus. None leaves a limit as it is."""
        wanted = {"memory": memory, "pids": pids, "cpu": cpus}
        available = self.controllers()
        # Check everything before the first write, so that a refused flag leaves nothing half-set.
        for controller, value in wanted.items():
            if value is not None and controller not in available:
                raise MinidockerError(
                    f"cannot apply {FLAGS[controller]}: the {controller} controller is not available "
                    f"in cgroup v{self.VERSION} here", self._missing_hint(controller))
        for controller, name, value in self.limit_files(memory, pids, cpus):
            path = self.file(controller, name)
            if name in ("memory.memsw.limit_in_bytes", "memory.swap.max") and not os.path.exists(path):
                continue  # a kernel without swap accounting: Docker warns and limits memory only
            _write(path, value)

    def _missing_hint(self, controller: str) -> str:
        return "use the lab VM (vagrant up), where cgroup v2 has the memory, pids and cpu controllers"

    def procs(self) -> list[int]:
        """The processes in this cgroup and in the cgroups below it."""
        found = set()
        for top in self.dirs():
            for dirpath, _, _ in os.walk(top):
                found.update(int(pid) for pid in (_read(os.path.join(dirpath, "cgroup.procs")) or "").split())
        return sorted(found)

    def populated(self) -> bool:
        return bool(self.procs())

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def can_freeze(self) -> bool:
        return True

    def kill(self) -> None:
        """SIGKILL every process in the cgroup, and wait until it is empty."""
        if not self.exists():
            return
        if self.can_freeze():
            # Frozen, no process can fork, so the list we kill from is complete. A frozen process
            # keeps a pending SIGKILL until it is thawed; then it dies at once.
            self.freeze()
            self._signal_all()
            self.thaw()
        _wait(self._killed_all_or_retry, f"the processes of cgroup {self.path} to die")

    def _signal_all(self) -> None:
        for pid in self.procs():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it exited by itself meanwhile

    def _killed_all_or_retry(self) -> bool:
        if not self.populated():
            return True
        if not self.can_freeze():
            self._signal_all()  # without a freezer a fork may have slipped by: kill the newcomers
        return False

    def remove(self) -> None:
        """rmdir this cgroup (and any below it, leaf first) in every hierarchy. Never the parent."""
        for top in self.dirs():
            if not os.path.isdir(top):
                continue  # already removed: remove() is idempotent
            # topdown=False walks the leaves first: rmdir refuses a cgroup that has children.
            for dirpath, _, _ in os.walk(top, topdown=False):
                # A cgroup directory holds only the kernel's virtual files, which rmdir takes along.
                # EBUSY means processes are still inside: a killed one leaves a moment later.
                _wait(lambda: self._rmdir(dirpath), f"cgroup {dirpath} to empty", 0.5,
                      "processes are still inside: kill() them first")

    @staticmethod
    def _rmdir(path: str) -> bool:
        try:
            os.rmdir(path)
        except OSError as e:
            if e.errno == errno.EBUSY:
                return False
            if e.errno != errno.ENOENT:  # already gone is fine; anything else is a real error
                raise
        return True

    def stats(self) -> dict:
        raise NotImplementedError

    def oom_killed(self) -> bool:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# cgroup v1: one hierarchy per controller

class V1(Cgroup):
    VERSION = 1
    # freezer for pause/kill, cpuacct for the CPU usage statistic. No cpuset: a new cpuset cgroup
    # is unusable until cpuset.cpus and cpuset.mems are filled in, and we do not pin CPUs.
    HIERARCHIES = ("memory", "pids", "cpu", "cpuacct", "freezer")

    def __init__(self, path: str, mountinfo: str = MOUNTINFO):
        super().__init__(path, mountinfo)
        # Each controller's directory for this cgroup. cpu and cpuacct are often mounted together
        # ("/sys/fs/cgroup/cpu,cpuacct"), and then share one directory.
        self.hierarchies = {c: os.path.join(point, path) for c, point in self._mounted(mountinfo).items()}

    @classmethod
    def _mounted(cls, mountinfo: str) -> dict[str, str]:
        mounts = [(point, opts) for point, fstype, opts in cgroup_mounts(mountinfo) if fstype == "cgroup"]
        # The first mount of each controller; a later one is a bind mount of the same hierarchy.
        return {c: next(p for p, opts in mounts if c in opts) for c in cls.HIERARCHIES
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

    def limit_files(self, memory=None, pids=None, cpus=None) -> list[tuple[str, str, str]]:
        # --8<-- [start:ex-01-cgroup-limits]
        # Return the writes (controller, file, value): memory.limit_in_bytes (and memsw = twice it,
        # Docker's default swap), pids.max, and cpu.cfs_period_us then cpu.cfs_quota_us.
        writes = []
        if memory is not None:
            _check_memory(memory)
            # The kernel insists that limit_in_bytes <= memsw.limit_in_bytes (memory+swap) at every
            # moment. Lifting memsw first (-1 = unlimited) makes any new pair writable in order.
            writes += [("memory", "memory.memsw.limit_in_bytes", "-1"),
                       ("memory", "memory.limit_in_bytes", str(memory)),
                       # Docker without --memory-swap: as much swap as memory, so memory+swap = 2x.
                       ("memory", "memory.memsw.limit_in_bytes", str(2 * memory))]
        if pids is not None:
            writes.append(("pids", "pids.max", _pids_value(pids)))
        if cpus is not None:
            quota, period = cpu_quota(cpus)
            writes += [("cpu", "cpu.cfs_period_us", str(period)), ("cpu", "cpu.cfs_quota_us", str(quota))]
        return writes
        # --8<-- [end:ex-01-cgroup-limits]

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
        _write(path, state)
        # The kernel answers FREEZING until every task has stopped at a safe point.
        _wait(lambda: (_read(path) or "").strip() == state, f"cgroup {self.path} to be {state}")

    def stats(self) -> dict:
        def read(controller, name):
            return _read_int(self.file(controller, name)) if controller in self.hierarchies else None

        return {"memory_bytes": read("memory", "memory.usage_in_bytes"),
                "pids": read("pids", "pids.current"),
                "cpu_usage_ns": read("cpuacct", "cpuacct.usage")}  # nanoseconds, all CPUs

    def oom_killed(self) -> bool:
        if "memory" not in self.hierarchies:
            return False
        return int(_keyed(self.file("memory", "memory.oom_control")).get("oom_kill", 0)) > 0


# ---------------------------------------------------------------------------------------------
# cgroup v2: one unified hierarchy

class V2(Cgroup):
    VERSION = 2

    def __init__(self, path: str, mountinfo: str = MOUNTINFO):
        super().__init__(path, mountinfo)
        self.root = self._root(mountinfo)
        self.dir = os.path.join(self.root, path)

    @staticmethod
    def _root(mountinfo: str) -> str:
        points = [p for p, fstype, _ in cgroup_mounts(mountinfo) if fstype == "cgroup2"]
        if not points:
            raise MinidockerError("no cgroup2 filesystem is mounted", "mount -t cgroup2 none /sys/fs/cgroup")
        return "/sys/fs/cgroup" if "/sys/fs/cgroup" in points else points[0]

    @classmethod
    def describe(cls, mountinfo: str = MOUNTINFO) -> str:
        root = cls._root(mountinfo)
        available = set((_read(os.path.join(root, "cgroup.controllers")) or "").split())
        line = f"v2: cgroup2 at {root}, controllers: {' '.join(sorted(available)) or 'none'}"
        missing = [c for c in cls.CONTROLLERS if c not in available]
        if missing:
            line += f" (missing {' '.join(missing)}: their limits are unavailable)"
        return line

    def dirs(self) -> list[str]:
        return [self.dir]

    def controllers(self) -> set[str]:
        text = _read(os.path.join(self.dir, "cgroup.controllers"))
        if text is None:
            raise MinidockerError(f"no cgroup {self.dir}", "create() the cgroup first")
        return set(text.split())

    def file(self, controller: str, name: str) -> str:
        return os.path.join(self.dir, name)

    def _missing_hint(self, controller: str) -> str:
        if any(fstype == "cgroup" and controller in o for _, fstype, o in cgroup_mounts(self.mountinfo)):
            return f"this host binds {controller} to a cgroup v1 hierarchy: use V1 (cgroups.detect())"
        return super()._missing_hint(controller)

    # --8<-- [start:cgroup-v2-create]
    def create(self) -> None:
        parent = self.root
        for part in self.path.split("/"):
            self._enable_controllers(parent)
            child = os.path.join(parent, part)
            os.makedirs(child, exist_ok=True)
            parent = child

    def _enable_controllers(self, parent: str) -> None:
        # A v2 cgroup can only use the controllers its parent enables for its children in
        # cgroup.subtree_control ("top-down"), out of those the parent has (cgroup.controllers).
        available = set((_read(os.path.join(parent, "cgroup.controllers")) or "").split())
        enabled = set((_read(os.path.join(parent, "cgroup.subtree_control")) or "").split())
        wanted = [c for c in self.CONTROLLERS if c in available and c not in enabled]
        if not wanted:
            return  # nothing to enable (set_limits will name a controller that is missing)
        try:
            _write(os.path.join(parent, "cgroup.subtree_control"), " ".join(f"+{c}" for c in wanted))
        except OSError as e:
            # "No internal processes": a non-root cgroup with processes of its own cannot hand
            # controllers to children. The processes belong in a leaf cgroup.
            raise MinidockerError(f"cannot enable {' '.join(wanted)} in {parent}: {e.strerror}",
                                  "move the processes of that cgroup into a child cgroup") from None
    # --8<-- [end:cgroup-v2-create]

    def limit_files(self, memory=None, pids=None, cpus=None) -> list[tuple[str, str, str]]:
        writes = []
        if memory is not None:
            _check_memory(memory)
            # v2 limits swap on its own (not memory+swap as v1 does): Docker's "memory+swap = 2x"
            # becomes swap.max = memory. No ordering rule between the two files here.
            writes += [("memory", "memory.max", str(memory)), ("memory", "memory.swap.max", str(memory))]
        if pids is not None:
            writes.append(("pids", "pids.max", _pids_value(pids)))
        if cpus is not None:
            writes.append(("cpu", "cpu.max", "%d %d" % cpu_quota(cpus)))  # "50000 100000"
        return writes

    def populated(self) -> bool:
        # cgroup.events says whether any process lives here or below, without a walk.
        return _keyed(os.path.join(self.dir, "cgroup.events")).get("populated", "0").strip() == "1"

    # --8<-- [start:cgroup-v2-freeze]
    def freeze(self) -> None:
        self._freeze("1")

    def thaw(self) -> None:
        self._freeze("0")

    def _freeze(self, value: str) -> None:
        # Linux 5.2+: the freezer is built into every v2 cgroup, no controller needed. The write
        # only *starts* freezing; cgroup.events says "frozen 1" once every process has stopped.
        _write(os.path.join(self.dir, "cgroup.freeze"), value)
        events = os.path.join(self.dir, "cgroup.events")
        _wait(lambda: _keyed(events).get("frozen", "").strip() == value,
              f"cgroup {self.path} to {'freeze' if value == '1' else 'thaw'}")
    # --8<-- [end:cgroup-v2-freeze]

    # --8<-- [start:cgroup-v2-kill]
    def kill(self) -> None:
        kill_file = os.path.join(self.dir, "cgroup.kill")
        if not os.path.exists(kill_file):
            super().kill()  # before Linux 5.14: freeze, SIGKILL each process, thaw
            return
        # Linux 5.14+: one write and the kernel SIGKILLs every process here and below, including
        # a child forked during the kill. No pid list to race with.
        _write(kill_file, 1)
        _wait(lambda: not self.populated(), f"the processes of cgroup {self.path} to die")
    # --8<-- [end:cgroup-v2-kill]

    def stats(self) -> dict:
        # cpu.stat is always there (core accounting); memory.* and pids.* only with the controller.
        usage_us = _keyed(os.path.join(self.dir, "cpu.stat")).get("usage_usec")
        return {
            "memory_bytes": _read_int(os.path.join(self.dir, "memory.current")),
            "pids": _read_int(os.path.join(self.dir, "pids.current")),
            "cpu_usage_ns": int(usage_us) * 1000 if usage_us is not None else None,
        }

    def oom_killed(self) -> bool:
        # memory.events counts this cgroup and its descendants: a process OOM-killed anywhere
        # in the container counts.
        return int(_keyed(os.path.join(self.dir, "memory.events")).get("oom_kill", 0)) > 0
