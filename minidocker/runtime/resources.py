"""linux.cgroupsPath and linux.resources: which cgroup, and what goes into its files.

The runtime makes the cgroup and writes the limits itself, from the spec alone, as runc does;
the files are written through minidocker.cgroups, which knows v1 from v2.
"""

from minidocker import cgroups
from minidocker.cgroups.base import keyed
from minidocker.errors import MinidockerError


def cgroup_path(container_id: str, cgroups_path: str | None) -> str:
    """linux.cgroupsPath as a path below the hierarchy root(s).

    Empty: `$MINIDOCKER_CGROUP_PARENT/<id>` (default parent `minidocker`), where the engine keeps
    its containers. "/a/b" is relative to the root of the cgroup filesystem, as in runc; a
    relative "a/b" is taken the same way (runc would put it under its own cgroup). systemd's
    "slice:prefix:name" form needs systemd's D-Bus API, which we do not speak.
    """
    if not cgroups_path:
        return cgroups.default_path(container_id)
    if ":" in cgroups_path:
        raise MinidockerError(f"cgroupsPath {cgroups_path!r} is systemd's form",
                              "use a path such as /minidocker/<id>")
    return cgroups_path.strip("/")


def cgroup_for(container_id: str, cgroups_path: str | None) -> cgroups.Cgroup:
    return cgroups.detect()(cgroup_path(container_id, cgroups_path))


def apply(cgroup: cgroups.Cgroup, resources: dict) -> None:
    """memory.limit/swap, pids.limit, cpu.quota/period into the cgroup's files.

    Only what is asked for: `run` without -m, --pids-limit or --cpus sends no resources, and then
    no limit code runs at all; the new cgroup keeps the kernel's defaults (unlimited).
    Ignored (no test or chapter needs them yet): cpu.shares, cpuset, blockIO, hugepageLimits,
    network.

    The device rules (chapter 08) go in whenever the spec has the field, even empty: the spec's,
    then runc's own list (cgroups/devices.py), from "deny all", as runc does. Without them root in
    the container could mknod /dev/sda and read the host's disk. (runc applies them even to a
    spec without the field; the engine always sends it, `runc spec` writes it too.)
    """
    limits = {key: resources[key] for key in ("memory", "pids", "cpu") if resources.get(key)}
    if limits:
        cgroup.set_limits(limits)  # which file takes which value: minidocker/cgroups/limits.py
    if resources.get("devices") is not None:
        from minidocker.cgroups import devices  # here: `delete` and `kill` use this module too

        cgroup.set_devices(resources["devices"] + devices.RUNTIME_RULES)


def oom_kills(cgroup: cgroups.Cgroup) -> int:
    """How many processes the OOM killer took in this cgroup (and below)."""
    if "memory" not in cgroup.controllers():
        return 0
    name = "memory.oom_control" if cgroup.VERSION == 1 else "memory.events"
    return int(keyed(cgroup.file("memory", name)).get("oom_kill", 0))
