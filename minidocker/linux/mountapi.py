"""The new mount API (chapter 08, CVE-2019-5736): a mount made in steps, attached nowhere.

fsopen/fsconfig/fsmount (Linux 5.2) build a mount in steps, each a call on a file descriptor:
a filesystem context, its options one by one, the superblock, and a mount that is attached
nowhere (a "detached" mount, reached only through the fd fsmount returns). minidocker/exeseal.py
makes its read-only view of the exec stub so. No glibc wrappers: called by their numbers, the
same on every architecture (late syscalls, 430 on).
"""

import ctypes

from minidocker.linux import _c, _check, _libc, _quote, _traced, flag_names

SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 430, 431, 432
FSOPEN_CLOEXEC = FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 1, 6
MOUNT_ATTRS = {"MOUNT_ATTR_RDONLY": 1, "MOUNT_ATTR_NOSUID": 2, "MOUNT_ATTR_NODEV": 4, "MOUNT_ATTR_NOEXEC": 8}
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = MOUNT_ATTRS.values()


@_traced(lambda fstype: f"{_quote(fstype)}, FSOPEN_CLOEXEC")
def fsopen(fstype: str) -> int:
    """A new filesystem context for `fstype`; returns its fd."""
    return _check(_libc.syscall(ctypes.c_long(SYS_FSOPEN), _c(fstype), ctypes.c_uint(FSOPEN_CLOEXEC)),
                  "fsopen", fstype)


@_traced(lambda fs_fd, key, value: f"{fs_fd}, FSCONFIG_SET_STRING, {_quote(key)}, {_quote(value)}", name="fsconfig")
def fsconfig_set_string(fs_fd: int, key: str, value: str) -> None:
    """One option of the filesystem to be made: lowerdir=/usr/bin:/empty."""
    _check(_libc.syscall(ctypes.c_long(SYS_FSCONFIG), ctypes.c_int(fs_fd), ctypes.c_uint(FSCONFIG_SET_STRING),
                         _c(key), _c(value), ctypes.c_int(0)), "fsconfig", fs_fd, key, value)


@_traced(lambda fs_fd: f"{fs_fd}, FSCONFIG_CMD_CREATE, NULL, NULL, 0", name="fsconfig")
def fsconfig_create(fs_fd: int) -> None:
    """Make the superblock from the options given so far (the mount(2) of the new API)."""
    _check(_libc.syscall(ctypes.c_long(SYS_FSCONFIG), ctypes.c_int(fs_fd), ctypes.c_uint(FSCONFIG_CMD_CREATE),
                         None, None, ctypes.c_int(0)), "fsconfig", fs_fd, "FSCONFIG_CMD_CREATE")


@_traced(lambda fs_fd, attrs=0: f"{fs_fd}, FSMOUNT_CLOEXEC, {flag_names(attrs, MOUNT_ATTRS)}")
def fsmount(fs_fd: int, attrs: int = 0) -> int:
    """A detached mount of the context's superblock; returns its fd (the mount's root)."""
    return _check(_libc.syscall(ctypes.c_long(SYS_FSMOUNT), ctypes.c_int(fs_fd), ctypes.c_uint(FSMOUNT_CLOEXEC),
                                ctypes.c_uint(attrs)), "fsmount", fs_fd, attrs)
