"""The runtime's own binary, out of the container's reach (CVE-2019-5736).

(A module of its own, outside runtime/: the CLI calls it first thing, before it imports the
runtime, so that the process it replaces has done as little work as possible.)

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

The defence, runc's: the process that enters a container must run a binary that nobody can
write. So the commands that start container processes (run, start, exec, build, the daemon...)
first exec themselves again from a *sealed* view of the interpreter:

1. a private overlayfs (runc 1.2's way): a mount of the interpreter's directory with no upper
   layer, made with the new mount API and attached nowhere. Read-only for good: an overlay with
   no upper layer has nowhere to write, whatever anyone remounts. It costs no copy: the pages
   are the real binary's.
2. where that cannot be made (a kernel without fsopen or overlayfs): a copy in a memfd, sealed
   against writes (runc's first fix): a file with no path, that the kernel refuses to change.

docs/08-hardening.md#cve-2019-5736.
"""

import os
import sys

from minidocker import linux

# The commands whose process (or a fork of it) enters containers. Others (ps, inspect, logs...)
# never do, and keep their start-up time.
ENTERS_CONTAINERS = {"run", "start", "restart", "exec", "build", "daemon"}
RUNTIME_ENTERS = {"create", "run", "exec"}  # `minidocker runtime CMD`, as runc's

_MARK = "MINIDOCKER_EXESEAL"  # set for the exec below to our pid: "you are the sealed one"
_sealed = False  # this process is the sealed one (it was told so, and the mark is gone)


def needed(argv: list[str], words: list[str]) -> bool:
    """Does this command line start processes in containers? `words` are its words that are
    not flags. A client of a daemon (-H, $MINIDOCKER_HOST) starts none: the daemon does."""
    if words[:1] == ["daemon"]:
        return True
    if os.environ.get("MINIDOCKER_HOST") or any(a in ("-H", "--host") or a.startswith("--host=") for a in argv):
        return False
    if words[:1] == ["runtime"]:
        return any(word in RUNTIME_ENTERS for word in words[1:])
    return bool(words) and words[0] in ENTERS_CONTAINERS


# --8<-- [start:reexec]
def reexec_sealed() -> None:
    """Exec this same command again, this time from a sealed view of the interpreter. Returns
    only in the sealed process (the pid stays the same through exec)."""
    global _sealed
    if _sealed or os.environ.pop(_MARK, None) == str(os.getpid()):
        _sealed = True  # we are the new one; the mark goes, so that our children do not inherit it
        return
    exe = sealed_interpreter()
    os.environ[_MARK] = str(os.getpid())
    # argv[0] is the interpreter's path as we were started (a venv's python finds its
    # site-packages from it); the kernel runs what /proc/self/fd/N names: the sealed file.
    # orig_argv keeps the interpreter's options (-m minidocker, -X...) as they were given.
    linux.execv(f"/proc/self/fd/{exe}", [sys.executable, *sys.orig_argv[1:]])
# --8<-- [end:reexec]


def sealed_interpreter() -> int:
    """An fd of our interpreter that no one can write through: on a read-only overlayfs, or a
    sealed memfd copy."""
    try:
        return _through_overlayfs(os.path.realpath(sys.executable))
    except OSError:
        return _sealed_copy(os.path.realpath(sys.executable))


# --8<-- [start:overlayfs]
def _through_overlayfs(binary: str) -> int:
    directory, name = os.path.split(binary)
    # overlayfs without an upper layer needs two lower ones: the interpreter's directory on top,
    # and an empty one below. Its files are the real ones, seen through a filesystem that can
    # never be written; an open for writing answers EROFS.
    # Beside the runtime's root, not in it: every directory there is a container's state
    # (`runtime list` would show this one as a container "creating").
    runtime_root = os.environ.get("MINIDOCKER_RUNTIME_ROOT", "/run/minidocker/runtime")
    empty = os.path.join(os.path.dirname(runtime_root.rstrip("/")), "exeseal-empty")
    # (runtime.default_root()'s value: importing the runtime here would cost the time we save)
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
    copy = linux.memfd_create("minidocker-exe", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    with open(binary, "rb") as source:
        while os.sendfile(copy, source.fileno(), None, 1 << 22):
            pass  # 4 MiB a call, copied by the kernel; 0 at the end of the file
    # No write, no change of size, and no more seals changed: for every process, for good.
    linux.add_seals(copy, linux.F_SEAL_SEAL | linux.F_SEAL_SHRINK | linux.F_SEAL_GROW | linux.F_SEAL_WRITE)
    return copy
