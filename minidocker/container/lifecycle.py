"""The engine's container lifecycle: create, start, stop, kill, wait, remove.

Each function takes and returns the Docker Engine API's JSON, as the daemon's endpoints do:

    create(config, host_config, name)  POST   /containers/create?name=NAME  -> {"Id", "Warnings"}
    start(ref)                         POST   /containers/{id}/start
    stop(ref, timeout)                 POST   /containers/{id}/stop?t=10
    kill(ref, signal)                  POST   /containers/{id}/kill?signal=KILL
    wait(ref)                          POST   /containers/{id}/wait        -> {"StatusCode"}
    remove(ref, force)                 DELETE /containers/{id}?force=1
    pause(ref), unpause(ref)           POST   /containers/{id}/pause, /unpause

The command line (minidocker/cli/container.py) and the daemon (chapter 07) are two faces of these
same functions. Before a function trusts a container's state it checks that the supervisor is
still alive (`refresh`): if it was killed, the container is marked exited and the runtime's
leftovers are deleted, so nothing leaks.
"""

import os
import select
import signal

from minidocker import runtime, store
from minidocker.container import config as checks, records, restart, spec as specs, supervisor
from minidocker.errors import MinidockerError
from minidocker.volume import mounts as volume_mounts
from minidocker.network import sandbox


def refresh(c: records.Container) -> records.Container:
    """Recover from a supervisor that died (SIGKILL, OOM, a reboot): release what it held."""
    sup = c.state.get("SupervisorPid", 0)
    if sup and not records.alive(sup, c.state.get("SupervisorStart")):
        # What we read may be older than the supervisor's last words: one that exited normally
        # recorded its exit code and SupervisorPid 0 (and, with --rm, removed the directory) just
        # before it died. Now that it is dead the file is final: read it again, and only if it
        # still names that supervisor was it killed. (Without this, a `ps` in another thread of
        # the daemon turned a clean exit 0 into 137, or wrote into a removed directory.)
        try:
            c.state = store.read_json(os.path.join(c.dir, "state.json"))
        except FileNotFoundError:
            raise MinidockerError(f"No such container: {c.name}", "it was removed") from None
        if c.state.get("SupervisorPid", 0) != sup:
            return c
        # The container died with it (PDEATHSIG), unless it raced: delete kills what is left.
        runtime.delete(c.id, force=True)
        sandbox.down(c)  # its veths, addresses and namespace file (chapter 04)
        was_running = c.state["Running"]
        c.save_state(Status="exited" if was_running else c.state["Status"], Running=False, Paused=False, Pid=0,
                     ExitCode=137 if was_running else c.state["ExitCode"], SupervisorPid=0,
                     Error="the supervisor was killed", FinishedAt=store.now())
        volume_mounts.release(c)
        if c.record["HostConfig"].get("AutoRemove"):
            _remove(c, volumes=True)
            raise MinidockerError(f"No such container: {c.name}", "it was started with --rm")
    return c


def find(ref: str) -> records.Container:
    return refresh(records.find(ref))


def all_containers() -> list[records.Container]:
    alive = []
    for c in records.all_containers():
        try:
            alive.append(refresh(c))
        except MinidockerError:
            continue
    sandbox.sweep(alive)  # what a killed `run` left before its container was recorded as started
    return alive


# ---------------------------------------------------------------------------------------------
# create, start

# --8<-- [start:create]
def create(config: dict, host_config: dict, name: str | None = None) -> dict:
    """POST /containers/create: check the request, then write the container's record and its
    OCI config (the runtime's bundle) in one atomic step. Nothing runs yet.

    Config.Image names an image ("busybox", "sha256:…"), whose config gives the defaults and
    whose layers are the rootfs; or, minidocker's own, an absolute path: a --rootfs directory."""
    store.require_root()
    checks.check_settings(config, host_config)  # dockerd's order: the request's values, then the image
    config = dict(config)
    networking = sandbox.check(host_config, config.pop("NetworkingConfig", None))  # chapter 04: --network & co.
    if name is not None:
        name = checks.check_name(name)
    if not config.get("Image"):
        raise MinidockerError("no image given", "minidocker run IMAGE [CMD...], or --rootfs DIR -- CMD")
    image, layers = None, None  # layers: the image's unpacked layers, lowest first
    if specs.is_rootfs(config["Image"]):
        rootfs, _ = specs.rootfs_of(config["Image"])
        if not os.path.isdir(rootfs):
            raise MinidockerError(f"rootfs {rootfs} is not a directory", "build one: minidocker rootfs DIR")
        top_down = [rootfs]
    else:
        from minidocker.image import defaults, layers as unpacked, layout

        images = layout.Layout()
        image = images.image(config["Image"])  # "No such image: …": the CLI may pull it, then ask again
        config = defaults.merge(config, image.config.get("config") or {})
        # Unpacked once per layer (chain ID) and shared by every container of every image that
        # has it. Docker unpacks at pull; we do it on first use, if the pull has not.
        layers = unpacked.unpack(images, image)
        top_down = layers[::-1]  # the top-most layer first, as overlayfs shows them
    checks.check(config, host_config, top_down)  # -u NAME is looked up in the image's /etc/passwd
    mount_points = volume_mounts.plan(config, host_config)  # -v, --mount...: all checked, nothing made yet
    command = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    record = {"Name": name, "Path": command[0], "Args": command[1:],
              # Docker's ContainerJSON: "Image" is the image's ID, Config.Image the name as typed.
              "Image": image.id if image else "",
              "Config": {**config, "Hostname": config.get("Hostname") or ""},
              "HostConfig": dict(host_config), "NetworkingConfig": networking, "RestartCount": 0}

    def spec_for(container_dir: str, record: dict) -> dict:
        cid = os.path.basename(container_dir)
        record["Config"]["Hostname"] = record["Config"]["Hostname"] or cid[:12]
        spec = specs.from_container(cid, container_dir, record["Config"], record["HostConfig"], layers)
        record["Config"]["Env"] = spec["process"]["env"]  # inspect shows the whole environment, as Docker does
        # Chapter 05: the volumes are made now (named, anonymous; a -v bind's missing source), and
        # mounted after Docker's default mounts; the image's content is copied into them at start.
        points = volume_mounts.prepare(mount_points, cid)
        record["Mounts"] = volume_mounts.public(points)
        spec["mounts"] = volume_mounts.with_defaults(spec["mounts"], volume_mounts.oci_mounts(points, host_config.get("Tmpfs")))
        spec["minidocker"]["copyup"] = volume_mounts.copy_ups(points)
        return spec

    return {"Id": records.create(record, spec_for).id, "Warnings": []}
# --8<-- [end:create]


def start(ref: str, attach: supervisor.Attach | None = None, detach: bool = False) -> int | None:
    """POST /containers/{id}/start. Detached (no `attach`): a supervisor is forked that outlives
    us, and we return once the container runs. Attached (`docker run` in the foreground, or
    `start -a`): we are the supervisor, the output goes to `attach`, and we return the exit code.
    `detach` (the daemon): a supervisor is forked even when attached; we return its pid."""
    c = find(ref)
    if c.state.get("Paused"):  # checked first: a paused container is running too
        raise MinidockerError("cannot start a paused container, try unpause instead", f"minidocker unpause {ref}")
    if c.state["Running"]:
        return None
    restart.started_by_user(c)  # chapter 07: a restart policy counts again from here
    if attach is None or detach:
        pid = supervisor.start_detached(c, attach)
        return pid if detach else None
    try:
        return supervisor.run(c, attach)
    finally:
        if c.record["HostConfig"].get("AutoRemove"):
            _remove(c, volumes=True)


# ---------------------------------------------------------------------------------------------
# stop, kill, wait, remove


def _wait_exit(c: records.Container, timeout: float) -> bool:
    """Wait until the container has exited and its supervisor recorded it. True if it did."""
    sup = c.state.get("SupervisorPid", 0)
    if not sup:
        return not c.state["Running"]
    try:
        # A pidfd becomes readable when its process exits: no polling loop, no pid-reuse race.
        pidfd = os.pidfd_open(sup)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def _signal(c: records.Container, sig: int) -> None:
    if not c.state["Running"]:
        raise MinidockerError(f"container {c.name} is not running", "start it first")
    # --8<-- [start:signal-paused]
    if c.state.get("Paused"):
        # A frozen process would keep the signal pending: Docker thaws a paused container on any
        # kill (and so on stop's SIGTERM). Docker signals, then thaws; we thaw first, so that the
        # wait for "thawed" cannot race with the exit the signal causes (and the supervisor
        # removing the cgroup). The state is saved first, before its supervisor can record the exit.
        c.save_state(Paused=False, Status="running")
        _thaw(c)
    supervisor.signal_quietly(c.state["Pid"], sig)
    # --8<-- [end:signal-paused]


def stop(ref: str, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds: a PID 1 without a SIGTERM handler ignores it."""
    c = find(ref)
    if not c.state["Running"]:
        return
    restart.stopped_by_user(c)  # before the signal: the daemon's monitor must not restart it
    _signal(c, signal.SIGTERM)
    if not _wait_exit(c, timeout):
        _signal(c, signal.SIGKILL)
        _wait_exit(c, 10)


def parse_signal(text: str | int) -> int:
    """A signal as Docker takes it: a name (KILL, SIGKILL, kill) or a number, checked as dockerd
    does (in its words): a name it knows, a number that is a signal of this kernel, and never 0
    (kill(2) with signal 0 only checks that the process exists)."""
    name = str(text).upper()
    try:
        number = int(name)
    except ValueError:
        try:
            number = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
        except KeyError:
            raise MinidockerError(f"invalid signal: {text}", "use a name like TERM or a number from 1 to 64") from None
    if number == 0:
        raise MinidockerError(f"invalid signal: {text}", "use a name like TERM or a number from 1 to 64")
    if number not in signal.valid_signals():
        raise MinidockerError(f"the linux daemon does not support signal {number}", "use a number from 1 to 64")
    return int(number)


def kill(ref: str, sig: str | int = "KILL") -> None:
    number = parse_signal(sig)  # checked before the container is looked up, as Docker does
    c = find(ref)
    if c.state["Running"]:
        restart.stopped_by_user(c)
    _signal(c, number)


def wait(ref: str) -> dict:
    """Block until the container stops: {"StatusCode": its exit code}."""
    c = find(ref)
    while c.state["Running"] and not _wait_exit(c, 3600):
        pass
    return {"StatusCode": find(c.id).state["ExitCode"], "Error": None}


def _remove(c: records.Container, volumes: bool = False) -> None:
    runtime.delete(c.id, force=True)
    records.remove_dir(c)
    if volumes:  # `rm -v`, `run --rm`: its anonymous volumes go too, never a named one
        volume_mounts.remove_anonymous(c.record)


def remove(ref: str, force: bool = False, volumes: bool = False) -> None:
    c = find(ref)
    if c.state["Running"]:
        if c.state.get("Paused") and not force:
            raise MinidockerError("container is paused and must be unpaused first", "or force remove with -f")
        if not force:
            raise MinidockerError(f"cannot remove container {c.name}: container is running",
                                  "stop the container before removing or force remove with -f")
        _signal(c, signal.SIGKILL)
        _wait_exit(c, 10)
    _remove(c, volumes)


# ---------------------------------------------------------------------------------------------
# pause, unpause: the cgroup freezer (docs/commands.md#pause)


def cgroup_of(c: records.Container):
    """The container's cgroup, where the runtime put its processes (linux.cgroupsPath)."""
    from minidocker.runtime import resources

    return resources.cgroup_for(c.id, c.spec["linux"].get("cgroupsPath"))


# --8<-- [start:pause]
def pause(ref: str) -> None:
    """Freeze every process of the container at once. Unlike SIGSTOP, which a process can see
    (its parent is told; a shell prints "Stopped"), the freezer is invisible from inside: the
    processes just get no more CPU time until they are thawed, as `runc pause` does it."""
    c = find(ref)
    if not c.state["Running"]:
        raise MinidockerError(f"container {c.id} is not running", "start it first")
    if c.state.get("Paused"):
        raise MinidockerError(f"container {c.id} is already paused", f"minidocker unpause {ref}")
    cgroup_of(c).freeze()  # returns once the kernel says every process is frozen
    c.save_state(Paused=True, Status="paused")
# --8<-- [end:pause]


def unpause(ref: str) -> None:
    c = find(ref)
    if not c.state.get("Paused"):
        raise MinidockerError(f"Container {c.id} is not paused", "see `minidocker ps`")
    c.save_state(Paused=False, Status="running")  # first: thawed, it may exit at once
    try:
        _thaw(c)
    except BaseException:
        c.save_state(Paused=True, Status="paused")
        raise


def _thaw(c: records.Container) -> None:
    cgroup = cgroup_of(c)
    try:
        cgroup.thaw()  # returns once the kernel says the cgroup is thawed
    except MinidockerError:
        # A signal sent just before (kill, rm -f) can end the container as soon as it thaws,
        # and its supervisor then removes the cgroup: a cgroup that is gone has nothing frozen.
        if cgroup.exists():
            raise
