"""`docker exec`: a new process in a running container, in two steps as in the Engine API.

    exec_create(ref, body)   POST /containers/{id}/exec  {"Cmd", "Env", "User", "WorkingDir", "Tty", ...}
    exec_start(exec_id)      POST /exec/{id}/start       -> the process's exit code

An exec instance is a small record under $MINIDOCKER_ROOT/exec/, so that the two steps may come
from two requests. The process joins the container's namespaces and cgroup (runtime.exec_process,
runc's `exec`); unlike the container's own output, an exec's output is not logged.
"""

import os
import signal

from minidocker import runtime, store
from minidocker.container import config as checks, spec as specs, supervisor
from minidocker.container.lifecycle import find
from minidocker.errors import MinidockerError


def _check_can_exec(c) -> None:
    if not c.state["Running"]:
        raise MinidockerError(f"container {c.name} is not running", "start it first: minidocker start")
    if c.state.get("Paused"):  # its processes are frozen: a joining one would freeze too, forever
        raise MinidockerError(f"Container {c.id} is paused, unpause the container before exec",
                              f"minidocker unpause {c.name}")


def exec_create(ref: str, body: dict) -> dict:
    c = find(ref)
    _check_can_exec(c)
    if not body.get("Cmd"):
        raise MinidockerError("no command specified", "minidocker exec CONTAINER CMD...")
    if body.get("WorkingDir") and not body["WorkingDir"].startswith("/"):
        raise MinidockerError(f"the working directory '{body['WorkingDir']}' is invalid",
                              "it needs to be an absolute path")
    if body.get("User"):
        checks.parse_user(body["User"])
    exec_id = store.new_id()
    store.write_json(os.path.join(store.directory("exec"), f"{exec_id}.json"), {**body, "ContainerID": c.id})
    return {"Id": exec_id}


def _process(c, body: dict) -> dict:
    """The OCI process for an exec: the container's own, changed where the request says so."""
    base = c.spec["process"]
    if body.get("User"):
        uid, gid = checks.parse_user(body["User"])
        user = {"uid": uid, "gid": uid if gid is None else gid}
    else:
        user = base["user"]
    env = [item for item in body.get("Env") or [] if "=" in item]
    return {**base, "args": body["Cmd"], "terminal": bool(body.get("Tty")), "user": user,
            "cwd": body.get("WorkingDir") or base["cwd"], "env": specs.merge_env(base["env"], env)}


def exec_start(exec_id: str, attach: supervisor.Attach | None = None) -> int | None:
    """Run the exec instance. Detached (no `attach`): return once it runs. Attached: copy its
    output to `attach` and return its exit code."""
    path = os.path.join(store.directory("exec"), f"{exec_id}.json")
    try:
        body = store.read_json(path)
    except FileNotFoundError:
        raise MinidockerError(f"No such exec instance: {exec_id}", "create it first") from None
    os.unlink(path)  # an exec instance runs once
    c = find(body["ContainerID"])
    _check_can_exec(c)  # again: it may have stopped or been paused since exec_create
    process = _process(c, body)
    # Not logged: without -t the process writes straight to the client's stdout and stderr; with
    # nobody attached (exec -d), nowhere: Docker discards a detached exec's output.
    io = supervisor.Plumbing(process["terminal"], attach.stdin if attach else None, capture=False)
    if attach is None and not process["terminal"]:
        null = os.open(os.devnull, os.O_WRONLY)  # io.started() closes our copy
        io.stdio = (io.stdio[0], null, null)
    pid = io.started(runtime.exec_process(c.id, process, stdio=io.stdio, console=io.console))
    if attach is None:
        return None
    for sig in supervisor.PROXIED_SIGNALS:
        signal.signal(sig, lambda signum, _frame: supervisor.signal_quietly(pid, signum))
    if io.streams:
        supervisor.copy_output(io.streams, None, attach, io.stdin_to_pty)
    _, status = os.waitpid(pid, 0)
    return runtime.exit_code(status)
