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
`V1` or `V2`, from the host's mount table. Which file takes which limit, in each version, is one
pure function, `limit_writes()` in limits.py.

The device rules (devices.py, and devices_bpf.py for v2) are imported by set_devices() alone:
`minidocker-runc delete` or `kill`, a process of its own at each call of containerd's shim, finds
a container's cgroup through this package and should not pay at every call for the BPF assembler.
"""

import os

from minidocker.cgroups.base import MOUNTINFO, Cgroup, cgroup_mounts
from minidocker.cgroups.limits import CFS_PERIOD_US, MIN_MEMORY, limit_writes
from minidocker.cgroups.v1 import V1
from minidocker.cgroups.v2 import V2
from minidocker.errors import MinidockerError

__all__ = ["CFS_PERIOD_US", "MIN_MEMORY", "Cgroup", "V1", "V2", "default_path", "detect", "for_container", "limit_writes"]


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


def default_path(container_id: str) -> str:
    """Where a container's cgroup goes when its spec names none: <parent>/<id>, the parent being
    $MINIDOCKER_CGROUP_PARENT or `minidocker`."""
    return f"{os.environ.get('MINIDOCKER_CGROUP_PARENT') or 'minidocker'}/{container_id}"


def for_container(container_id: str) -> "Cgroup":
    return detect()(default_path(container_id))
