"""Starting a container's first process (`spawn`) and a further one inside it (`join`, for exec).

See minidocker/runtime/__init__.py for the order of the steps.
"""

import fcntl
import json
import os
import socket
import struct

from minidocker import linux
from minidocker.errors import EXIT_CANNOT_INVOKE, EXIT_ENGINE, EXIT_NOT_FOUND, MinidockerError
from minidocker.runtime import process as proc
from minidocker.runtime.rootfs import setup_rootfs


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
    read_end, write_end = os.pipe2(os.O_CLOEXEC)  # closed by the kernel on a successful exec
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        proc.error_pipe = write_end  # the child's end, for _report() and for run_init() to close
        code, message = EXIT_ENGINE, "the container process ended before exec"
        try:
            child()
        except proc.StartError as e:
            code, message = e.code, str(e)
        except BaseException as e:  # noqa: BLE001 - whatever it is, the parent must hear of it
            message = f"{type(e).__name__}: {e}"
        _report(code, message)
        os._exit(code)  # never return into the parent's code in the child
    os.close(write_end)
    return pid, read_end


def _report(code: int, message: str) -> None:
    try:
        os.write(proc.error_pipe, json.dumps({"code": code, "message": message}).encode())
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
    proc.start_process(spec["process"], stdio, console, init=spec.get("minidocker", {}).get("init", False))


def _loopback_up() -> None:
    """A new network namespace has only `lo`, and it is down. ifconfig's ioctl brings it up."""
    SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))


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
        proc.start_process(process, stdio, console, init=False)

    pid, errors = _fork_with_error_pipe(enter)
    linux.setns(own_pid_ns, linux.CLONE_NEWPID)
    # --8<-- [end:ex-01-exec-setns]
    for fd in (*ns_files.values(), own_pid_ns):
        os.close(fd)
    return _wait_for_exec(pid, errors)
