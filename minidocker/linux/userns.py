"""User namespaces (chapter 08): who the container's root is on the host.

A user namespace has its own uids and gids, and a map from them to the parent's: the line
"0 100000 65536" of /proc/PID/uid_map says ids 0-65535 inside are 100000-165535 outside. Root
inside holds every capability, but only over what its namespace owns; to the host's kernel,
a file it creates belongs to 100000, and the host's own files are other people's. Each other
namespace (mount, pid, net...) is *owned* by the user namespace its creator was in, and the
kernel checks a capability in that owner: mounting proc needs CAP_SYS_ADMIN in the user
namespace that owns the PID namespace. See docs/08-hardening.md#user-namespaces.
"""

import ctypes
import fcntl
import os
import signal

from minidocker.linux import _error, _libc, _quote, _traced, write_file


@_traced(lambda pid, kind, mappings: f'"/proc/{pid}/{kind}", "'
         + "\\n".join(f"{m['containerID']} {m['hostID']} {m['size']}" for m in mappings) + '"', name="write")
def write_id_map(pid: int, kind: str, mappings: list[dict]) -> None:
    """Write the uid_map or gid_map of process `pid` (the first in a new user namespace), in *one*
    write(2), as the kernel requires: it takes a map once, whole, and never again. Each OCI
    mapping {"containerID", "hostID", "size"} is one line "inside outside count"."""
    text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)
    fd = os.open(f"/proc/{pid}/{kind}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    except OSError as e:  # EPERM: an id we may not map; EINVAL: overlapping lines, or a second write
        raise _error(e.errno, "write", f"/proc/{pid}/{kind}", text) from None
    finally:
        os.close(fd)


def deny_setgroups(pid: int) -> None:
    """"deny" in /proc/PID/setgroups: needed before an *unprivileged* writer may set gid_map (else
    the process could drop a group that a file's mode denies it, and so gain access: CVE-2014-8989).
    A runtime that is root in the parent namespace maps gids without it, as runc does."""
    write_file(f"/proc/{pid}/setgroups", "deny")


# clone(2) with CLONE_PARENT: a child whose parent is *our* parent, as runc's nsexec makes the
# container's first process. By its number: glibc's clone() wants a function to run on a new stack.
SYS_CLONE = {"x86_64": 56, "aarch64": 220, "armv7l": 120, "riscv64": 220}[os.uname().machine]
CLONE_PARENT = 0x00008000


@_traced(lambda: f"CLONE_PARENT|{signal.SIGCHLD.name}", name="clone")
def fork_as_sibling() -> int:
    """fork(), but the new process is our sibling: our parent waits for it and gets its SIGCHLD.
    Returns 0 in the new process, its pid in ours. With a NULL stack the child runs on a copy of
    ours, as after fork(); Python's own before/after-fork steps run around it, as in os.fork()."""
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _libc.syscall(ctypes.c_long(SYS_CLONE), ctypes.c_ulong(CLONE_PARENT | signal.SIGCHLD), None, None, None, None)
    err = ctypes.get_errno()
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
    else:
        ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid == -1:
        raise _error(err, "clone", "CLONE_PARENT|SIGCHLD")
    return pid


NS_GET_USERNS = 0xB701  # ioctl(2) on a namespace file: an fd of the user namespace that owns it


@_traced(lambda path: f"{_quote(path)}, NS_GET_USERNS", name="ioctl")
def owning_user_namespace(path) -> tuple[int, int]:
    """The user namespace that owns the namespace file `path` (/proc/self/ns/net), as the
    (device, inode) pair that names it; compare with os.stat("/proc/self/ns/user"). EPERM when
    that owner is an ancestor of our user namespace: out of our sight."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
    except OSError as e:
        raise _error(e.errno, "ioctl", os.fsdecode(path), "NS_GET_USERNS") from None
    finally:
        os.close(fd)
    try:
        st = os.fstat(owner)
        return st.st_dev, st.st_ino
    finally:
        os.close(owner)
