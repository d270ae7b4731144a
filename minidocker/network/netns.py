"""A container's network namespace, kept in a file: /run/minidocker/netns/<container id>.

A namespace lives as long as something refers to it: a process in it, an open fd, or a bind
mount of its /proc/PID/ns/net file. `ip netns add NAME` makes the last kind under /run/netns; we
make the same under our runtime root (Docker: /var/run/docker/netns). With the file, the engine
can build the namespace's network *before* the container's first process exists, and the
runtime joins it by path (the OCI spec's `linux.namespaces: [{"type": "network", "path": ...}]`,
a setns(2) in runtime/spawn.py).

How we make it (as `ip netns add` does, in our own process instead of a child):
  1. keep an fd to our own namespace, /proc/self/ns/net;
  2. unshare(CLONE_NEWNET): we are now alone in a new, empty namespace (only `lo`, down);
  3. bind-mount /proc/self/ns/net on the file: the namespace now outlives our stay;
  4. bring `lo` up and open a netlink socket: it stays bound to this namespace for good;
  5. setns() back to our own namespace with the fd of step 1.
No fork is needed: setns(CLONE_NEWNET) is allowed to a single-threaded process (the supervisor).
"""

import os

from minidocker import linux


def directory() -> str:
    runtime_root = os.environ.get("MINIDOCKER_RUNTIME_ROOT")
    return os.path.join(runtime_root, "netns") if runtime_root else "/run/minidocker/netns"


def path_of(container_id: str) -> str:
    return os.path.join(directory(), container_id)


# --8<-- [start:create]
def create(container_id: str, netlink: bool = True):
    """Make the container's namespace and its file; return (path, a Netlink socket inside it,
    or None). On any error nothing is left behind."""
    path = path_of(container_id)
    os.makedirs(directory(), exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o444))  # a mount point: any file will do
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    inside = None
    try:
        linux.unshare(linux.CLONE_NEWNET)
        try:
            linux.mount("/proc/self/ns/net", path, None, linux.MS_BIND)
            linux.interface_up("lo")  # 127.0.0.1 works only once lo is up
            if netlink:
                from minidocker.network.netlink import Netlink

                inside = Netlink()
        finally:
            linux.setns(own, linux.CLONE_NEWNET)  # whatever happened, back home
    except BaseException:
        if inside:
            inside.close()
        remove(container_id)
        raise
    finally:
        os.close(own)
    return path, inside
# --8<-- [end:create]


def remove(container_id: str) -> None:
    """Unmount and delete the file. The namespace itself dies with its last process; its links
    (the veth's inner end) die with it, which also deletes their peers on the host."""
    path = path_of(container_id)
    try:
        linux.umount2(path, linux.MNT_DETACH)
    except OSError:
        pass  # not mounted (a crash between open and mount), or already gone
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def existing() -> list[str]:
    """The container ids that have a namespace file (for the stale sweep)."""
    try:
        return [name for name in os.listdir(directory()) if not name.startswith(".")]
    except FileNotFoundError:
        return []
