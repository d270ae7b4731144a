"""OCI hooks: programs the runtime runs at fixed points of a container's life (config.json `hooks`).

An engine uses them to do its part at the right moment without being the runtime. dockerd up to
27 sets up a container's network this way: a `prestart` hook (`dockerd libnetwork-setkey ...`)
reads the state on its stdin, takes the pid, and moves a veth into /proc/PID/ns/net, after the
namespace exists and before the container's command runs. nvidia's container toolkit mounts the
GPU's devices from a createContainer hook.

Each hook is {"path", "args", "env", "timeout"}: path is exec'd with args as its argv (args[0]
is the program's name, not necessarily path), env as its whole environment, and the container's
state as JSON on stdin: {"ociVersion", "id", "status", "pid", "bundle", "annotations"}.

When each runs, and where (the runtime spec's runtime.md, lifecycle; config.md, POSIX hooks):

| hook            | when                                       | namespaces        | if it fails     |
|-----------------|--------------------------------------------|-------------------|-----------------|
| prestart        | create, the mounts made, before pivot_root | the runtime's     | create fails    |
|                 | (old name of createRuntime, kept: dockerd) |                   |                 |
| createRuntime   | create, after prestart                     | the runtime's     | create fails    |
| createContainer | create, after createRuntime                | the container's   | create fails    |
| startContainer  | start, before the command is exec'd        | the container's   | start fails     |
| poststart       | start, once the command runs               | the runtime's     | a warning       |
| poststop        | delete, after the container is gone        | the runtime's     | a warning       |

The three of create run while the container's process waits just before its pivot_root
(runtime/spawn.py pauses it there, as runc's init does): its namespaces and mounts are made, and
the host's files are still in sight from its mount namespace, so a createContainer hook can
still mount into the rootfs by its host path (nvidia's does). createContainer's path is found in
the runtime's filesystem, as the spec says: we open it before we enter the container's mount
namespace, then exec the open file. See docs/09-runtime.md#oci-hooks.
"""

import json
import os
import signal
import sys
import time

from minidocker.errors import MinidockerError
from minidocker.runtime.statedir import OCI_VERSION

# The namespaces a createContainer/startContainer hook joins, mount last: once in the container's
# mount namespace, no path of the host's is in sight any more.
JOINED = ("pid", "cgroup", "ipc", "uts", "network", "mount")


def hook_state(container_id: str, status: str, pid: int, bundle: str, annotations: dict | None) -> dict:
    """The state a hook reads on stdin (the runtime spec's state, in its field names)."""
    state = {"ociVersion": OCI_VERSION, "id": container_id, "status": status, "pid": pid, "bundle": bundle}
    if annotations:
        state["annotations"] = annotations
    return state


# --8<-- [start:run-hooks]
def run_hooks(hooks: dict | None, phase: str, state: dict, *, in_container: bool = False) -> None:
    """Run hooks[phase], in order; the first that fails (non-zero, killed, or timed out) raises.
    in_container: run them in the namespaces of the container's process (state["pid"])."""
    for number, hook in enumerate((hooks or {}).get(phase) or []):
        try:
            run_hook(hook, state, in_container=in_container, resolve_in_container=phase == "startContainer")
        except MinidockerError as e:
            raise MinidockerError(f"error running {phase} hook #{number}: {e.what}", e.hint) from None
# --8<-- [end:run-hooks]


def warn_hooks(hooks: dict | None, phase: str, state: dict) -> None:
    """poststart and poststop: a failure is only a warning, and the other hooks still run."""
    for number, hook in enumerate((hooks or {}).get(phase) or []):
        try:
            run_hook(hook, state)
        except MinidockerError as e:
            print(f"minidocker: warning: {phase} hook #{number}: {e.what}", file=sys.stderr)


def run_hook(hook: dict, state: dict, *, in_container: bool = False, resolve_in_container: bool = False) -> None:
    """Fork, give the child the state on stdin, exec the hook; wait for it (at most its timeout)."""
    # --8<-- [start:ex-09-run-hook]
    # Run one hook: its args as argv, its env as the whole environment, the state as JSON on its
    # stdin (then closed); wait for it and raise MinidockerError if it failed or timed out.
    args = hook.get("args") or [hook["path"]]
    env = dict(item.split("=", 1) for item in hook.get("env") or [] if "=" in item)
    # The path is found in the runtime's filesystem, unless the spec says the container's.
    program = hook["path"] if resolve_in_container else _open_program(hook["path"])
    stdin_r, stdin_w = os.pipe()
    output_r, output_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(stdin_w)  # or the hook would never read the end of its stdin
        _exec_hook(program, args, env, stdin_r, output_w, state["pid"] if in_container else 0)
    os.close(stdin_r)
    os.close(output_w)
    if not isinstance(program, str):
        os.close(program)
    os.write(stdin_w, json.dumps(state).encode())  # small: a pipe holds 64 KiB
    os.close(stdin_w)
    status = _wait(pid, hook.get("timeout"))
    if status is None:
        os.close(output_r)  # not read: a child the hook left behind may hold it open for long
        raise MinidockerError(f"{hook['path']} did not finish within {hook['timeout']}s", "it was killed")
    with open(output_r, "rb") as pipe:  # the file owns the fd now, and closes it
        output = pipe.read().decode(errors="replace").strip()  # to EOF
    if status != 0:
        raise MinidockerError(f"{hook['path']} exited with {_describe(status)}" + (f": {output}" if output else ""))
    # --8<-- [end:ex-09-run-hook]


def _open_program(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise MinidockerError(f"{path}: {e.strerror}", "a hook's path is a program on the host") from None


def _exec_hook(program, args, env, stdin_fd, output_fd, container_pid) -> None:
    """In the forked child: never returns."""
    try:
        os.dup2(stdin_fd, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        if container_pid:
            _enter(container_pid)
            # setns() into a PID namespace moves only the children we make after it: fork once
            # more, so that the hook is in there (its /proc/self resolves in the container's /proc).
            if child := os.fork():
                _, status = os.waitpid(child, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        if isinstance(program, int):
            # A script's interpreter opens /proc/self/fd/N to read it: N must survive the exec.
            os.set_inheritable(program, True)
        os.execve(program, args, env)  # an int is an open file: fexecve(2)
    except BaseException as e:  # noqa: BLE001 - report it on the output the parent reads
        os.write(2, f"cannot run the hook: {e}".encode())
    os._exit(127)


def _enter(pid: int) -> None:
    # minidocker.linux (ctypes) here, in the hook's child, not at the top: `start` and `delete`, one
    # process each under containerd's shim, import this module and seldom have such a hook.
    from minidocker import linux

    files = {name: os.open(f"/proc/{pid}/ns/{linux.NAMESPACES[name][1]}", os.O_RDONLY) for name in JOINED}
    for name in JOINED:
        linux.setns(files[name], linux.NAMESPACES[name][0])


def _wait(pid: int, timeout) -> int | None:
    """The exit status, or None after killing it at its timeout (seconds)."""
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG if deadline else 0)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.01)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"code {os.WEXITSTATUS(status)}"


# ---------------------------------------------------------------------------------------------
# The lifecycle's calls: create, start, delete (lifecycle.py) each call one of these


def at_create(spec: dict) -> bool:
    """Has the spec hooks for create to run (so that its process must pause for them)?"""
    return any((spec.get("hooks") or {}).get(phase) for phase in ("prestart", "createRuntime", "createContainer"))


def created(spec: dict, container_id: str, pid: int, bundle: str) -> None:
    """create: the process has made its mounts and waits before pivot_root. Raises if a hook
    fails (create undoes the container)."""
    state = hook_state(container_id, "creating", pid, bundle, spec.get("annotations"))
    run_hooks(spec["hooks"], "prestart", state)
    run_hooks(spec["hooks"], "createRuntime", state)
    run_hooks(spec["hooks"], "createContainer", state, in_container=True)


def starting(saved: dict) -> None:
    """start, before the command's exec. A failure stops the container, as the spec asks."""
    if not (saved.get("hooks") or {}).get("startContainer"):
        return
    try:
        run_hooks(saved["hooks"], "startContainer", _state(saved, "created"), in_container=True)
    except MinidockerError:
        os.kill(saved["pid"], signal.SIGKILL)
        raise


def started(saved: dict) -> None:
    warn_hooks(saved.get("hooks"), "poststart", _state(saved, "running"))


def stopped(saved: dict) -> None:
    warn_hooks(saved.get("hooks"), "poststop", {**_state(saved, "stopped"), "pid": 0})


def _state(saved: dict, status: str) -> dict:
    return hook_state(saved["id"], status, saved.get("pid", 0), saved.get("bundle", ""), saved.get("annotations"))
