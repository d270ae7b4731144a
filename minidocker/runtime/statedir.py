"""The state dir: what the runtime remembers of a container between two of its commands.

runc keeps no daemon: each command (`create`, `start`, `state`, `kill`, `delete`) is a process of
its own, which finds the container again in `<root>/<id>/` (runc: /run/runc/<id>/):
- state.json: the bundle, the pid *and its start time* (a pid alone can be reused by another
  process once ours is gone), when it was created, its cgroupsPath;
- exec.fifo: while it exists the container is "created": its process is made and waits to exec.

The status is never stored: it is read from the world each time (is the process there, is the
fifo there), so it cannot go stale when the container's process exits without telling us.

This module needs nothing but os and json, on purpose: containerd's shim starts a runtime process
for every `start`, `state`, `kill` and `delete`, and what those import is most of what they cost.
See docs/01-isolation.md#the-runtime.
"""

import json
import os

from minidocker.errors import MinidockerError

OCI_VERSION = "1.0.2"
FIFO = "exec.fifo"


def default_root() -> str:
    return os.environ.get("MINIDOCKER_RUNTIME_ROOT", "/run/minidocker/runtime")


def container_dir(container_id: str, root: str | None) -> str:
    # runc's rule for ids; it also keeps "..", "/" and the empty name out of the path.
    if not container_id or container_id.strip(".") == "" or not all(
            c.isalnum() or c in "_+-." for c in container_id):
        raise MinidockerError(f"invalid container id {container_id!r}", "use letters, digits, _ + - .")
    return os.path.join(root or default_root(), container_id)


def load(container_id: str, root) -> dict:
    """state.json, or {"creating": True} while create() has not written it yet."""
    state_dir = container_dir(container_id, root)
    try:
        with open(os.path.join(state_dir, "state.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        if os.path.isdir(state_dir):
            return {"id": container_id, "creating": True}  # create() has not finished yet
        raise MinidockerError(f"container {container_id} does not exist", "") from None


def status(saved: dict, state_dir: str) -> str:
    """creating, created, running or stopped: the OCI statuses, from what is there now."""
    if saved.get("creating"):
        return "creating"
    if not alive(saved):
        return "stopped"  # gone, a zombie, or the pid now belongs to another process
    return "created" if os.path.exists(os.path.join(state_dir, FIFO)) else "running"


def remove(state_dir: str) -> None:
    """rm -r of a dir that holds only files we wrote (state.json, exec.fifo, a temp file a crash
    left): no shutil, whose import costs more than the start-up budget can spare."""
    try:
        for name in os.listdir(state_dir):
            os.unlink(os.path.join(state_dir, name))
        os.rmdir(state_dir)
    except FileNotFoundError:
        pass  # removed already


# ---------------------------------------------------------------------------------------------
# Which process: a pid and its start time


def proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name: [state, ppid, ..., starttime (index 19)]."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return text[text.rindex(")") + 2:].split()  # the name, in (), may itself hold spaces


def process_start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot, or None once it has died (gone, or a
    zombie whose exit status waits to be collected). A pid alone can be reused after its process
    dies; pid + start time names one process."""
    fields = proc_stat(pid) if pid else []
    return int(fields[19]) if fields and fields[0] not in ("Z", "X") else None


def alive(saved: dict) -> bool:
    start = process_start_time(saved.get("pid", 0))
    return start is not None and start == saved.get("pidStart")
