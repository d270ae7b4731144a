"""Making the processes: the container's first one (`create`'s fork) and a further one (`exec`).

See minidocker/runtime/__init__.py for the order of the steps, lifecycle.py for who calls these.
"""

import functools
import json
import os
import signal

from minidocker import linux
from minidocker.errors import EXIT_CANNOT_INVOKE, EXIT_ENGINE, EXIT_NOT_FOUND, MinidockerError
from minidocker.runtime import process as proc
from minidocker.runtime.rootfs import mount_namespace, setup_rootfs

READY = b"ready"  # create's child says it on the error pipe once only the exec is left
HOOKS = b"hooks"  # ...and this before pivot_root, when the spec has hooks for create to run then


def namespaces_of(spec: dict) -> dict[str, str | None]:
    """linux.namespaces as {type: path or None}: a path means "join that one", None "make one"."""
    return {ns["type"]: ns.get("path") or None for ns in spec.get("linux", {}).get("namespaces", ())}


def fork_container(spec: dict, bundle: str, stdio, cgroup, console, wait_for_start,
                   state_dir_fd: int = -1, parent_death_signal: int = 0, hooks_pipe=None) -> tuple[int, int]:
    """Fork the container's first process; return (pid, the read end of its error pipe).
    `hooks_pipe`: (read end, write end) of a pipe on which the child, paused before pivot_root
    (it said HOOKS), waits for the runtime's go once the hooks have run."""
    namespaces = namespaces_of(spec)
    proc.load_locks(spec.get("linux", {}).get("seccomp"))

    def child():
        proc.state_dir_fd, proc.parent_death_signal = state_dir_fd, parent_death_signal
        if in_user_namespace:
            userns.become_root()
        pause = None
        if hooks_pipe:
            os.close(hooks_pipe[1])  # the runtime's end: if the runtime dies, our read sees EOF
            pause = functools.partial(_pause_for_hooks, hooks_pipe[0])
        _become_container(spec, bundle, stdio, cgroup, console, wait_for_start, pause)

    in_user_namespace = "user" in namespaces and not namespaces["user"]
    if in_user_namespace:
        # Chapter 08: a user namespace of its own. Made first, by a first stage that then forks
        # the child on our behalf; the child finishes the rest (runtime/userns.py).
        from minidocker.runtime import userns

        fork = functools.partial(userns.fork_in_user_namespace, spec, bundle, cgroup)
        spec, cgroup = userns.second_stage(spec, cgroup)
        return fork_with_error_pipe(child, fork)

    # --8<-- [start:ex-01-pid-namespace]
    # unshare(CLONE_NEWPID) (or setns() into the spec's PID namespace, given by its path), fork
    # the child (it is PID 1 there, when the namespace is new), then setns() back to our own.
    #
    # The setns() back makes our later children ordinary processes again.
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    if namespaces.get("pid"):
        enter(namespaces["pid"], linux.CLONE_NEWPID)
    elif "pid" in namespaces:
        linux.unshare(linux.CLONE_NEWPID)  # does not move us: only where our next child is born
    pid, errors = fork_with_error_pipe(child)
    if "pid" in namespaces:
        linux.setns(own_pid_ns, linux.CLONE_NEWPID)
    # --8<-- [end:ex-01-pid-namespace]
    os.close(own_pid_ns)
    return pid, errors


def enter(path: str, nstype: int) -> None:
    """setns() into the namespace that a file names: /proc/PID/ns/net, /run/netns/NAME (a bind
    mount of such a file, as `ip netns add` makes)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, nstype)
    finally:
        os.close(fd)


def fork_with_error_pipe(child, fork=os.fork) -> tuple[int, int]:
    """Fork; the child runs `child()`, which must exec or raise. Returns (pid, error pipe).
    `fork`: os.fork, or another function that returns 0 in the child and its pid in the parent."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)  # closed by the kernel on a successful exec
    try:
        pid = fork()
    except BaseException:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:
        os.close(read_end)
        # --8<-- [start:non-dumpable]
        # Until its exec this process is the runtime, soon in the container's PID namespace where
        # root may look at it: non-dumpable, its /proc/PID/{mem,fd,environ} and ptrace(2) need
        # CAP_SYS_PTRACE, which a container lacks. The exec makes the command dumpable again (as
        # runc's init; its binary is sealed besides: minidocker/exeseal.py).
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        # --8<-- [end:non-dumpable]
        proc.error_pipe = write_end  # the child's end, for report() and for run_init() to close
        code, message = EXIT_ENGINE, "the container process ended before exec"
        try:
            child()
        except proc.StartError as e:
            code, message = e.code, str(e)
        except BaseException as e:  # noqa: BLE001 - whatever it is, the parent must hear of it
            message = f"{type(e).__name__}: {e}"
        report(code, message)
        os._exit(code)  # never return into the parent's code in the child
    os.close(write_end)
    return pid, read_end


def report(code: int, message: str) -> None:
    try:
        os.write(proc.error_pipe, json.dumps({"code": code, "message": message}).encode())
    except OSError:
        pass


def read_report(errors: int, on_hooks=None) -> bytes:
    """Read what create's child says, to EOF: READY, or its error. If it pauses for the hooks
    (HOOKS, before pivot_root), `on_hooks()` runs them and lets it go on."""
    first = os.read(errors, 65536)
    if first == HOOKS and on_hooks:
        try:
            on_hooks()
        except BaseException:
            os.close(errors)
            raise
        first = b""
    with open(errors, "rb") as pipe:  # the file owns the fd now, and closes it
        return first + pipe.read()  # to EOF: the child's exec (or exit) closes its end


# --8<-- [start:pause-for-hooks]
def _pause_for_hooks(resume: int) -> None:
    """In the child, its mounts made and its root not yet pivoted: let the runtime run prestart,
    createRuntime and createContainer now, as runc's init does (a createContainer hook then still
    sees the host's files, and may mount into the rootfs), and wait for its go."""
    os.write(proc.error_pipe, HOOKS)
    if os.read(resume, 2) != b"go":
        os._exit(EXIT_ENGINE)  # a hook failed (or the runtime died): the runtime undoes the rest
    os.close(resume)
# --8<-- [end:pause-for-hooks]


def raise_reported(data: bytes) -> None:
    """Raise the child's error as Docker reports it: its message and exit code (125, 126, 127)."""
    try:
        error = json.loads(data)
    except ValueError:
        error = {"code": EXIT_ENGINE, "message": "the container process ended before exec"}
    hint = {EXIT_NOT_FOUND: "check the command's name and the container's PATH",
            EXIT_CANNOT_INVOKE: "check that the file is an executable the container can run"}
    raise MinidockerError(error["message"], hint.get(error["code"], ""), exit_code=error["code"])


def wait_for_exec(pid: int, errors: int) -> int:
    """Read the error pipe to EOF: nothing means the command is running; else raise its error."""
    with open(errors, "rb") as pipe:
        data = pipe.read()
    if not data:
        return pid
    os.waitpid(pid, 0)  # the child exits right after reporting; reap it
    raise_reported(data)


def _become_container(spec: dict, bundle: str, stdio, cgroup, console, wait_for_start, pause=None) -> None:
    """In the child, now PID 1 of its PID namespace: isolate, build the root, wait, exec.
    `pause()`: wait for the create-time hooks, just before pivot_root."""
    linux.set_role("container")
    namespaces = namespaces_of(spec)
    runtime_mount_ns = mount_namespace()  # where we came from: setup_rootfs must not touch it
    # --8<-- [start:ex-01-namespaces]
    # Join the cgroup; then, for every namespace but "pid" (we are in it already): setns() into
    # the one its path names, or unshare() a new one. Then set the hostname.
    #
    # Joining the cgroup first makes the new cgroup namespace's "/" our own cgroup.
    if cgroup is not None:
        cgroup.add(0)
    for name, path in namespaces.items():
        if path and name != "pid":
            enter(path, linux.NAMESPACES[name][0])
    linux.unshare(linux.namespace_flags(n for n, path in namespaces.items() if not path and n != "pid"))
    if "uts" in namespaces and spec.get("hostname"):
        linux.sethostname(spec["hostname"])
    # --8<-- [end:ex-01-namespaces]
    if "network" in namespaces and not namespaces["network"]:
        linux.interface_up("lo")  # a new network namespace has only `lo`, and it is down
    if "mount" in namespaces and not namespaces["mount"]:
        setup_rootfs(spec, bundle, runtime_mount_ns, cgroup, before_pivot=pause)
    elif pause:
        pause()  # no root of our own to build: the hooks run now
    proc.start_process(spec["process"], stdio, console, init=spec.get("minidocker", {}).get("init", False),
                       wait_for_start=wait_for_start)


# ---------------------------------------------------------------------------------------------
# exec: a new process inside a running container


def join(container_pid: int, process: dict, stdio=(0, 1, 2), cgroup=None, console=None,
         parent_death_signal: int = signal.SIGKILL, seccomp_filter=None) -> int:
    """Start `process` inside the namespaces and cgroup of `container_pid`; return its pid.
    `seccomp_filter`: the container's linux.seccomp, which binds an exec'd process as well."""
    user_ns = user_namespace_of(container_pid)
    proc.load_locks(seccomp_filter)
    # --8<-- [start:ex-01-exec-setns]
    # Open /proc/PID/ns/*, setns() into the PID namespace, fork, and setns() the child into the rest.
    #
    # The mount namespace goes last: after it, every path is the container's.
    ns_files = {name: os.open(f"/proc/{container_pid}/ns/{proc}", os.O_RDONLY | os.O_CLOEXEC)
                for name, (_, proc) in linux.NAMESPACES.items() if name not in ("user",)}
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    linux.setns(ns_files["pid"], linux.CLONE_NEWPID)

    def enter_all():
        linux.set_role("exec")
        proc.parent_death_signal = parent_death_signal
        if cgroup is not None:
            cgroup.add(0)
        for name in ("cgroup", "ipc", "uts", "network", "mount"):
            linux.setns(ns_files[name], linux.NAMESPACES[name][0])
        if user_ns is not None:  # chapter 08: the container's root is not the host's
            linux.setns(user_ns, linux.CLONE_NEWUSER)
        proc.start_process(process, stdio, console, init=False)

    pid, errors = fork_with_error_pipe(enter_all)
    linux.setns(own_pid_ns, linux.CLONE_NEWPID)
    # --8<-- [end:ex-01-exec-setns]
    for fd in (*ns_files.values(), own_pid_ns, *([user_ns] if user_ns is not None else [])):
        os.close(fd)
    return wait_for_exec(pid, errors)


def user_namespace_of(pid: int) -> int | None:
    """An fd of `pid`'s user namespace, if it is not ours (None: the container has none of its own).

    An exec'd process joins it last, after the mount namespace: setns() into the others needs the
    host root's powers over them (the network namespace is the host's), and joining the user
    namespace gives those up."""
    theirs, ours = os.stat(f"/proc/{pid}/ns/user"), os.stat("/proc/self/ns/user")
    if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        return None
    return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
