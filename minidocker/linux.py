"""The Linux system calls that containers are made of, called through ctypes.

Python 3.11 has no os.unshare or os.setns (they arrived in 3.12), and no Python version wraps
mount, umount2 or pivot_root. So we call the C library directly: ctypes loads libc, we pass the
same arguments the man pages describe, and when a call returns -1 we read errno and raise an
OSError that names the syscall and its arguments. That message is what a learner sees when, say,
pivot_root answers EINVAL, so it must say *which* call failed *with what*.
"""

import ctypes
import errno as errno_names
import os
import platform

# use_errno=True makes ctypes save the C errno right after each call, for ctypes.get_errno().
_libc = ctypes.CDLL(None, use_errno=True)

# --8<-- [start:clone-flags]
# Namespace flags from <sched.h>. One bit per namespace type, so a set of namespaces is an OR.
CLONE_NEWNS = 0x00020000  # mount ("NS" because it was the first namespace, in 2002)
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000  # hostname and domain name
CLONE_NEWIPC = 0x08000000  # System V IPC and POSIX message queues
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# The OCI runtime spec's namespace names, with their flag and their file in /proc/PID/ns/.
NAMESPACES = {
    "mount": (CLONE_NEWNS, "mnt"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "uts": (CLONE_NEWUTS, "uts"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "user": (CLONE_NEWUSER, "user"),
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
}
# --8<-- [end:clone-flags]

# mount(2) flags from <sys/mount.h>.
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2  # umount2: detach now, finish when the mount is no longer busy

# prctl(2) options.
PR_SET_PDEATHSIG = 1  # a signal for me when my parent dies
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36  # orphans of my descendants are re-parented to me, not to init

# pivot_root has no glibc wrapper; we call it by its number, which depends on the architecture.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "riscv64": 41}[platform.machine()]


def namespace_flags(names) -> int:
    """The CLONE_NEW* bits for OCI namespace names: {"pid", "uts"} -> CLONE_NEWPID|CLONE_NEWUTS."""
    flags = 0
    for name in names:
        if name not in NAMESPACES:
            raise ValueError(f"unknown namespace type {name!r} (one of {', '.join(NAMESPACES)})")
        flags |= NAMESPACES[name][0]
    return flags


def namespace_names(flags: int) -> set[str]:
    """The inverse of namespace_flags."""
    return {name for name, (bit, _) in NAMESPACES.items() if flags & bit}


def _check(result: int, syscall: str, *args) -> int:
    """Turn C's "-1 and errno" into an OSError that names the call, like strace would show it."""
    if result == -1:
        err = ctypes.get_errno()
        shown = ", ".join(repr(a) for a in args)
        raise OSError(err, f"{syscall}({shown}): {os.strerror(err)} [{errno_names.errorcode.get(err, err)}]")
    return result


def _c(path):
    """A str or bytes path as a C string (None stays NULL)."""
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (for CLONE_NEWPID: its *next child* only)."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare", hex(flags))


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that `fd` (an open /proc/PID/ns/* file) refers to."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", fd, hex(nstype))


def mount(source, target, fstype=None, flags: int = 0, data=None) -> None:
    _check(
        _libc.mount(_c(source), _c(target), _c(fstype), ctypes.c_ulong(flags), _c(data)),
        "mount", source, target, fstype, hex(flags), data,
    )


def umount2(target, flags: int = 0) -> None:
    _check(_libc.umount2(_c(target), ctypes.c_int(flags)), "umount2", target, flags)


def pivot_root(new_root, put_old) -> None:
    """Make `new_root` the root mount and move the old root to `put_old` (see runtime.py)."""
    _check(_libc.syscall(ctypes.c_long(SYS_PIVOT_ROOT), _c(new_root), _c(put_old)), "pivot_root", new_root, put_old)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname", name)


def prctl(option: int, arg2: int = 0) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), 0, 0, 0), "prctl", option, arg2)
