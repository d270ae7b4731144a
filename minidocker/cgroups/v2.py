"""cgroup v2: one unified hierarchy, where a directory is a cgroup for every controller."""

import errno
import os

from minidocker.cgroups.base import MOUNTINFO, Cgroup, cgroup_mounts, keyed, read, read_int, wait_for, write
from minidocker.errors import MinidockerError


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
        available = set((read(os.path.join(root, "cgroup.controllers")) or "").split())
        line = f"v2: cgroup2 at {root}, controllers: {' '.join(sorted(available)) or 'none'}"
        missing = [c for c in cls.CONTROLLERS if c not in available]
        if missing:
            line += f" (missing {' '.join(missing)}: their limits are unavailable)"
        return line

    def dirs(self) -> list[str]:
        return [self.dir]

    def controllers(self) -> set[str]:
        text = read(os.path.join(self.dir, "cgroup.controllers"))
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
        available = set((read(os.path.join(parent, "cgroup.controllers")) or "").split())
        enabled = set((read(os.path.join(parent, "cgroup.subtree_control")) or "").split())
        wanted = [c for c in self.CONTROLLERS if c in available and c not in enabled]
        if not wanted:
            return  # nothing to enable (set_limits will name a controller that is missing)
        try:
            write(os.path.join(parent, "cgroup.subtree_control"), " ".join(f"+{c}" for c in wanted))
        except OSError as e:
            # "No internal processes": a non-root cgroup with processes of its own cannot hand
            # controllers to children. The processes belong in a leaf cgroup.
            raise MinidockerError(f"cannot enable {' '.join(wanted)} in {parent}: {e.strerror}",
                                  "move the processes of that cgroup into a child cgroup") from None
    # --8<-- [end:cgroup-v2-create]

    # --8<-- [start:v2-devices]
    def set_devices(self, rules: list[dict]) -> None:
        """linux.resources.devices as a BPF program attached to this cgroup (v2 has no devices
        files): see devices_bpf.py. The program goes with the cgroup at rmdir."""
        from minidocker.cgroups import devices_bpf  # only create writes rules: see cgroups/__init__.py

        try:
            devices_bpf.attach(self.dir, rules)
        except OSError as e:
            # EACCES: the verifier refused the program (its log is in the message). EPERM: no
            # CAP_SYS_ADMIN. EINVAL: a kernel without cgroup BPF.
            hint = ("the kernel's verifier refused the program: see docs/08-hardening.md#ex-08-device-rule"
                    if e.errno == errno.EACCES else "cgroup v2 needs Linux 4.15+ with CONFIG_CGROUP_BPF, and root")
            raise MinidockerError(f"cannot set the device cgroup of {self.path}: {e.strerror}", hint) from None
    # --8<-- [end:v2-devices]

    def populated(self) -> bool:
        # cgroup.events says whether any process lives here or below, without a walk.
        return keyed(os.path.join(self.dir, "cgroup.events")).get("populated", "0").strip() == "1"

    # --8<-- [start:cgroup-v2-freeze]
    def freeze(self) -> None:
        self._freeze("1")

    def thaw(self) -> None:
        self._freeze("0")

    def _freeze(self, value: str) -> None:
        # Linux 5.2+: the freezer is built into every v2 cgroup, no controller needed. The write
        # only *starts* freezing; cgroup.events says "frozen 1" once every process has stopped.
        write(os.path.join(self.dir, "cgroup.freeze"), value)
        events = os.path.join(self.dir, "cgroup.events")
        # A cgroup removed meanwhile (its container ended) has nothing left to wait for.
        wait_for(lambda: keyed(events).get("frozen", value).strip() == value,
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
        write(kill_file, 1)
        wait_for(lambda: not self.populated(), f"the processes of cgroup {self.path} to die")
    # --8<-- [end:cgroup-v2-kill]

    def stats(self) -> dict:
        # cpu.stat is always there (core accounting); memory.* and pids.* only with the controller.
        usage_us = keyed(os.path.join(self.dir, "cpu.stat")).get("usage_usec")
        return {
            "memory_bytes": read_int(os.path.join(self.dir, "memory.current")),
            "pids": read_int(os.path.join(self.dir, "pids.current")),
            "cpu_usage_ns": int(usage_us) * 1000 if usage_us is not None else None,
        }

    def oom_killed(self) -> bool:
        # memory.events counts this cgroup and its descendants: a process OOM-killed anywhere
        # in the container counts.
        return int(keyed(os.path.join(self.dir, "memory.events")).get("oom_kill", 0)) > 0
