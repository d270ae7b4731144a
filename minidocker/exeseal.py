"""The runtime's own binary, out of the container's reach (CVE-2019-5736).

Every process that enters a container is, until its exec, a fork of the runtime: of our Python
interpreter, the host's /usr/bin/python3.11. Two things then hand that binary to the container:

- the process is in the container's PID namespace before it execs: root in the container sees
  it in /proc, and can open /proc/PID/exe;
- the container's command may be a script that starts `#!/proc/self/exe`. The kernel resolves
  that interpreter in the process that execs the script, ours: it runs the host's Python
  *inside the container*, with the container's files, environment and PID namespace.

/proc/PID/exe is no symlink but a handle on the very file. Hold it open (O_PATH) until the
runtime's process is gone, open it again for writing, and you have written the host's
interpreter: the next `minidocker` (or anything in Python) the host runs is yours, as root.
That is runc's CVE-2019-5736 (2019), and the class of every runtime that enters containers.

The defence, runc's: the binary that such a process runs must be one that nobody can write. runc
re-executes itself from a sealed copy before it enters a container. For us that would be a second
interpreter start, and the CLI's imports again, for every container (~20 ms). So the last exec of
a process that enters a container is not the command but a tiny static program, the exec stub
(minidocker/exec_stub.c, built by scripts/setup.sh), run from a *sealed* view of its file, and it
is the stub that execs the command. Whatever the container then reaches at /proc/self/exe is the
sealed stub. The view is made once per process, before it forks (the host's files are still in
sight then), and kept: the daemon starts many containers with it.

1. a private overlayfs (runc 1.2's way): a mount of the stub's directory with no upper layer,
   made with the new mount API and attached nowhere. Read-only for good: an overlay with no upper
   layer has nowhere to write, whatever anyone remounts. It costs no copy: the pages are the
   real file's.
2. where that cannot be made (a kernel without fsopen or overlayfs): a copy in a memfd, sealed
   against writes (runc's first fix): a file with no path, that the kernel refuses to change.

Until its exec, the forked process is still our Python: it is made non-dumpable at the fork
(runtime/spawn.py), so that root in the container can neither ptrace it nor open its /proc/PID/exe.

docs/08-hardening.md#cve-2019-5736.
"""

import os
import sys

from minidocker import linux
from minidocker.errors import MinidockerError
from minidocker.runtime.statedir import default_root

STUB = os.path.join(sys.prefix, "libexec", "minidocker-exec")  # in the venv, where setup.sh builds it

_stub = -1  # this process's sealed view of the stub, once made


# --8<-- [start:sealed-stub]
def sealed_stub() -> int:
    """An fd of the exec stub that no one can write through: on a read-only overlayfs, or a
    sealed memfd copy. Made on the first call; the same fd after."""
    global _stub
    if _stub == -1:
        if not os.access(STUB, os.X_OK):
            raise MinidockerError(f"the runtime's exec stub {STUB} is missing", "scripts/setup.sh builds it with gcc")
        try:
            _stub = _through_overlayfs(STUB)
        except OSError:
            _stub = _sealed_copy(STUB)
    return _stub
# --8<-- [end:sealed-stub]


# --8<-- [start:overlayfs]
def _through_overlayfs(binary: str) -> int:
    directory, name = os.path.split(binary)
    # overlayfs without an upper layer needs two lower ones: the stub's directory on top,
    # and an empty one below. Its files are the real ones, seen through a filesystem that can
    # never be written; an open for writing answers EROFS.
    # Beside the runtime's root, not in it: every directory there is a container's state
    # (`runtime list` would show this one as a container "creating").
    empty = os.path.join(os.path.dirname(default_root().rstrip("/")), "exeseal-empty")
    os.makedirs(empty, mode=0o700, exist_ok=True)
    context = linux.fsopen("overlay")
    try:
        linux.fsconfig_set_string(context, "lowerdir", f"{_escaped(directory)}:{_escaped(empty)}")
        linux.fsconfig_create(context)
        # Attached nowhere: no path leads to it, and it goes when the last process using it does.
        mount = linux.fsmount(context, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV)
    finally:
        os.close(context)
    try:
        return os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=mount)  # O_CLOEXEC: Python's default
    finally:
        os.close(mount)
# --8<-- [end:overlayfs]


def _escaped(path: str) -> str:
    """overlayfs splits lowerdir at ':' and reads '\\' as an escape: a path may hold either."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


def _sealed_copy(binary: str) -> int:
    copy = linux.memfd_create("minidocker-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    with open(binary, "rb") as source:
        while os.sendfile(copy, source.fileno(), None, 1 << 22):
            pass  # 4 MiB a call, copied by the kernel; 0 at the end of the file
    # No write, no change of size, and no more seals changed: for every process, for good.
    linux.add_seals(copy, linux.F_SEAL_SEAL | linux.F_SEAL_SHRINK | linux.F_SEAL_GROW | linux.F_SEAL_WRITE)
    return copy
