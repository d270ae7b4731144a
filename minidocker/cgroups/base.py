"""The cgroup interface that both drivers share, and the small text files it is made of.

See minidocker/cgroups/__init__.py for the picture: v1, v2, hybrid.
"""

import errno
import os
import re
import signal
import time

from minidocker.cgroups.limits import SWAP_FILES, limit_writes
from minidocker.errors import MinidockerError

MOUNTINFO = "/proc/self/mountinfo"
FLAGS = {"memory": "--memory", "pids": "--pids-limit", "cpu": "--cpus"}  # for error messages


# ---------------------------------------------------------------------------------------------
# The mount table: where the kernel's cgroup filesystems are

def unescape(field: str) -> str:
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
                found.append((unescape(before.split(" ")[4]), fstype, set(options.split(","))))
    return found


# ---------------------------------------------------------------------------------------------
# Files: a cgroup is read and written through small text files

def write(path: str, value) -> None:
    """One write(2) of the whole value, through linux.write_file (so `--trace` shows it): cgroupfs
    parses each write on its own, so a buffered file that split "1234" into two writes would move
    pid 12 and then pid 34."""
    # Imported at the first write, not at the top: minidocker.linux loads ctypes, and `state`, `start` and
    # `kill`, each a process of its own under containerd's shim, only read a cgroup's files.
    from minidocker import linux

    try:
        linux.write_file(path, value)
    except FileNotFoundError:
        raise MinidockerError(f"no cgroup file {path}", "create() the cgroup first") from None
    except PermissionError as e:
        if e.errno == errno.EACCES:
            raise MinidockerError(f"cannot write {path}", "cgroups need root: run with sudo") from None
        raise  # EPERM from the write itself: the kernel refused the value


def read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def read_int(path: str) -> int | None:
    text = read(path)
    return None if text is None else int(text.split()[0])


def keyed(path: str) -> dict[str, str]:
    """A "key value" per line file (memory.events, cgroup.events, cpu.stat) as a dict."""
    return dict(line.split(None, 1) for line in (read(path) or "").splitlines() if " " in line)


def wait_for(condition, what: str, timeout: float = 5.0,
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
        # Write the pid into the file self.procs_file(pid) names (cgroup.procs, mostly) in each of
        # self.dirs(); the kernel moves the process.
        for directory in self.dirs():
            write(os.path.join(directory, self.procs_file(pid)), pid)
        # --8<-- [end:ex-01-cgroup-join]

    def procs_file(self, pid: int) -> str:
        """The file that moves a process: cgroup.procs takes a pid and moves all its threads."""
        return "cgroup.procs"

    def set_limits(self, resources: dict) -> None:
        """linux.resources' memory, pids and cpu into this cgroup's files (limits.py says which)."""
        writes = limit_writes(self.VERSION, resources)
        available = self.controllers()
        # Check everything before the first write, so that a refused limit leaves nothing half-set.
        for controller in dict.fromkeys(controller for controller, _, _ in writes):
            if controller not in available:
                raise MinidockerError(
                    f"cannot apply {FLAGS[controller]}: the {controller} controller is not available "
                    f"in cgroup v{self.VERSION} here", self._missing_hint(controller))
        for controller, name, value in writes:
            path = self.file(controller, name)
            if name in SWAP_FILES and not os.path.exists(path):
                continue  # a kernel without swap accounting: Docker warns and limits memory only
            write(path, value)

    def set_devices(self, rules: list[dict]) -> None:
        """linux.resources.devices: which device nodes the cgroup's processes may open or mknod
        (v1: devices.deny/allow; v2: a BPF program). See cgroups/devices.py."""
        raise NotImplementedError

    def _missing_hint(self, controller: str) -> str:
        return "use the lab VM (vagrant up), where cgroup v2 has the memory, pids and cpu controllers"

    def procs(self) -> list[int]:
        """The processes in this cgroup and in the cgroups below it."""
        found = set()
        for top in self.dirs():
            for dirpath, _, _ in os.walk(top):
                found.update(int(pid) for pid in (read(os.path.join(dirpath, "cgroup.procs")) or "").split())
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
        if not self.exists() or not self.populated():
            return  # nothing to kill (the usual case: the container's process has exited)
        if self.can_freeze():
            # Frozen, no process can fork, so the list we kill from is complete. A frozen process
            # keeps a pending SIGKILL until it is thawed; then it dies at once.
            self.freeze()
            self._signal_all()
            self.thaw()
        wait_for(self._killed_all_or_retry, f"the processes of cgroup {self.path} to die")

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
                wait_for(lambda: self._rmdir(dirpath), f"cgroup {dirpath} to empty", 0.5,
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
