"""The Linux system calls that containers are made of, called through ctypes.

Python 3.11 has no os.unshare or os.setns (they arrived in 3.12), and no Python version wraps
mount, umount2 or pivot_root. So we call the C library directly: ctypes loads libc, we pass the
same arguments the man pages describe, and when a call returns -1 we read errno and raise an
OSError that names the syscall and its arguments. That message is what a learner sees when, say,
pivot_root answers EINVAL, so it must say *which* call failed *with what*.

Every call that changes what a container is goes through this module, which makes it the place
to watch them: with `minidocker --trace` (or MINIDOCKER_TRACE=1) each call prints one line, as
strace would, with the process that made it, its arguments in words and its result:

    [minidocker 4242] unshare(CLONE_NEWPID) = 0
    [container pid 1 (host 4250)] mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL) = 0
    [container pid 1 (host 4250)] pivot_root(".", ".") = -1 EINVAL (Invalid argument)
"""

import ctypes
import errno as errno_names
import fcntl
import functools
import os
import signal
import struct

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
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# umount2(2) flags.
MNT_FORCE = 1
MNT_DETACH = 2  # umount2: detach now, finish when the mount is no longer busy
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# prctl(2) options.
PR_SET_PDEATHSIG = 1  # a signal for me when my parent dies
PR_SET_DUMPABLE = 4  # 0: /proc/PID's private files and ptrace only for CAP_SYS_PTRACE (exec resets it)
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36  # orphans of my descendants are re-parented to me, not to init
PR_SET_NO_NEW_PRIVS = 38  # no exec from here on may gain privileges (setuid bits, file caps)

# pivot_root has no glibc wrapper; we call it by its number, which depends on the architecture.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "riscv64": 41}[os.uname().machine]


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


# ---------------------------------------------------------------------------------------------
# Numbers in words, for the trace: 0x20020000 means little; CLONE_NEWNS|CLONE_NEWPID says it all.

def _constants(*prefixes: str) -> dict[str, int]:
    """{name: value} of the constants above with these prefixes, smallest value first. Built from
    the module itself, so a constant added above is named in the trace without more work."""
    found = [(name, value) for name, value in globals().items()
             if name.startswith(prefixes) and isinstance(value, int)]
    return dict(sorted(found, key=lambda item: item[1]))


CLONE_FLAGS = _constants("CLONE_")
MOUNT_FLAGS = _constants("MS_")
UMOUNT_FLAGS = _constants("MNT_", "UMOUNT_")
PRCTL_OPTIONS = _constants("PR_")  # not bits: one option per call


def flag_names(value: int, table: dict[str, int]) -> str:
    """Bits in words, as strace writes them: MS_REC|MS_PRIVATE. A bit without a name in `table`
    stays a number (MS_BIND|0x80000000), so nothing the kernel was told goes unseen; 0 is "0"."""
    words, rest = [], value
    for name, bit in table.items():
        if bit and value & bit == bit:
            words.append(name)
            rest &= ~bit
    if rest or not words:
        words.append(hex(rest) if rest else "0")
    return "|".join(words)


def _option_name(value: int, table: dict[str, int]) -> str:
    return next((name for name, number in table.items() if number == value), str(value))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name  # 9 -> "SIGKILL"
    except ValueError:
        return str(number)


def _quote(value) -> str:
    r"""A string argument as C source would write it: "in quotes", with \n and the like escaped,
    so that a call is always one line, whatever its arguments. None is C's NULL."""
    if value is None:
        return "NULL"
    text = os.fsdecode(value)  # str, bytes or a pathlib.Path
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', r'\"') + '"'


def _fd_target(fd: int) -> str:
    """`5 -> pid:[4026531836]`: what a namespace fd refers to (its type and inode), from procfs."""
    try:
        return f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}"
    except OSError:
        return str(fd)


# ---------------------------------------------------------------------------------------------
# The trace: one line per call, written where the engine's stderr went

TRACE = False  # on with enable_trace(), or MINIDOCKER_TRACE=1 (read at import: see the end)
_trace_fd = -1  # our own copy of the stream the lines go to (see enable_trace)
_role = "minidocker"  # who this process is, for the start of its lines (see set_role)
_who = None  # "[minidocker 4242]": made on this process's first line, forgotten at each fork


def enable_trace(fd_or_file=None) -> None:
    """Trace every call below from now on, to `fd_or_file` (an fd or a file; default: stderr).

    The CLI's --trace calls this, and sets MINIDOCKER_TRACE=1 so that the minidocker commands it
    starts trace too. The children this process forks inherit the trace as they are.
    """
    global TRACE, _trace_fd
    target = 2 if fd_or_file is None else fd_or_file if isinstance(fd_or_file, int) else fd_or_file.fileno()
    # A copy of the fd, made now, and not fd 2 itself: the container's first process re-points
    # fd 2 to the *container's* stderr before it execs, and its last lines (prctl, execve) would
    # land in the container's output and its log. The copy refers to the open file (the terminal,
    # the pipe), not to the number 2, so every line goes where the engine's stderr went.
    new_fd = os.dup(target)
    # O_CLOEXEC (os.dup sets it already, PEP 446; said here because it matters): the kernel closes
    # the copy at execve, so the container's command never holds our stderr.
    os.set_inheritable(new_fd, False)
    disable_trace()
    _trace_fd, TRACE = new_fd, True


def disable_trace() -> None:
    global TRACE, _trace_fd
    if _trace_fd != -1:
        try:
            os.close(_trace_fd)
        except OSError:
            pass  # already closed, e.g. by a child's close-every-fd before exec
    _trace_fd, TRACE = -1, False


def trace_fd() -> int:
    """The fd the trace writes to, or -1. Code that closes every other fd before an exec (the
    runtime does) must keep this one open, or the last lines of that process are lost."""
    return _trace_fd


def set_role(name: str) -> None:
    """Name this process in its trace lines: call it right after fork, e.g. set_role("container").

    The name comes with the pids, read now, while /proc is still the engine's: after its own
    /proc is mounted, the container can no longer see its pid on the host.
    """
    global _role, _who
    _role, _who = name, None
    if TRACE:
        _who = _whoami()


def _whoami() -> str:
    """The start of our lines: [minidocker 4242], or [container pid 1 (host 4250)] in a new PID
    namespace (os.getpid() would say 1 there, and 1 is every container's first process).

    NSpid in /proc/self/status lists our pid in each PID namespace we are in: first as seen by
    whoever mounted this /proc (the engine), last in the innermost one (the container's).
    """
    try:
        with open("/proc/self/status") as status:
            pids = next(line.split()[1:] for line in status if line.startswith("NSpid:"))
    except (OSError, StopIteration):  # no /proc here, or a kernel before 4.1
        pids = [str(os.getpid())]
    if len(pids) > 1:
        return f"[{_role} pid {pids[-1]} (host {pids[0]})]"
    return f"[{_role} {pids[0]}]"


def _forget_who() -> None:
    global _who
    _who = None  # a forked child has a pid of its own: the next line asks again


os.register_at_fork(after_in_child=_forget_who)


def _trace(text: str) -> None:
    global _who
    if _who is None:
        _who = _whoami()
    line = f"{_who} {text}\n".encode(errors="backslashreplace")
    try:
        # One write(2) per line: the engine and its children write to the same pipe or terminal,
        # and the kernel never interleaves a write of up to PIPE_BUF (4096) bytes with another.
        # print() could split a line into several writes, and mix a parent's with a child's.
        os.write(_trace_fd, line)
    except OSError:
        pass  # the trace is a view: a closed stderr must not make the call it shows fail


def _traced(show, name: str | None = None, returns: bool = True):
    """Decorate a syscall function to print "name(arguments in words) = result" when tracing.

    `show` takes the function's arguments (declare the same defaults) and gives the words
    between the parentheses, with numbers decoded: flag names, signal names, "quoted" paths. The
    outcome is "= 0" (the number for a write: bytes written), or the errno of the OSError the
    call raises, "= -1 ENOENT (No such file or directory)", and the error goes on to the caller.
    A call that does not return when it works (execve) is printed before it is made, ending
    with "...", as strace shows a call that has not finished yet.
    """
    def decorate(function):
        @functools.wraps(function)
        def traced(*args, **kwargs):
            if not TRACE:  # the whole cost of the trace when it is off
                return function(*args, **kwargs)
            call = f"{name or function.__name__}({show(*args, **kwargs)})"
            if not returns:
                _trace(f"{call} ...")
            try:
                result = function(*args, **kwargs)
            except OSError as e:
                code = errno_names.errorcode.get(e.errno, str(e.errno))
                _trace(f"{call} = -1 {code} ({os.strerror(e.errno) if e.errno else e.strerror})")
                raise
            _trace(f"{call} = {result if isinstance(result, int) else 0}")
            return result
        return traced
    return decorate


# ---------------------------------------------------------------------------------------------
# The calls

def _error(err: int, syscall: str, *args) -> OSError:
    """An OSError that names the call, like strace would show it (OSError picks the subclass:
    FileNotFoundError for ENOENT, PermissionError for EPERM, ...)."""
    shown = ", ".join(repr(a) for a in args)
    return OSError(err, f"{syscall}({shown}): {os.strerror(err)} [{errno_names.errorcode.get(err, err)}]")


def _check(result: int, syscall: str, *args) -> int:
    """Turn C's "-1 and errno" into an OSError that names the call."""
    if result == -1:
        raise _error(ctypes.get_errno(), syscall, *args)
    return result


def _c(path):
    """A str or bytes path as a C string (None stays NULL)."""
    return None if path is None else os.fsencode(path)


@_traced(lambda flags: flag_names(flags, CLONE_FLAGS))
def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (for CLONE_NEWPID: its *next child* only)."""
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare", hex(flags))


@_traced(lambda fd, nstype=0: f"{_fd_target(fd)}, {flag_names(nstype, CLONE_FLAGS)}")
def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that `fd` (an open /proc/PID/ns/* file) refers to."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", fd, hex(nstype))


@_traced(lambda source, target, fstype=None, flags=0, data=None:
         f"{_quote(source)}, {_quote(target)}, {_quote(fstype)}, {flag_names(flags, MOUNT_FLAGS)}, {_quote(data)}")
def mount(source, target, fstype=None, flags: int = 0, data=None) -> None:
    _check(
        _libc.mount(_c(source), _c(target), _c(fstype), ctypes.c_ulong(flags), _c(data)),
        "mount", source, target, fstype, hex(flags), data,
    )


@_traced(lambda target, flags=0: f"{_quote(target)}, {flag_names(flags, UMOUNT_FLAGS)}")
def umount2(target, flags: int = 0) -> None:
    _check(_libc.umount2(_c(target), ctypes.c_int(flags)), "umount2", target, flags)


@_traced(lambda new_root, put_old: f"{_quote(new_root)}, {_quote(put_old)}")
def pivot_root(new_root, put_old) -> None:
    """Make `new_root` the root mount and move the old root to `put_old` (see runtime/rootfs.py)."""
    _check(_libc.syscall(ctypes.c_long(SYS_PIVOT_ROOT), _c(new_root), _c(put_old)), "pivot_root", new_root, put_old)


@_traced(lambda name: f"{_quote(name)}, {len(name.encode())}")
def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname", name)


@_traced(lambda option, arg2=0: f"{_option_name(option, PRCTL_OPTIONS)}, "
                                 f"{_signal_name(arg2) if option == PR_SET_PDEATHSIG and arg2 else int(arg2)}")
def prctl(option: int, arg2: int = 0) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), 0, 0, 0), "prctl", option, arg2)


@_traced(lambda path, value: f"{_quote(path)}, {_quote(value if isinstance(value, bytes) else str(value))}",
         name="write")
def write_file(path, value) -> int:
    """Write `value` (str(value) for a number) into a file in *one* write(2); return the bytes
    written. cgroupfs and procfs parse each write on its own, so a buffered file that split
    "1234" into two writes of cgroup.procs would move pid 12 and then pid 34.

    Raises OSError naming the path and the value: ENOENT from the open (no such cgroup), EINVAL
    from the write (a value the kernel refuses), and so on.
    """
    data = value if isinstance(value, bytes) else str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        raise _error(e.errno, "write", os.fsdecode(path), value) from None
    try:
        return os.write(fd, data)
    except OSError as e:  # EINVAL for a bad value, ESRCH for an unknown pid, EBUSY, ...
        raise _error(e.errno, "write", os.fsdecode(path), value) from None
    finally:
        os.close(fd)


# openat2(2) (Linux 5.6): openat with a `resolve` argument that says how the path may be walked.
# RESOLVE_IN_ROOT walks it as if dirfd were "/": an absolute symlink starts again at dirfd, and ".."
# stops there, so no path, however its symlinks point, can lead out of the container's root. There
# is no glibc wrapper; it is called by its number (437 on every architecture, a late syscall).
SYS_OPENAT2 = 437
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH, RESOLVE_IN_ROOT = 1, 2, 4, 8, 16
RESOLVE_FLAGS = _constants("RESOLVE_")
OPEN_FLAGS = {"O_PATH": os.O_PATH, "O_DIRECTORY": os.O_DIRECTORY, "O_NOFOLLOW": os.O_NOFOLLOW,
              "O_CLOEXEC": os.O_CLOEXEC, "O_CREAT": os.O_CREAT, "O_WRONLY": os.O_WRONLY, "O_EXCL": os.O_EXCL}


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@_traced(lambda dirfd, path, flags, mode=0, resolve=0: f"{_fd_target(dirfd)}, {_quote(path)}, "
         f"{{flags={flag_names(flags, OPEN_FLAGS)}, mode={mode:#o}, resolve={flag_names(resolve, RESOLVE_FLAGS)}}}")
def openat2(dirfd: int, path, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """Open `path` relative to `dirfd`, walked by the `resolve` rules; returns the new fd."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(_libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd), _c(path), ctypes.byref(how),
                                ctypes.c_size_t(ctypes.sizeof(how))), "openat2", dirfd, path, hex(flags), resolve)


@_traced(lambda dirfd, name, mode=0o755: f"{_fd_target(dirfd)}, {_quote(name)}, {mode:#o}")
def mkdirat(dirfd: int, name, mode: int = 0o755) -> None:
    """mkdir `name` (one component) inside the directory open as `dirfd`."""
    try:
        os.mkdir(name, mode, dir_fd=dirfd)
    except OSError as e:
        raise _error(e.errno, "mkdirat", dirfd, name) from None


@_traced(lambda dirfd, name: f"{_fd_target(dirfd)}, {_quote(name)}")
def readlinkat(dirfd: int, name) -> str:
    """The target of the symlink `name` (one component) in the directory open as `dirfd`."""
    try:
        return os.readlink(name, dir_fd=dirfd)
    except OSError as e:
        raise _error(e.errno, "readlinkat", dirfd, name) from None


# ---------------------------------------------------------------------------------------------
# Capabilities (chapter 08): root's powers, one bit each, in five sets per thread
#
# The kernel checks a capability, not uid 0: mount(2) asks for CAP_SYS_ADMIN, chown(2) for
# CAP_CHOWN. Each thread has five 64-bit sets (capabilities(7)): bounding (the most it can ever
# get back at an exec), permitted (what it may use), effective (what the kernel checks now),
# inheritable and ambient (what it may pass on to a program it execs). /proc/PID/status shows
# them as CapBnd, CapPrm, CapEff, CapInh and CapAmb, in hex.

# The bit numbers, from <linux/capability.h>: ABI, they never change. Kernel 5.9 knows all 41.
CAPABILITIES = {name: number for number, name in enumerate([
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"])}
CAPABILITY_BITS = {name: 1 << number for name, number in CAPABILITIES.items()}  # for flag_names

# prctl(2) options for the per-thread capability state (not in PR_ above: their own table).
CAP_PRCTL_OPTIONS = {"PR_SET_KEEPCAPS": 8, "PR_CAPBSET_READ": 23, "PR_CAPBSET_DROP": 24, "PR_CAP_AMBIENT": 47}
PR_SET_KEEPCAPS, PR_CAPBSET_READ, PR_CAPBSET_DROP, PR_CAP_AMBIENT = CAP_PRCTL_OPTIONS.values()
AMBIENT_OPERATIONS = {"PR_CAP_AMBIENT_IS_SET": 1, "PR_CAP_AMBIENT_RAISE": 2, "PR_CAP_AMBIENT_LOWER": 3,
                      "PR_CAP_AMBIENT_CLEAR_ALL": 4}
PR_CAP_AMBIENT_IS_SET, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_LOWER, PR_CAP_AMBIENT_CLEAR_ALL = AMBIENT_OPERATIONS.values()

# capget/capset take a header (which version of the ABI, which thread: 0 is "me") and, in version
# 3, two {effective, permitted, inheritable} words of 32 bits: capabilities 0-31, then 32-63.
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capability_names(mask: int) -> str:
    """A set in words: CAP_CHOWN|CAP_KILL (0 for the empty set)."""
    return flag_names(mask, CAPABILITY_BITS)


def _capability_name(number: int) -> str:
    return next((name for name, n in CAPABILITIES.items() if n == number), str(number))


def _cap_prctl_words(option: int, arg2: int = 0, arg3: int = 0) -> str:
    words = [_option_name(option, CAP_PRCTL_OPTIONS)]
    if option == PR_CAP_AMBIENT:
        words.append(_option_name(arg2, AMBIENT_OPERATIONS))
        if arg2 != PR_CAP_AMBIENT_CLEAR_ALL:
            words.append(_capability_name(arg3))
    elif option in (PR_CAPBSET_READ, PR_CAPBSET_DROP):
        words.append(_capability_name(arg2))
    else:
        words.append(str(arg2))
    return ", ".join(words)


@_traced(_cap_prctl_words, name="prctl")
def cap_prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    """prctl(2) for capabilities: PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_SET_KEEPCAPS... Returns the
    kernel's answer (PR_CAPBSET_READ: 1 if the capability is in the bounding set)."""
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0),
                  "prctl", option, arg2, arg3)


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) sets, as 64-bit masks."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    return tuple(getattr(data[0], s) | getattr(data[1], s) << 32 for s in ("effective", "permitted", "inheritable"))


@_traced(lambda effective, permitted, inheritable: "{_LINUX_CAPABILITY_VERSION_3, 0}, "
         f"{{effective={capability_names(effective)}, permitted={capability_names(permitted)}, "
         f"inheritable={capability_names(inheritable)}}}")
def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's three sets. The kernel refuses (EPERM) a permitted bit we do not hold,
    an effective bit outside the new permitted set, and an inheritable bit outside the bounding set."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(*[_CapData(*((mask >> shift) & 0xFFFFFFFF for mask in (effective, permitted, inheritable)))
                            for shift in (0, 32)])
    _check(_libc.capset(ctypes.byref(header), data), "capset", hex(effective), hex(permitted), hex(inheritable))


# Bringing a network interface up, as `ip link set lo up` does. The ioctl works on any socket of
# this network namespace; the socket comes from libc (Python's socket module costs ~2 ms to import).
AF_INET, SOCK_DGRAM, SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 2, 2, 0x8913, 0x8914, 0x1


@_traced(lambda name: f'SIOCSIFFLAGS, {{"{name}", IFF_UP}}', name="ioctl")
def interface_up(name: str) -> None:
    sock = _check(_libc.socket(AF_INET, SOCK_DGRAM, 0), "socket", "AF_INET", "SOCK_DGRAM")
    try:
        request = bytearray(struct.pack("16sH", name.encode(), 0))  # struct ifreq: a name, the flags
        fcntl.ioctl(sock, SIOCGIFFLAGS, request)  # read its flags...
        flags = struct.unpack_from("H", request, 16)[0]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", name.encode(), flags | IFF_UP))  # ...add UP
    finally:
        os.close(sock)


# Traced as "execveat", the syscall behind glibc's fexecve: exec the file that an open fd is, with
# no path at all (AT_EMPTY_PATH). On success this process *is* the new program, and nothing here
# runs again: so the line is written before, ending in "...".
@_traced(lambda fd, args, env: f"{_fd_target(fd)}, \"\", [{', '.join(map(_quote, args))}], /* {len(env)} vars */, "
                               "AT_EMPTY_PATH", name="execveat", returns=False)
def fexecve(fd: int, args, env: dict) -> None:
    """Replace this process with the program that `fd` holds open, given args and env."""
    os.execve(fd, args, env)  # an int for the path is an open file: Python calls fexecve(3)


# ---------------------------------------------------------------------------------------------
# bpf(2) (chapter 08): load a small program into the kernel, and hang it on a cgroup
#
# eBPF is the kernel's own instruction set: a program is an array of 8-byte instructions, checked
# by the kernel's verifier (no loop it cannot bound, no read outside its context) before it may
# run. cgroup v2 has no devices.allow file: the device cgroup there *is* such a program, run on
# every open and mknod of a device node (minidocker/cgroups/devices_bpf.py builds it). One
# syscall, bpf(cmd, attr, size), does everything; `attr` is a union whose fields depend on cmd.
SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "riscv64": 280}[os.uname().machine]
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8  # the two commands we need of bpf(2)'s ~40
BPF_PROG_TYPE_CGROUP_DEVICE = 15  # the program's type says what it may see: here a device's numbers
BPF_CGROUP_DEVICE = 6  # where it is attached: the device check of a cgroup
BPF_F_ALLOW_MULTI = 2  # our program runs beside the parents' (systemd's), and all must say yes
BPF_PROG_TYPES, BPF_ATTACH_TYPES = {"BPF_PROG_TYPE_CGROUP_DEVICE": 15}, {"BPF_CGROUP_DEVICE": 6}  # for the trace
BPF_ATTACH_FLAGS = {"BPF_F_ALLOW_OVERRIDE": 1, "BPF_F_ALLOW_MULTI": 2}
_BPF_ATTR_SIZE = 120  # union bpf_attr; the kernel reads the fields it knows, the rest must be 0


def _bpf(cmd: int, attr) -> int:
    return _libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(len(attr)))


@_traced(lambda prog_type, instructions, license="GPL", name="":
         f"BPF_PROG_LOAD, {{prog_type={_option_name(prog_type, BPF_PROG_TYPES)}, insn_cnt={len(instructions) // 8}, "
         f"license={_quote(license)}, prog_name={_quote(name)}}}", name="bpf")
def bpf_prog_load(prog_type: int, instructions: bytes, license: str = "GPL", name: str = "") -> int:
    """Load a program (its instructions, 8 bytes each); returns its fd. When the verifier
    refuses it, the OSError carries the verifier's own log: which instruction, and why."""
    code, lic = ctypes.create_string_buffer(instructions, len(instructions)), ctypes.create_string_buffer(license.encode())

    def attempt(log=None):
        attr = ctypes.create_string_buffer(_BPF_ATTR_SIZE)
        struct.pack_into("=IIQQ", attr, 0, prog_type, len(instructions) // 8,
                         ctypes.addressof(code), ctypes.addressof(lic))
        if log is not None:  # log_level 1, log_size, log_buf: the verifier writes what it saw
            struct.pack_into("=IIQ", attr, 24, 1, len(log), ctypes.addressof(log))
        struct.pack_into("16s", attr, 48, name.encode()[:15])
        return _bpf(BPF_PROG_LOAD, attr)

    fd = attempt()
    if fd == -1:
        err, log = ctypes.get_errno(), ctypes.create_string_buffer(1 << 16)
        attempt(log)  # the same load again, now with a log, to say why
        lines = log.value.decode(errors="replace").strip().splitlines()
        # The verifier walks the program and stops at the first fault: the last lines before its
        # statistics ("processed N insns...") say which instruction, and what is wrong with it.
        detail = [line for line in lines if not line.startswith("processed ")][-2:]
        raise OSError(err, f"bpf(BPF_PROG_LOAD): {os.strerror(err)} [{errno_names.errorcode.get(err, err)}]"
                      + (f": {' / '.join(detail)}" if detail else ""))
    return fd


@_traced(lambda target_fd, prog_fd, attach_type, flags=0:
         f"BPF_PROG_ATTACH, {{target_fd={_fd_target(target_fd)}, attach_bpf_fd={prog_fd}, "
         f"attach_type={_option_name(attach_type, BPF_ATTACH_TYPES)}, "
         f"attach_flags={flag_names(flags, BPF_ATTACH_FLAGS)}}}", name="bpf")
def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    """Attach a loaded program to `target_fd` (for a cgroup program: the cgroup's directory, open).
    The cgroup holds the program from then on: closing our fd does not unload it."""
    attr = ctypes.create_string_buffer(_BPF_ATTR_SIZE)
    struct.pack_into("=IIII", attr, 0, target_fd, prog_fd, attach_type, flags)
    _check(_bpf(BPF_PROG_ATTACH, attr), "bpf", "BPF_PROG_ATTACH", target_fd, prog_fd, attach_type)


# ---------------------------------------------------------------------------------------------
# User namespaces (chapter 08): who the container's root is on the host
#
# A user namespace has its own uids and gids, and a map from them to the parent's: the line
# "0 100000 65536" of /proc/PID/uid_map says ids 0-65535 inside are 100000-165535 outside. Root
# inside holds every capability, but only over what its namespace owns; to the host's kernel,
# a file it creates belongs to 100000, and the host's own files are other people's. Each other
# namespace (mount, pid, net...) is *owned* by the user namespace its creator was in, and the
# kernel checks a capability in that owner: mounting proc needs CAP_SYS_ADMIN in the user
# namespace that owns the PID namespace. See docs/08-hardening.md#user-namespaces.

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


# ---------------------------------------------------------------------------------------------
# seccomp(2) (chapter 08): a filter the kernel runs before each of this thread's system calls
#
# The filter is a classic BPF program (minidocker/security/bpf.py) passed as a struct sock_fprog:
# its length in instructions and a pointer to them. The kernel copies it, checks it, and runs it
# on every system call of this thread and of every process it starts, for good: there is no call
# to remove a filter. Without no_new_privs it takes CAP_SYS_ADMIN (EACCES otherwise).
SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "armv7l": 383, "riscv64": 277}[os.uname().machine]
SECCOMP_SET_MODE_FILTER = 1  # seccomp(2)'s operations: 0 is the old strict mode (read, write, exit only)
SECCOMP_OPERATIONS = {"SECCOMP_SET_MODE_STRICT": 0, "SECCOMP_SET_MODE_FILTER": 1}
SECCOMP_FILTER_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2,
                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


@_traced(lambda program, flags=0: f"SECCOMP_SET_MODE_FILTER, {flag_names(flags, SECCOMP_FILTER_FLAGS)}, "
                                  f"{{len={len(program) // 8}, filter=...}}", name="seccomp")
def seccomp_set_mode_filter(program: bytes, flags: int = 0) -> None:
    """Load a filter (struct sock_filter[], 8 bytes each) on the calling thread."""
    code = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(code))
    _check(_libc.syscall(ctypes.c_long(SYS_SECCOMP), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags),
                         ctypes.byref(fprog)), "seccomp", "SECCOMP_SET_MODE_FILTER", flags, f"{len(program) // 8} instructions")



# ---------------------------------------------------------------------------------------------
# The new mount API and sealed files (chapter 08, CVE-2019-5736): see minidocker/exeseal.py
#
# fsopen/fsconfig/fsmount (Linux 5.2) build a mount in steps, each a call on a file descriptor:
# a filesystem context, its options one by one, the superblock, and a mount that is attached
# nowhere (a "detached" mount, reached only through the fd fsmount returns). No glibc wrappers:
# called by their numbers, the same on every architecture (late syscalls, 430 on).
SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 430, 431, 432
FSOPEN_CLOEXEC = FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_STRING, FSCONFIG_CMD_CREATE = 1, 6
MOUNT_ATTRS = {"MOUNT_ATTR_RDONLY": 1, "MOUNT_ATTR_NOSUID": 2, "MOUNT_ATTR_NODEV": 4, "MOUNT_ATTR_NOEXEC": 8}
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = MOUNT_ATTRS.values()
# memfd seals (fcntl F_ADD_SEALS): what may never again happen to the file, for anyone.
SEALS = {"F_SEAL_SEAL": 1, "F_SEAL_SHRINK": 2, "F_SEAL_GROW": 4, "F_SEAL_WRITE": 8}
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = SEALS.values()


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

if os.environ.get("MINIDOCKER_TRACE"):  # the same rule as MINIDOCKER_DEBUG: set and not empty
    try:
        enable_trace()  # to stderr, from the first call on
    except OSError:
        pass  # fd 2 is closed: there is nowhere to trace to
