"""The Linux system calls that containers are made of, called through ctypes.

Python 3.11 has no os.unshare or os.setns (they arrived in 3.12), and no Python version wraps
mount, umount2 or pivot_root. So we call the C library directly: ctypes loads libc, we pass the
same arguments the man pages describe, and when a call returns -1 we read errno and raise an
OSError that names the syscall and its arguments. That message is what a learner sees when, say,
pivot_root answers EINVAL, so it must say *which* call failed *with what*.

Every call that changes what a container is goes through this package, which makes it the place
to watch them: with `minidocker --trace` (or MINIDOCKER_TRACE=1) each call prints one line, as
strace would, with the process that made it, its arguments in words and its result:

    [minidocker 4242] unshare(CLONE_NEWPID) = 0
    [container pid 1 (host 4250)] mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL) = 0
    [container pid 1 (host 4250)] pivot_root(".", ".") = -1 EINVAL (Invalid argument)

This file is the core: the trace, and the calls of chapters 01 to 05. Chapter 08's hardening
calls each have a module of their own beside it (capabilities.py, bpf.py, userns.py, seccomp.py,
mountapi.py, memfd.py), built on the helpers here, and are still reached as linux.capset & co.
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
    if flags & CLONE_NEWUSER:
        _load_later()  # while our files are still ours to read (see _load_later, at the end)
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare", hex(flags))


@_traced(lambda fd, nstype=0: f"{_fd_target(fd)}, {flag_names(nstype, CLONE_FLAGS)}")
def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that `fd` (an open /proc/PID/ns/* file) refers to."""
    if not nstype or nstype & (CLONE_NEWNS | CLONE_NEWUSER):  # 0: a namespace of any type
        _load_later()  # while the host's files are still in sight (see _load_later, at the end)
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
    _load_later()  # while the host's files are still in sight (see _load_later, at the end)
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
# Chapter 08's calls: in modules of their own, loaded on first use
#
# Most processes that import this package make no chapter-08 call (the engine's, the daemon's,
# the runtime's around a container's), so a module here is imported only when one of its names is
# first asked for (PEP 562's module __getattr__): linux.capset works as if defined above. The
# container's own process loads them all before pivot_root: see _load_later.
_LATER = {
    "capabilities": ("CAPABILITIES", "CAPABILITY_BITS", "CAP_PRCTL_OPTIONS", "PR_SET_KEEPCAPS", "PR_CAPBSET_READ",
                     "PR_CAPBSET_DROP", "PR_CAP_AMBIENT", "AMBIENT_OPERATIONS", "PR_CAP_AMBIENT_IS_SET",
                     "PR_CAP_AMBIENT_RAISE", "PR_CAP_AMBIENT_LOWER", "PR_CAP_AMBIENT_CLEAR_ALL",
                     "capability_names", "cap_prctl", "capget", "capset"),
    "bpf": ("SYS_BPF", "BPF_PROG_LOAD", "BPF_PROG_ATTACH", "BPF_PROG_TYPE_CGROUP_DEVICE", "BPF_CGROUP_DEVICE",
            "BPF_F_ALLOW_MULTI", "BPF_PROG_TYPES", "BPF_ATTACH_TYPES", "BPF_ATTACH_FLAGS",
            "bpf_prog_load", "bpf_prog_attach"),
    "userns": ("write_id_map", "deny_setgroups", "SYS_CLONE", "CLONE_PARENT", "fork_as_sibling",
               "NS_GET_USERNS", "owning_user_namespace"),
    "seccomp": ("SYS_SECCOMP", "SECCOMP_SET_MODE_FILTER", "SECCOMP_OPERATIONS", "SECCOMP_FILTER_FLAGS",
                "seccomp_set_mode_filter"),
    "mountapi": ("SYS_FSOPEN", "SYS_FSCONFIG", "SYS_FSMOUNT", "FSOPEN_CLOEXEC", "FSMOUNT_CLOEXEC",
                 "FSCONFIG_SET_STRING", "FSCONFIG_CMD_CREATE", "MOUNT_ATTRS", "MOUNT_ATTR_RDONLY",
                 "MOUNT_ATTR_NOSUID", "MOUNT_ATTR_NODEV", "MOUNT_ATTR_NOEXEC",
                 "fsopen", "fsconfig_set_string", "fsconfig_create", "fsmount"),
    "memfd": ("MEMFD_FLAGS", "SEALS", "F_SEAL_SEAL", "F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_WRITE",
              "memfd_create", "add_seals"),
}
_HOME = {name: module for module, names in _LATER.items() for name in names}


def _load(module: str) -> None:
    """Import one of the modules above, and keep all its names here: the next linux.X of any of
    them is a plain lookup again, not a call of __getattr__."""
    __import__(f"{__name__}.{module}")  # which also sets globals()[module] to the submodule
    globals().update((name, getattr(globals()[module], name)) for name in _LATER[module])


def __getattr__(name: str):
    """Called only for a name not found in this module's globals."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _load(_HOME[name])
    return globals()[name]


def _load_later() -> None:
    """Import all of them now, in a process about to lose sight of the host's files (pivot_root,
    setns into a mount namespace) or its right to read them (a user namespace, whose root is
    another uid on the host: unshare or setns). After that, `import` cannot load them, and the
    container's process still calls capset and seccomp on its way to exec."""
    for module, names in _LATER.items():
        if names[0] not in globals():
            _load(module)


def __dir__():
    return sorted({*globals(), *_HOME})


if os.environ.get("MINIDOCKER_TRACE"):  # the same rule as MINIDOCKER_DEBUG: set and not empty
    try:
        enable_trace()  # to stderr, from the first call on
    except OSError:
        pass  # fd 2 is closed: there is nowhere to trace to
