"""runc's commands as functions: create, start, run, state, kill, delete, exec, stats, list.

The state of a container lives in `<root>/<id>/`: state.json and exec.fifo (statedir.py).

Only create and exec make a process, and only they need the code that does it (spawn.py and,
through it, process.py, rootfs.py, mounts.py, linux/): they import it when they are called.
Under containerd each of these commands is a process of its own, and `start`, `state`, `kill` and
`delete` must not pay at every call for imports that only `create` uses.
See minidocker/runtime/__init__.py for the story, docs/01-isolation.md#the-runtime for the page.
"""

import json
import os
import select
import signal as signals

from minidocker import store
from minidocker.errors import MinidockerError
from minidocker.runtime import hooks, resources
from minidocker.runtime.statedir import (FIFO, OCI_VERSION, alive, container_dir, default_root, load, proc_stat,
                                         process_start_time, remove, status)

__all__ = ["OCI_VERSION", "create", "default_root", "delete", "exec_process", "kill", "list_containers",
           "process_start_time", "run", "start", "state", "stats"]


# ---------------------------------------------------------------------------------------------
# create and start: runc's two halves of a container's birth


def create(container_id: str, bundle: str, *, stdio=(0, 1, 2), console=None, root=None, pid_file=None,
           parent_death_signal: int = 0) -> int:
    """Make the container, up to the exec: namespaces, cgroup and limits, rootfs and mounts.

    Returns the host pid of its process, which now waits for start(). On any error, nothing is
    left behind (process, cgroup, state dir) and MinidockerError (125) is raised.
    `parent_death_signal`: a signal for the container when its parent dies (the engine's
    supervisor asks for SIGKILL); 0, as runc, lets it outlive whoever created it.
    """
    from minidocker.runtime import spawn  # here, not at the top: see this module's docstring

    state_dir = container_dir(container_id, root)
    bundle = os.path.abspath(bundle)
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise MinidockerError(f"cannot read {bundle}/config.json: {e}", "is this an OCI bundle?") from None
    os.makedirs(os.path.dirname(state_dir), mode=0o700, exist_ok=True)
    try:
        os.mkdir(state_dir, 0o711)  # x for all: the container's user must reach the fifo
    except FileExistsError:
        raise MinidockerError(f"container with id {container_id} exists", "delete it first") from None
    pid, cgroup, state_fd = 0, None, -1
    try:
        # The fifo is the rendezvous: the process opens it for writing, which blocks until
        # start() opens it for reading. 0622: writable by the container's user, whoever it is.
        os.mkfifo(os.path.join(state_dir, FIFO), 0o622)
        os.chmod(os.path.join(state_dir, FIFO), 0o622)  # mkfifo's mode went through our umask
        cgroups_path = resources.cgroup_path(container_id, spec.get("linux", {}).get("cgroupsPath"))
        cgroup = resources.cgroup_for(container_id, cgroups_path)
        cgroup.create()
        resources.apply(cgroup, spec.get("linux", {}).get("resources") or {})
        # The child keeps the state dir open (O_PATH: only a handle, to open the fifo *in* it):
        # after pivot_root the path would be out of its sight.
        state_fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        # prestart, createRuntime and createContainer run while the process waits before its
        # pivot_root, as runc's do: it pauses there for them on this pipe (runtime/hooks.py).
        hooks_pipe = os.pipe2(os.O_CLOEXEC) if hooks.at_create(spec) else None
        try:
            pid, errors = spawn.fork_container(spec, bundle, stdio, cgroup, console, _wait_for_start,
                                               state_fd, parent_death_signal, hooks_pipe)

            def run_hooks():
                hooks.created(spec, container_id, pid, bundle)
                os.write(hooks_pipe[1], b"go")

            said = spawn.read_report(errors, on_hooks=run_hooks)
        finally:
            for fd in hooks_pipe or ():
                os.close(fd)
        if said != spawn.READY:
            os.waitpid(pid, 0)  # it exits right after reporting; reap it
            pid = 0
            spawn.raise_reported(said)
        store.write_json(os.path.join(state_dir, "state.json"), {
            "id": container_id, "pid": pid, "pidStart": process_start_time(pid), "bundle": bundle,
            "rootfs": os.path.join(bundle, spec.get("root", {}).get("path", "")),
            "created": store.now(), "cgroupsPath": cgroups_path, "annotations": spec.get("annotations") or {},
            # Kept for exec: a process that joins the container is bound by the same filter.
            "seccomp": spec.get("linux", {}).get("seccomp"),
            "hooks": spec.get("hooks")})  # for start's and delete's hooks
        if pid_file:
            store.write_text(pid_file, str(pid))  # runc's --pid-file: the pid alone, no newline
    except BaseException as e:
        _undo(pid, cgroup, state_dir)
        if isinstance(e, MinidockerError):  # 125, or the command's own 126/127 (looked up at create)
            raise MinidockerError(e.what, e.hint, exit_code=e.exit_code if e.exit_code in (126, 127) else 125) from None
        if isinstance(e, OSError):
            raise MinidockerError(f"cannot create container {container_id}: {e}") from None
        raise
    finally:
        if state_fd != -1:
            os.close(state_fd)
    return pid


def _wait_for_start() -> None:
    """In the container's process, the last step before exec: tell create we are made, then
    block on the fifo until start() opens it. From then on, an exec error goes to start()
    through the fifo (close-on-exec: a successful exec closes it, and start reads EOF)."""
    from minidocker.runtime import process as proc, spawn  # loaded already: create() imported them

    os.write(proc.error_pipe, spawn.READY)
    os.close(proc.error_pipe)
    fifo = os.open(FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=proc.state_dir_fd)  # blocks here
    os.close(proc.state_dir_fd)
    proc.error_pipe, proc.state_dir_fd = fifo, -1


def _undo(pid: int, cgroup, state_dir: str) -> None:
    """Take back a half-made container: its process, its cgroup, its state dir."""
    if pid:
        try:
            os.kill(pid, signals.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    if cgroup is not None and cgroup.exists():
        cgroup.kill()
        cgroup.remove()
    remove(state_dir)


def start(container_id: str, *, root=None) -> None:
    """Let a created container exec its command; return once it has (or raise 126/127)."""
    state_dir = container_dir(container_id, root)
    saved = load(container_id, root)
    now = status(saved, state_dir)
    if now != "created":
        raise MinidockerError(f"cannot start a container that is {now}", "create a new one")
    fifo_path = os.path.join(state_dir, FIFO)
    hooks.starting(saved)  # startContainer, in the container, before its command
    # O_NONBLOCK: the open returns at once (a blocking one would wait for a writer forever if
    # the process had died), and it wakes the process, whose open for writing now succeeds.
    fifo = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        # Readable once the process has opened its end and then either written an error or
        # closed it by exec. (Linux reports no EOF on a fifo that never had a writer.)
        while not select.select([fifo], [], [], 0.1)[0]:
            if not alive(saved):
                raise MinidockerError("the container's process died before it could start", "")
        os.set_blocking(fifo, True)
        with open(fifo, "rb") as f:  # the file owns the fd now, and closes it
            fifo = -1
            said = f.read()  # to EOF: nothing when the exec worked
    finally:
        if fifo != -1:
            os.close(fifo)
        os.unlink(fifo_path)  # no fifo: "running" from now on, for state()
    if said:
        from minidocker.runtime import spawn  # only on this error path: its words and exit code

        spawn.raise_reported(said)
    hooks.started(saved)  # poststart


def run(container_id: str, bundle: str, *, stdio=(0, 1, 2), console=None, root=None, pid_file=None,
        parent_death_signal: int = 0) -> int:
    """create + start in this process, which stays the parent of the container's process (so it
    can os.waitpid() it). If the command cannot start, the container is deleted and the error,
    126 or 127, raised."""
    pid = create(container_id, bundle, stdio=stdio, console=console, root=root, pid_file=pid_file,
                 parent_death_signal=parent_death_signal)
    try:
        start(container_id, root=root)
    except BaseException:
        delete(container_id, force=True, root=root)
        raise
    return pid


# ---------------------------------------------------------------------------------------------
# state, kill, delete


def state(container_id: str, *, root=None) -> dict:
    """The OCI state: ociVersion, id, status (creating, created, running, stopped), pid, bundle."""
    saved = load(container_id, root)
    now = status(saved, container_dir(container_id, root))
    result = {"ociVersion": OCI_VERSION, "id": container_id, "status": now,
              "pid": saved.get("pid", 0) if now != "stopped" else 0,
              "bundle": saved.get("bundle", ""), "rootfs": saved.get("rootfs", ""),
              "created": saved.get("created", ""), "owner": ""}
    if saved.get("annotations"):
        result["annotations"] = saved["annotations"]
    return result


def kill(container_id: str, signal: int, *, all=False, root=None) -> None:
    """Send `signal` to the container's process, or with all=True to every process in its cgroup."""
    saved = load(container_id, root)
    if status(saved, container_dir(container_id, root)) == "stopped" and not all:
        raise MinidockerError(f"container {container_id} is not running", "")
    pids = resources.cgroup_for(container_id, saved.get("cgroupsPath")).procs() if all else [saved["pid"]]
    for pid in pids:
        try:
            os.kill(pid, signal)
        except ProcessLookupError:
            pass  # it ended meanwhile


def delete(container_id: str, *, force=False, root=None, cgroups_path=None) -> None:
    """Remove a container: refuse a running one unless `force` (then kill everything in its
    cgroup); remove its cgroup and its state dir.

    For the engine's crash recovery the state dir may be gone already: the cgroup is then found
    from `cgroups_path` (or the default for the id) and removed all the same. When the caller is
    the process's parent, delete reaps it too: nothing is left, not even a zombie.
    """
    state_dir = container_dir(container_id, root)
    try:
        saved = load(container_id, root)
    except MinidockerError:
        saved = None
    pid = 0
    if saved is not None:
        now = status(saved, state_dir)
        if now == "running" and not force:
            raise MinidockerError(f"cannot delete container {container_id} that is not stopped: running",
                                  "kill it first, or delete --force")
        cgroups_path, pid = saved.get("cgroupsPath"), saved.get("pid", 0) if now != "stopped" else 0
    cgroup = resources.cgroup_for(container_id, cgroups_path)
    if saved is None and not force and not cgroup.exists():
        raise MinidockerError(f"container {container_id} does not exist", "")
    if pid and not cgroup.exists():
        _signal_quietly(pid, signals.SIGKILL)  # no cgroup to kill through (made by someone else)
    if cgroup.exists():
        cgroup.kill()
        cgroup.remove()
    if saved is not None:
        _reap(saved)
        hooks.stopped(saved)  # poststop
    remove(state_dir)


def _signal_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(saved: dict) -> None:
    pid = saved.get("pid", 0)
    if pid and proc_stat(pid)[1:2] == [str(os.getpid())]:  # our child (ppid is us): wait for it
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # the caller waited for it already


# ---------------------------------------------------------------------------------------------
# exec, stats, list


def exec_process(container_id: str, process: dict, *, stdio=(0, 1, 2), console=None, root=None,
                 parent_death_signal: int = signals.SIGKILL) -> int:
    """runc exec: start an OCI `process` in the container's namespaces and cgroup; return its pid
    once it has exec'd (we are its parent). 126/127 as for start."""
    from minidocker.runtime import spawn  # here, not at the top: see this module's docstring

    saved = load(container_id, root)
    if status(saved, container_dir(container_id, root)) != "running":
        raise MinidockerError(f"container {container_id} is not running", "start it first")
    cgroup = resources.cgroup_for(container_id, saved.get("cgroupsPath"))
    return spawn.join(saved["pid"], process, stdio, cgroup if cgroup.exists() else None, console,
                      parent_death_signal, seccomp_filter=saved.get("seccomp"))


def stats(container_id: str, *, root=None) -> dict:
    """{"memory_bytes", "pids", "cpu_usage_ns", "oom_kills"}, read from the container's cgroup."""
    saved = load(container_id, root)
    cgroup = resources.cgroup_for(container_id, saved.get("cgroupsPath"))
    if not cgroup.exists():
        return {"memory_bytes": None, "pids": None, "cpu_usage_ns": None, "oom_kills": 0}
    return {**cgroup.stats(), "oom_kills": resources.oom_kills(cgroup)}


def list_containers(*, root=None) -> list[dict]:
    top = root or default_root()
    found = []
    for name in sorted(os.listdir(top)) if os.path.isdir(top) else ():
        try:
            found.append(state(name, root=top))
        except MinidockerError:
            continue  # deleted meanwhile
    return found
