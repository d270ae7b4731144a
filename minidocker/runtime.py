"""The runtime: from a Spec (an OCI runtime config) to an isolated process.

This is what runc does for Docker. `spawn()` starts a container's first process, `join()` starts
another process inside a running container (`exec`). In order, the first process:

1. is forked into a new PID namespace, where it is PID 1;
2. joins its cgroup, then unshares the other namespaces (mount, UTS, IPC, network, cgroup);
3. builds its root filesystem: private mounts, the rootfs bound on itself (or an overlay),
   /proc, /dev and /sys, then pivot_root into it and the old root detached;
4. takes on the process settings (stdio, cwd, uid/gid) and execs the command.

Errors before the exec travel back to the parent through a close-on-exec pipe, as Python's own
subprocess does: if the exec succeeds the kernel closes the pipe and the parent reads nothing.
See docs/01-isolation.md.
"""

import fcntl
import json
import os
import signal
import socket
import stat
import struct
import termios

from minidocker import linux
from minidocker.errors import EXIT_CANNOT_INVOKE, EXIT_ENGINE, EXIT_NOT_FOUND, MinidockerError

# Signals that `--init` passes on to the command: all but those it cannot catch (KILL, STOP),
# the one that tells it a child ended (CHLD), and those the CPU raises on a fault of its own.
FORWARDED_SIGNALS = set(signal.valid_signals()) - {
    signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD,
    signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS}


class StartError(Exception):
    """Raised inside the child before exec; sent to the parent as JSON through the error pipe."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def exit_code(wait_status: int) -> int:
    """Docker's exit code for a wait status: the process's own code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(wait_status)  # negative -N when signal N killed it
    return 128 - code if code < 0 else code


# ---------------------------------------------------------------------------------------------
# Starting a container


def spawn(spec: dict, stdio=(0, 1, 2), cgroup=None, console=None) -> int:
    """Start the container's first process; return its host pid once the command runs.

    `stdio` are three open fds for the container's stdin, stdout and stderr. With a terminal,
    `console` is a unix socket instead: the container sends its pty's master side through it
    (runc's --console-socket). If the command cannot start, raises MinidockerError with Docker's
    exit code (125, 126 or 127).
    """
    namespaces = {ns["type"] for ns in spec["linux"]["namespaces"]}
    # --8<-- [start:ex-01-pid-namespace]
    # unshare(CLONE_NEWPID), fork the child (it is PID 1 there), then setns() back to our own.
    #
    # The setns() back makes our later children ordinary processes again.
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    if "pid" in namespaces:
        linux.unshare(linux.CLONE_NEWPID)  # does not move us: only where our next child is born
    pid, errors = _fork_with_error_pipe(lambda: _become_container(spec, stdio, cgroup, console))
    if "pid" in namespaces:
        linux.setns(own_pid_ns, linux.CLONE_NEWPID)
    # --8<-- [end:ex-01-pid-namespace]
    os.close(own_pid_ns)
    return _wait_for_exec(pid, errors)


def _fork_with_error_pipe(child) -> tuple[int, int]:
    """Fork; the child runs `child()`, which must exec or raise. Returns (pid, error pipe)."""
    global _error_pipe
    read_end, write_end = os.pipe2(os.O_CLOEXEC)  # closed by the kernel on a successful exec
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _error_pipe = write_end  # the child's end, for _report() and for run_init() to close
        code, message = EXIT_ENGINE, "the container process ended before exec"
        try:
            child()
        except StartError as e:
            code, message = e.code, str(e)
        except BaseException as e:  # noqa: BLE001 - whatever it is, the parent must hear of it
            message = f"{type(e).__name__}: {e}"
        _report(code, message)
        os._exit(code)  # never return into the parent's code in the child
    os.close(write_end)
    return pid, read_end


_error_pipe = -1  # in a child before exec: the write end of its error pipe


def _report(code: int, message: str) -> None:
    try:
        os.write(_error_pipe, json.dumps({"code": code, "message": message}).encode())
    except OSError:
        pass


def _wait_for_exec(pid: int, errors: int) -> int:
    """Read the error pipe to EOF: nothing means the command is running; else raise its error."""
    chunks = []
    while chunk := os.read(errors, 65536):
        chunks.append(chunk)
    os.close(errors)
    if not chunks:
        return pid
    os.waitpid(pid, 0)  # the child exits right after reporting; reap it
    error = json.loads(b"".join(chunks))
    hint = {EXIT_NOT_FOUND: "check the command's name and the container's PATH",
            EXIT_CANNOT_INVOKE: "check that the file is an executable the container can run"}
    raise MinidockerError(error["message"], hint.get(error["code"], ""), exit_code=error["code"])


def _become_container(spec: dict, stdio, cgroup, console) -> None:
    """In the child, now PID 1 of its PID namespace: isolate, build the root, exec."""
    namespaces = {ns["type"] for ns in spec["linux"]["namespaces"]}
    # --8<-- [start:ex-01-namespaces]
    # Join the cgroup, unshare every namespace but "pid" (we are in it already), set the hostname.
    #
    # Joining first makes the new cgroup namespace's "/" our own cgroup.
    if cgroup is not None:
        cgroup.add(0)
    linux.unshare(linux.namespace_flags(namespaces - {"pid"}))
    if "uts" in namespaces:
        linux.sethostname(spec["hostname"])
    # --8<-- [end:ex-01-namespaces]
    if "network" in namespaces:
        _loopback_up()
    if "mount" in namespaces:
        setup_rootfs(spec)
    _start_process(spec["process"], stdio, console, init=spec.get("minidocker", {}).get("init", False))


def _loopback_up() -> None:
    """A new network namespace has only `lo`, and it is down. ifconfig's ioctl brings it up."""
    SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))


# ---------------------------------------------------------------------------------------------
# The root filesystem


def setup_rootfs(spec: dict) -> None:
    root = os.path.realpath(spec["root"]["path"])
    # --8<-- [start:ex-01-private-mounts]
    # Make every mount private (recursively), so that no mount event crosses to or from the host.
    #
    # Without it pivot_root answers EINVAL (it refuses to move a shared root: the host would see
    # the move), and our /proc and /dev mounts would appear in the host's mount table.
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    # --8<-- [end:ex-01-private-mounts]
    overlay = spec.get("minidocker", {}).get("overlay")
    if overlay:  # chapter 02: the rootfs is a union of read-only layers and a writable one
        from minidocker import overlay as overlayfs

        overlayfs.mount(overlay["lowerdirs"], overlay["upperdir"], overlay["workdir"], root)
    else:
        # pivot_root needs the new root to be a mount point; binding a directory on itself makes
        # it one.
        linux.mount(root, root, None, linux.MS_BIND | linux.MS_REC)
    mount_proc(root)
    mount_dev(root)
    # /sys read-only: it shows the host's devices and kernel knobs; a container only reads it.
    _mountpoint(root, "sys")
    linux.mount("sysfs", f"{root}/sys", "sysfs", linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    pivot_into(root)
    if spec["root"].get("readonly"):
        # A bind remount changes only this mount's flags: / becomes read-only, /dev and /proc not.
        linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)


def _mountpoint(root: str, path: str) -> str:
    target = os.path.join(root, path)
    os.makedirs(target, exist_ok=True)
    return target


def mount_proc(root: str) -> None:
    # --8<-- [start:ex-01-proc]
    # Mount a new procfs (type "proc"; nosuid, nodev, noexec) on the rootfs's /proc.
    #
    # A fresh procfs shows the PID namespace of whoever mounts it: ours, where we are PID 1.
    linux.mount("proc", _mountpoint(root, "proc"), "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    # --8<-- [end:ex-01-proc]


# The device nodes every container gets: (name, major, minor). Only these, never the host's disks.
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]


def mount_dev(root: str) -> None:
    # --8<-- [start:mount-dev]
    dev = _mountpoint(root, "dev")
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_STRICTATIME, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        os.mknod(f"{dev}/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(f"{dev}/{name}", 0o666)  # mknod's mode is filtered by our umask
    # A private devpts instance: the container's ptys are numbered from 0 and invisible outside.
    linux.mount("devpts", _mountpoint(dev, "pts"), "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    linux.mount("shm", _mountpoint(dev, "shm"), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                "mode=1777,size=65536k")
    for link, target in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]:
        os.symlink(target, f"{dev}/{link}")
    # --8<-- [end:mount-dev]


def pivot_into(root: str) -> None:
    # --8<-- [start:ex-01-pivot-root]
    # chdir into `root`, pivot_root(".", "."), then unmount the old root with MNT_DETACH.
    #
    # pivot_root(".", ".") stacks the old root on top of the new one, at the same place, and the
    # detached unmount peels it off: no directory for the old root is needed, so this works on a
    # read-only rootfs too. (chroot would only change our view of "/", and root can climb out.)
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")
    # --8<-- [end:ex-01-pivot-root]


# ---------------------------------------------------------------------------------------------
# The process: stdio, working directory, user, exec


def _start_process(process: dict, stdio, console, init: bool) -> None:
    # Python ignores SIGPIPE and SIGXFSZ for itself; an ignored signal stays ignored across exec,
    # so give the command the default actions back (or `yes | head -1` would never end).
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    if process.get("terminal"):
        stdio = _open_console(console)
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target)  # the copies at 0, 1, 2 are inheritable by the command
    # Nothing else of ours may leak into the container (our log file, the supervisor's pipes):
    # close every other fd but the error pipe, as subprocess's close_fds does.
    os.closerange(3, _error_pipe)
    os.closerange(_error_pipe + 1, os.sysconf("SC_OPEN_MAX"))
    if process.get("terminal"):
        os.setsid()  # a new session, so that the pty on stdin can become its controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    cwd = process.get("cwd", "/")
    os.makedirs(cwd, exist_ok=True)  # Docker creates a missing working directory
    os.chdir(cwd)
    user = process.get("user", {})
    os.setgroups([])
    os.setgid(user.get("gid", 0))
    os.setuid(user.get("uid", 0))
    # If whoever started us dies (the supervisor, SIGKILLed), the kernel kills us: no orphans.
    # It is set after setuid because a change of credentials clears it.
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if init:
        run_init(process["args"], process["env"])
    execute(process["args"], process["env"])


def _open_console(console: socket.socket) -> tuple[int, int, int]:
    """A pty from the container's own /dev/ptmx: its name is /dev/pts/N *inside* the container.

    We keep the "slave" side as stdin, stdout and stderr, and pass the "master" side to the
    supervisor over the console socket (SCM_RIGHTS sends an open file, not a number).
    """
    master, slave = os.openpty()  # opens /dev/ptmx, which is now the container's devpts
    socket.send_fds(console, [b"pty"], [master])
    os.close(master)
    console.close()
    return slave, slave, slave


def execute(args: list[str], env: list[str]) -> None:
    """execvpe with PATH searched in the *container's* environment; errors as Docker reports them."""
    environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    try:
        os.execvpe(args[0], args, environment)
    except FileNotFoundError:
        where = "no such file or directory" if "/" in args[0] else "executable file not found in $PATH"
        raise StartError(EXIT_NOT_FOUND, f'exec: "{args[0]}": {where}') from None
    except (PermissionError, IsADirectoryError):
        raise StartError(EXIT_CANNOT_INVOKE, f'exec: "{args[0]}": permission denied') from None
    except OSError as e:  # ENOEXEC: not a binary and no #! line, and the like
        raise StartError(EXIT_CANNOT_INVOKE, f'exec: "{args[0]}": {e.strerror}') from None


def run_init(args: list[str], env: list[str]) -> None:
    """`--init`: stay as PID 1, run the command as our child, reap every orphan, forward signals.

    PID 1 has two duties a normal program does not know about: the kernel delivers it only the
    signals it has a handler for (so a plain `sleep` as PID 1 ignores SIGTERM), and every orphan
    in the namespace becomes its child, a zombie until PID 1 waits for it.
    """
    # --8<-- [start:ex-01-init]
    # Block the signals, fork the command, forward signals to it, and wait() for every child.
    #
    # Blocked first: a signal that came before our handlers existed would be dropped (we are
    # PID 1); blocked, it waits as "pending" until we are ready to pass it on.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    child = os.fork()
    if child == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)  # the command starts clean
        execute(args, env)
    os.close(_error_pipe)  # only the command's exec should close the parent's pipe
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, lambda signum, _frame: os.kill(child, signum))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    while True:
        pid, status = os.wait()  # any child: the command, or an orphan we inherited
        if pid == child:
            os._exit(exit_code(status))
    # --8<-- [end:ex-01-init]


# ---------------------------------------------------------------------------------------------
# exec: a new process inside a running container


def join(container_pid: int, process: dict, stdio=(0, 1, 2), cgroup=None, console=None) -> int:
    """Start `process` inside the namespaces and cgroup of `container_pid`; return its pid."""
    # --8<-- [start:ex-01-exec-setns]
    # Open /proc/PID/ns/*, setns() into the PID namespace, fork, and setns() the child into the rest.
    #
    # The mount namespace goes last: after it, every path is the container's.
    ns_files = {name: os.open(f"/proc/{container_pid}/ns/{proc}", os.O_RDONLY | os.O_CLOEXEC)
                for name, (_, proc) in linux.NAMESPACES.items() if name not in ("user",)}
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    linux.setns(ns_files["pid"], linux.CLONE_NEWPID)

    def enter():
        if cgroup is not None:
            cgroup.add(0)
        for name in ("cgroup", "ipc", "uts", "network", "mount"):
            linux.setns(ns_files[name], linux.NAMESPACES[name][0])
        _start_process(process, stdio, console, init=False)

    pid, errors = _fork_with_error_pipe(enter)
    linux.setns(own_pid_ns, linux.CLONE_NEWPID)
    # --8<-- [end:ex-01-exec-setns]
    for fd in (*ns_files.values(), own_pid_ns):
        os.close(fd)
    return _wait_for_exec(pid, errors)
