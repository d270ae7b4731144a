"""`docker exec`: a new process in a running container, in two steps as in the Engine API.

    exec_create(ref, body)   POST /containers/{id}/exec  {"Cmd", "Env", "User", "WorkingDir", "Tty", ...}
    exec_start(exec_id)      POST /exec/{id}/start       -> the process's exit code

An exec instance is a small record under $MINIDOCKER_ROOT/exec/, so that the two steps may come
from two requests. The process joins the container's namespaces and cgroup (runtime.exec_process,
runc's `exec`); unlike the container's own output, an exec's output is not logged.
"""

import json
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
    if attach is None:
        _start_detached(c.id, process)
        return None
    # Not logged: without -t the process writes straight to the client's stdout and stderr.
    io = supervisor.Plumbing(process["terminal"], attach.stdin, capture=False)
    pid = io.started(runtime.exec_process(c.id, process, stdio=io.stdio, console=io.console))
    for sig in supervisor.PROXIED_SIGNALS:
        signal.signal(sig, lambda signum, _frame: supervisor.signal_quietly(pid, signum))
    if io.streams:
        supervisor.copy_output(io.streams, None, attach, io.stdin_to_pty)
    _, status = os.waitpid(pid, 0)
    return runtime.exit_code(status)


def _start_detached(container_id: str, process: dict) -> None:
    """`exec -d`: the process must outlive whoever asked (the CLI exits at once; in the daemon
    the request's thread ends, and a parent-death signal fires when the *thread* that forked is
    gone). So it gets a small supervisor of its own, as the shim is for Docker's execs: forked
    twice, so that no one has a child to reap, in a session of its own, its parent until it ends.
    Its output goes nowhere: Docker discards a detached exec's output."""
    ready_read, ready_write = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)  # the middle process: its child is now an orphan, init reaps it
            os.close(ready_read)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            supervisor.close_fds_but({ready_write})
            io = supervisor.Plumbing(process["terminal"], None, capture=False)
            pid = io.started(runtime.exec_process(container_id, process, stdio=io.stdio, console=io.console))
            os.close(ready_write)  # EOF: it runs
            if io.streams:  # a pty nobody reads: drain it, or the process blocks once it is full
                supervisor.copy_output(io.streams, None, None, False)
            os.waitpid(pid, 0)
        except MinidockerError as e:
            os.write(ready_write, json.dumps({"code": e.exit_code, "message": e.what, "hint": e.hint}).encode())
        except BaseException as e:  # noqa: BLE001 - whatever it is, the caller must hear of it
            os.write(ready_write, json.dumps({"code": 125, "message": f"exec: {e}", "hint": ""}).encode())
        finally:
            os._exit(0)
    os.close(ready_write)
    os.waitpid(middle, 0)  # gone at once (never os.wait(): in the daemon, other children are not ours)
    with os.fdopen(ready_read, "rb") as ready:
        message = ready.read()
    if message:
        error = json.loads(message)
        raise MinidockerError(error["message"], error["hint"], exit_code=error["code"])
