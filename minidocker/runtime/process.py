"""The container's process: stdio, working directory, user, exec, and `--init`."""

import fcntl
import os
import resource  # imported here: after pivot_root the host's Python library is out of sight
import signal
import stat
import termios

from minidocker import exeseal, linux
from minidocker.errors import EXIT_CANNOT_INVOKE, EXIT_ENGINE, EXIT_NOT_FOUND, EXIT_SIGNAL_BASE

# Every signal a process may catch or ignore: all but KILL and STOP.
RESETTABLE_SIGNALS = set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}

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
    return EXIT_SIGNAL_BASE - code if code < 0 else code


capabilities = seccomp = None  # chapter 08's modules: load_locks() imports them
exec_stub = -1  # chapter 08: the sealed exec stub, through which the command is exec'd (exeseal.py)
seccomp_program = None  # chapter 08: the filter to load, compiled


def load_locks(linux_seccomp: dict | None) -> None:
    """Ready the locks that start_process() enforces, in the runtime, before it forks the
    container's process: after pivot_root the host's Python library and the stub's file are out
    of sight, and the filter is compiled once for every process that forks from here. Only the
    commands that start processes pay for it; `state`, `start`, `kill` and `delete`, each a
    process of its own under containerd's shim, do not."""
    global capabilities, seccomp, exec_stub, seccomp_program
    from minidocker.security import capabilities
    exec_stub = exeseal.sealed_stub()
    seccomp_program = None
    if linux_seccomp:  # a spec with no filter (runc spec's) does without the compiler's import
        from minidocker.security import seccomp
        seccomp_program = seccomp.program(linux_seccomp)


error_pipe = -1  # in a child before exec: where its errors go (the error pipe or exec.fifo, see spawn.py)


def start_process(process: dict, stdio, console, init: bool, wait_for_start=None) -> None:
    """Become the spec's `process`: stdio, cwd, rlimits, no_new_privs, seccomp, capabilities,
    user; then exec.

    `wait_for_start` (create's) blocks until `start` says go: the process is fully made, only
    the exec is left, as runc's init waits on its exec.fifo.
    """
    # An ignored signal stays ignored across exec. Python ignores SIGPIPE and SIGXFSZ for itself,
    # and whoever started us may have ignored more (a shell's background job ignores SIGINT and
    # SIGQUIT), so give the command every default action back, as runc does: else `yes | head -1`
    # would never end, and `docker kill -s INT` would do nothing.
    for sig in RESETTABLE_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    if process.get("terminal"):
        stdio = open_console(console)
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target)  # the copies at 0, 1, 2 are inheritable by the command
    # Nothing else of ours may leak into the container (our log file, the supervisor's pipes):
    # close every other fd but ours (the error pipe, the state dir, the trace, the exec stub), as
    # subprocess's close_fds does.
    close_fds_but({error_pipe, state_dir_fd, linux.trace_fd(), exec_stub})
    if process.get("terminal"):
        os.setsid()  # a new session, so that the pty on stdin can become its controlling terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    cwd = process.get("cwd", "/")
    os.makedirs(cwd, exist_ok=True)  # Docker creates a missing working directory
    os.chdir(cwd)
    if process.get("rlimits"):
        set_rlimits(process["rlimits"])
    if process.get("apparmorProfile"):
        apply_apparmor_profile(process["apparmorProfile"])
    no_new_privileges = process.get("noNewPrivileges", False)
    if no_new_privileges:
        # No exec from here on can gain privileges: setuid bits and file capabilities are
        # ignored. It is inherited and cannot be undone (what `--security-opt no-new-privileges` sets).
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp_program and not no_new_privileges:
        # Without no_new_privs, loading a filter takes CAP_SYS_ADMIN: load it while we still
        # have it, as runc does. (The profile allows the calls that follow: capset, setuid...)
        seccomp.install(seccomp_program)
    capability_sets = process.get("capabilities")
    if capability_sets is not None:
        capabilities.drop_bounding(capability_sets)  # needs CAP_SETPCAP: before the rest goes
    user = process.get("user", {})
    # Supplementary groups first, then the gid, then the uid: once the uid is not 0 any more,
    # we may no longer change the other two.
    os.setgroups(user.get("additionalGids", []))
    os.setgid(user.get("gid", 0))
    os.setuid(user.get("uid", 0))
    if capability_sets is not None:
        capabilities.apply(capability_sets)  # after setuid, which would have cleared them
    if parent_death_signal:
        # If whoever started us dies (the supervisor, SIGKILLed), the kernel signals us: no
        # orphans. It is set after setuid because a change of credentials clears it.
        linux.prctl(linux.PR_SET_PDEATHSIG, parent_death_signal)
    # Looked up before the wait: a command that is not there is create's error, not start's, as
    # runc's (an engine learns it at once).
    environment = environment_of(process["env"])
    program = find_program(process["args"][0], environment)
    if wait_for_start:
        wait_for_start()
    if seccomp_program and no_new_privileges:
        seccomp.install(seccomp_program)  # as late as may be: the fewer calls it must allow
    if init:
        # The init never execs, so the trace's copy of the caller's stderr would stay open as
        # long as the container runs (a traced `run -d --init` would hold its caller's pipe).
        linux.disable_trace()
        run_init(process["args"], process["env"])
    exec_through_stub(program, process["args"], environment)


parent_death_signal = 0  # set by the runtime in the child: SIGKILL for the engine's containers
state_dir_fd = -1  # in create's child: the state dir, where exec.fifo waits (see lifecycle.py)


def close_fds_but(keep: set[int]) -> None:
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def set_rlimits(rlimits: list[dict]) -> None:
    """process.rlimits: [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}], setrlimit(2) each."""
    for limit in rlimits:
        kind = getattr(resource, limit["type"], None)
        if kind is None:
            raise StartError(EXIT_ENGINE, f"unknown rlimit type {limit['type']!r}")
        # The spec's "unlimited" is 2^64-1 (RLIM_INFINITY in C); Python spells it RLIM_INFINITY.
        soft, hard = (resource.RLIM_INFINITY if v >= 2**63 else v for v in (limit["soft"], limit["hard"]))
        resource.setrlimit(kind, (soft, hard))


# --8<-- [start:apparmor]
def apply_apparmor_profile(profile: str) -> None:
    """process.apparmorProfile: on a kernel with AppArmor, the profile the command runs under.

    AppArmor is a security module: a profile lists what a program may touch (dockerd loads its
    `docker-default`, which denies writes to /proc/sys, mounts...). We do not enforce a profile
    ourselves; we ask the kernel to put this one on us at our next exec, as runc does
    (aa_change_onexec). minidocker's engine sets none; dockerd does, where AppArmor is on."""
    for attr in ("/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"):  # new name, old name
        try:
            linux.write_file(attr, f"exec {profile}")
            return
        except FileNotFoundError:
            continue
        except OSError as e:
            raise StartError(EXIT_ENGINE, f"unable to apply apparmor profile: {e.strerror}") from None
    raise StartError(EXIT_ENGINE, "unable to apply apparmor profile: AppArmor is not enabled on this kernel")
# --8<-- [end:apparmor]


def open_console(console) -> tuple[int, int, int]:
    """A pty from the container's own /dev/ptmx: its name is /dev/pts/N *inside* the container.

    We keep the "slave" side as stdin, stdout and stderr, and pass the "master" side to the
    supervisor over the console socket (SCM_RIGHTS sends an open file, not a number).
    """
    import socket  # already loaded by whoever made `console` (a socket.socket): no file to read

    master, slave = os.openpty()  # opens /dev/ptmx, which is now the container's devpts
    socket.send_fds(console, [b"pty"], [master])
    os.close(master)
    console.close()
    return slave, slave, slave


def environment_of(env: list[str]) -> dict[str, str]:
    """process.env's ["KEY=value", ...] as a dict."""
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)


def find_program(name: str, environment: dict[str, str]) -> str:
    """The file that `name` runs, as execvp(3) finds it: `name` itself if it holds a "/", else
    the first executable file of that name in the *container's* PATH. Docker's errors: 127 if
    there is none, 126 if it is there but not executable."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(directory or ".", name)  # an empty entry is the current directory
                      for directory in environment.get("PATH", "/usr/bin:/bin").split(":")]
    for path in candidates:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and mode & 0o111:
            return path
        if "/" in name:
            raise StartError(EXIT_CANNOT_INVOKE, f'exec: "{name}": permission denied')
    where = "no such file or directory" if "/" in name else "executable file not found in $PATH"
    raise StartError(EXIT_NOT_FOUND, f'exec: "{name}": {where}')


def execute(args: list[str], env: list[str]) -> None:
    """Exec the command, with PATH searched in the *container's* environment."""
    environment = environment_of(env)
    exec_through_stub(find_program(args[0], environment), args, environment)


# --8<-- [start:execute]
def exec_through_stub(program: str, args: list[str], environment: dict[str, str]) -> None:
    """Exec `program` (found already) not directly, but through the sealed exec stub, which execs
    it for us (CVE-2019-5736: minidocker/exeseal.py)."""
    # The stub reports a failed exec on our error pipe, then closes it on a good one: it must
    # stay open across our exec into the stub.
    os.set_inheritable(error_pipe, True)
    linux.fexecve(exec_stub, ["minidocker-exec", str(error_pipe), program, *args], environment)
# --8<-- [end:execute]


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
    os.close(error_pipe)  # only the command's exec should close the parent's pipe
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, lambda signum, _frame: os.kill(child, signum))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    while True:
        pid, status = os.wait()  # any child: the command, or an orphan we inherited
        if pid == child:
            os._exit(exit_code(status))
    # --8<-- [end:ex-01-init]
