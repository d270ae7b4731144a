"""The device cgroup: which device nodes a container may open, read, write or mknod.

Two OCI fields, filled from HostConfig as dockerd does (moby's WithDevices):
- `linux.devices`: the nodes the runtime makes in the container's /dev (runtime/mounts.py), beside
  the few every container gets. `--device /dev/fuse` adds one; `--privileged` adds every node
  of the host's /dev.
- `linux.resources.devices`: the rules of the device cgroup, which the runtime enforces
  (cgroups/devices.py; v1 files or v2's BPF program). Docker's list denies everything but a
  handful of harmless devices; `--device` adds an allow rule for its node, with the permissions
  it names ("rwm" unless told); `--privileged` allows all.

A node without a rule is useless (open says EPERM), and a rule without a node is harmless. But
the rule is the lock: root in the container may make any node itself (mknod is allowed, as in
Docker), and only the cgroup stops it from opening it. See docs/08-hardening.md#the-device-cgroup.
"""

import os
import stat

from minidocker.container import oci_defaults
from minidocker.errors import MinidockerError

# Directories of /dev that --privileged does not copy: the container has its own of each
# (devpts, shm and mqueue mounts, the fd link), or they hold no device nodes.
SKIPPED_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def node_of(path: str, stat_result: os.stat_result) -> dict | None:
    """A linux.devices entry for a device node, or None when it is not one."""
    kind = "c" if stat.S_ISCHR(stat_result.st_mode) else "b" if stat.S_ISBLK(stat_result.st_mode) else None
    if kind is None:
        return None
    return {"path": path, "type": kind, "major": os.major(stat_result.st_rdev), "minor": os.minor(stat_result.st_rdev),
            "fileMode": stat.S_IMODE(stat_result.st_mode), "uid": stat_result.st_uid, "gid": stat_result.st_gid}


def devices_from_path(on_host: str, in_container: str) -> list[dict]:
    """The nodes for one --device: the host's node (a symlink followed: /dev/disk/by-id/...),
    or every node in a host directory (--device /dev/snd), each at its path in the container."""
    resolved = os.path.realpath(on_host)
    try:
        found = node_of(in_container, os.stat(resolved))
    except OSError as e:
        raise _gather_error(on_host, e.strerror.lower()) from None
    if found:
        return [found]
    nodes = []
    for directory, _, names in os.walk(resolved) if os.path.isdir(resolved) else ():
        for name in sorted(names):
            path = os.path.join(directory, name)
            node = node_of(in_container + path[len(resolved):], os.lstat(path))
            nodes += [node] if node else []
    if not nodes:
        raise _gather_error(on_host, "not a device node")
    return nodes


def _gather_error(path: str, reason: str) -> MinidockerError:
    return MinidockerError(f'error gathering device information while adding custom device "{path}": {reason}',
                           "give a device node of the host, e.g. --device /dev/fuse")


def host_devices() -> list[dict]:
    """Every device node under the host's /dev, at the same path: what --privileged gets."""
    nodes = []
    for directory, subdirs, names in os.walk("/dev"):
        subdirs[:] = sorted(d for d in subdirs if not (directory == "/dev" and d in SKIPPED_DIRS))
        for name in sorted(names):
            path = os.path.join(directory, name)
            if path == "/dev/console":
                continue  # the runtime gives the container a console of its own (-t)
            try:
                node = node_of(path, os.lstat(path))  # lstat: a symlink is not a node
            except FileNotFoundError:
                continue  # gone while we walked (udev at work)
            nodes += [node] if node else []
    return nodes


def rule_for(node: dict, permissions: str) -> dict:
    """The device cgroup rule that lets the container use one node."""
    return {"allow": True, "type": node["type"], "major": node["major"], "minor": node["minor"],
            "access": permissions}


# --8<-- [start:to-spec]
def to_spec(spec: dict, host_config: dict) -> None:
    """HostConfig.Devices, Privileged -> linux.devices and linux.resources.devices."""
    nodes, rules = [], oci_defaults.default_device_rules()
    for mapping in host_config.get("Devices") or []:
        on_host, in_container = mapping["PathOnHost"], mapping.get("PathInContainer") or mapping["PathOnHost"]
        found = devices_from_path(on_host, in_container)  # raises before anything is made
        nodes += found
        rules += [rule_for(node, mapping.get("CgroupPermissions") or "rwm") for node in found]
    if host_config.get("Privileged"):
        # Every node of the host, and one rule that allows every device. (moby: a --device
        # at the host's own path is already among them; its permissions are ignored.)
        host = host_devices()
        taken = {node["path"] for node in host}
        nodes = host + [node for node in nodes if node["path"] not in taken]
        rules = [{"allow": True, "access": "rwm"}]
    spec["linux"]["devices"] = spec["linux"].get("devices", []) + nodes
    spec["linux"].setdefault("resources", {})["devices"] = rules
# --8<-- [end:to-spec]
