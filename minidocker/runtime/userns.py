"""A container with a user namespace of its own: runc's two stages (chapter 08).

Every namespace is *owned* by the user namespace of the process that made it, and the kernel
checks a capability in the owner: the container's root may mount proc only if its user namespace
owns the PID namespace, sysfs only if it owns the network namespace, and so on. So the order is:

1. a first stage, still the host's root, does what only the host's root may: joins the cgroup
   (cgroup.procs is host root's file), joins the namespaces the spec names by path (the engine's
   network namespace), mounts the rootfs's overlay (as Docker's graph driver does on the host),
   then unshares CLONE_NEWUSER, with CLONE_NEWPID in the same call: the kernel makes the user
   namespace first and gives it the PID namespace;
2. the runtime, root on the host, writes the stage's uid_map and gid_map (a process may not map
   itself beyond its own id);
3. the first stage forks the container's process with CLONE_PARENT: the runtime is its parent,
   as after a plain fork, and it is born PID 1 of the new PID namespace, in the user namespace,
   root there. The first stage exits;
4. the container's process makes the other namespaces (mount, uts, ipc, cgroup), owned by its
   user namespace, and goes on as any container does (spawn.py's _become_container).

runc's nsexec does the same in C, before Go's runtime starts threads. See
docs/08-hardening.md#user-namespaces.
"""

import os

from minidocker import linux
from minidocker.errors import MinidockerError


# --8<-- [start:stages]
def fork_in_user_namespace(spec: dict, bundle: str, cgroup) -> int:
    """Like os.fork(): 0 in the container's process, its pid in the runtime. The process is
    born in a new user namespace (maps written) and, if the spec asks, a new PID namespace."""
    to_stage_r, to_stage_w = os.pipe2(os.O_CLOEXEC)
    from_stage_r, from_stage_w = os.pipe2(os.O_CLOEXEC)
    stage = os.fork()
    if stage == 0:
        os.close(to_stage_w)
        os.close(from_stage_r)
        if first_stage(spec, bundle, cgroup, to_stage_r, from_stage_w) == 0:
            return 0  # the container's process: on into spawn.py's child
    os.close(to_stage_r)
    os.close(from_stage_w)
    try:
        said = os.read(from_stage_r, 4096)
        if said != b"unshared":
            raise MinidockerError(f"cannot make the user namespace: {said.decode(errors='replace')}")
        if os.geteuid() != 0:
            linux.deny_setgroups(stage)  # an unprivileged runtime may map gids only so
        linux.write_id_map(stage, "uid_map", spec["linux"].get("uidMappings") or [])
        linux.write_id_map(stage, "gid_map", spec["linux"].get("gidMappings") or [])
        os.write(to_stage_w, b"go")
        said = os.read(from_stage_r, 4096)
        if not said.isdigit():
            raise MinidockerError(f"cannot start the container's process: {said.decode(errors='replace')}")
        return int(said)
    finally:
        os.close(to_stage_w)  # an EOF for a stage still waiting: it exits
        os.close(from_stage_r)
        os.waitpid(stage, 0)


def first_stage(spec: dict, bundle: str, cgroup, to_stage: int, from_stage: int) -> int:
    """Steps 1 and 3, in the forked stage. Returns only in the container's process (0)."""
    linux.set_role("stage-1")
    try:
        if cgroup is not None:
            cgroup.add(0)
        for name, path in namespaces(spec).items():
            if path and name != "user":
                enter(path, linux.NAMESPACES[name][0])  # a PID namespace: for our child
        overlay = spec.get("minidocker", {}).get("overlay")
        if overlay and "mount" in namespaces(spec):
            mount_overlay(spec, bundle, overlay)
        new_pid = "pid" in namespaces(spec) and not namespaces(spec)["pid"]
        linux.unshare(linux.CLONE_NEWUSER | (linux.CLONE_NEWPID if new_pid else 0))
        os.write(from_stage, b"unshared")
        if os.read(to_stage, 2) != b"go":
            os._exit(1)  # the runtime gave up (its error, not ours)
        pid = linux.fork_as_sibling()
    except BaseException as e:  # noqa: BLE001 - whatever it is, the runtime must hear of it
        os.write(from_stage, f"{type(e).__name__}: {e}".encode())
        os._exit(1)
    if pid == 0:
        os.close(to_stage)
        os.close(from_stage)
        return 0  # on as spawn.py's child: become_root() first
    os.write(from_stage, str(pid).encode())
    os._exit(0)
# --8<-- [end:stages]


def become_root() -> None:
    """Step 4's start, in the container's process. It is still uid 0 of the *host*, which the map
    does not name (seen inside as 65534, and a file made now fails with EOVERFLOW): become the
    namespace's own root, which the host knows as the range's first id."""
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def mount_overlay(spec: dict, bundle: str, overlay: dict) -> None:
    """The rootfs's overlay, mounted with the host's powers in a mount namespace of the host's.

    As root of a user namespace, overlayfs could not read the trusted.overlay.* xattrs that mark
    the layers' opaque directories, nor use layers it does not own; Docker's graph driver mounts
    the overlay on the host, and runc only binds it. The mount namespace the container's process
    makes next, owned by its user namespace, starts as a copy of this one, overlay included.
    """
    from minidocker.unionfs import overlay as overlayfs

    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)  # nothing of this reaches the host
    root = os.path.realpath(os.path.join(bundle, spec["root"]["path"]))
    overlayfs.mount(overlay["lowerdirs"], overlay["upperdir"], overlay["workdir"], root)


def second_stage(spec: dict, cgroup) -> tuple:
    """The spec and cgroup that the container's process goes on with: the namespaces the first
    stage joined or made are no longer listed (the process is in them; "pid" stays, which only
    says "we are PID 1"), and the overlay is mounted already; the cgroup is joined already."""
    joined = {name for name, path in namespaces(spec).items() if path} | {"user"}
    rest = [ns for ns in spec["linux"]["namespaces"] if ns["type"] not in joined]
    settings = dict(spec.get("minidocker", {}))
    if "mount" in namespaces(spec):
        settings["overlay"] = None  # bound, not mounted again: setup_rootfs binds the root on itself
    return ({**spec, "linux": {**spec["linux"], "namespaces": rest}, "minidocker": settings},
            JoinedCgroup(cgroup) if cgroup is not None else None)


class JoinedCgroup:
    """The container's cgroup, which the first stage joined: as root of a user namespace, the
    process could not write the host's cgroup.procs. Everything else is the cgroup's own."""

    def __init__(self, cgroup):
        self._cgroup = cgroup

    def add(self, pid: int = 0) -> None:
        pass  # in it already, since the first stage

    def __getattr__(self, name):
        return getattr(self._cgroup, name)


def namespaces(spec: dict) -> dict[str, str | None]:
    return {ns["type"]: ns.get("path") or None for ns in spec.get("linux", {}).get("namespaces", ())}


def enter(path: str, nstype: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, nstype)
    finally:
        os.close(fd)
