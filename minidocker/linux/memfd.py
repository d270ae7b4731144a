"""Sealed files (chapter 08, CVE-2019-5736): a file in memory that nobody may change.

memfd_create(2) makes a file with no path, in memory only; with MFD_ALLOW_SEALING, fcntl's
F_ADD_SEALS then forbids, to every process and for good, what the seals name: writing it,
growing or shrinking it, adding more seals. minidocker/exeseal.py runs the exec stub from such a
copy where the new mount API (mountapi.py) cannot make its read-only view.
"""

import fcntl
import os

from minidocker.linux import _error, _fd_target, _quote, _traced, flag_names

# memfd seals (fcntl F_ADD_SEALS): what may never again happen to the file, for anyone.
SEALS = {"F_SEAL_SEAL": 1, "F_SEAL_SHRINK": 2, "F_SEAL_GROW": 4, "F_SEAL_WRITE": 8}
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = SEALS.values()
MEMFD_FLAGS = {"MFD_CLOEXEC": os.MFD_CLOEXEC, "MFD_ALLOW_SEALING": os.MFD_ALLOW_SEALING}


@_traced(lambda name, flags: f"{_quote(name)}, {flag_names(flags, MEMFD_FLAGS)}")
def memfd_create(name: str, flags: int) -> int:
    """A file that lives in memory only, with no path; returns its fd."""
    try:
        return os.memfd_create(name, flags)
    except OSError as e:
        raise _error(e.errno, "memfd_create", name, flags) from None


@_traced(lambda fd, seals: f"{_fd_target(fd)}, F_ADD_SEALS, {flag_names(seals, SEALS)}", name="fcntl")
def add_seals(fd: int, seals: int) -> None:
    """Seal a memfd: from now on the kernel refuses, to every process, what the seals name."""
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except OSError as e:
        raise _error(e.errno, "fcntl", fd, "F_ADD_SEALS", seals) from None
