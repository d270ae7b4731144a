"""From a container's Config and HostConfig (the Engine API's JSON) to its OCI runtime config.

This is the one place where Docker's view of a container becomes the runtime's: `from_container`
reads the create request, as the engine stored it, and writes config.json with the OCI runtime
spec's field names (process, root, hostname, mounts, linux.namespaces, linux.resources,
linux.cgroupsPath), which is what runc would read from a bundle. Every value was checked when the
container was created (config.py); here it is only translated.
"""

import os

from minidocker import cgroups
from minidocker.container import oci_defaults
from minidocker.container.config import cpu_quota, resolve_user

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Docker's default
# Every namespace Docker gives a container by default (user namespaces are opt-in in Docker).
NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup")


def home_of(layers: list[str]) -> str:
    """root's home (uid 0) from the image's /etc/passwd, read through its layers (top-most
    first); "/" when it has none, as Docker does."""
    return resolve_user("0", layers)[2]


def merge_env(defaults: list[str], overrides: list[str]) -> list[str]:
    """Later NAME=VALUE entries replace earlier ones with the same NAME; order is kept."""
    merged: dict[str, str] = {}
    for item in defaults + overrides:
        name = item.split("=", 1)[0]
        merged[name] = item
    return list(merged.values())


def rootfs_of(image: str) -> tuple[str, bool]:
    """Config.Image as minidocker's --rootfs gives it, an absolute path (no image reference starts
    with "/"): "DIR", or "DIR:O" for an overlay with DIR as its read-only lower layer (podman's
    syntax)."""
    overlay = image.endswith(":O")
    return os.path.abspath(image[:-2] if overlay else image), overlay


def is_rootfs(image: str) -> bool:
    return image.startswith("/")


def resources(host_config: dict) -> dict:
    """HostConfig's limits -> OCI linux.resources. Absent means unlimited."""
    found = {}
    if host_config.get("Memory"):
        memory = host_config["Memory"]
        # OCI's swap is memory+swap, as cgroup v1's memsw. Docker without --memory-swap allows as
        # much swap as memory: memory+swap = 2x.
        found["memory"] = {"limit": memory, "swap": 2 * memory}
    if (host_config.get("PidsLimit") or 0) > 0:  # Docker: 0 and -1 mean unlimited
        found["pids"] = {"limit": host_config["PidsLimit"]}
    if host_config.get("NanoCpus"):
        found["cpu"] = cpu_quota(host_config["NanoCpus"])
    return found


def from_container(container_id: str, container_dir: str, config: dict, host_config: dict,
                   image_layers: list[str] | None = None) -> dict:
    """The OCI runtime config (config.json) for one container. `image_layers`: the unpacked
    layers of its image, lowest first; None when Config.Image is a --rootfs directory."""
    if image_layers is None:
        rootfs, overlay = rootfs_of(config["Image"])
        layers = [rootfs]
    else:
        rootfs, overlay = None, True
        layers = image_layers[::-1]  # overlayfs lists the top-most layer first, an image the lowest
    hostname = config["Hostname"] or container_id[:12]
    uid, gid, home = resolve_user(config["User"], layers) if config.get("User") else (0, 0, home_of(layers))
    defaults = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}", f"HOME={home}"]
    if config.get("Tty"):
        defaults.append("TERM=xterm")  # Docker sets it for -t, so programs know they can draw
    # "NAME" alone (the docker CLI sends it for `-e NAME` when NAME is unset) sets nothing.
    env = [item for item in config.get("Env") or [] if "=" in item]
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": bool(config.get("Tty")),
            "user": {"uid": uid, "gid": gid},
            "args": (config.get("Entrypoint") or []) + (config.get("Cmd") or []),
            "env": merge_env(defaults, env),
            "cwd": config.get("WorkingDir") or "/",
        },
        "root": {"path": rootfs, "readonly": bool(host_config.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": oci_defaults.default_mounts(),  # chapter 05 adds volumes after these
        "linux": {
            "namespaces": [{"type": t} for t in NAMESPACES],
            "resources": resources(host_config),
            "cgroupsPath": cgroups.default_path(container_id),
            # Kernel files a container must not read (/proc/kcore...) or write (/proc/sys...).
            "maskedPaths": oci_defaults.default_masked_paths(),
            "readonlyPaths": oci_defaults.default_readonly_paths(),
        },
        # Not OCI: runc has no init of its own; Docker adds one (docker-init) with --init.
        "minidocker": {"init": bool(host_config.get("Init"))},
    }
    if host_config.get("Privileged"):
        oci_defaults.unlock_for_privileged(spec)  # chapter 08: /sys read-write, nothing masked
    if overlay:
        # --8<-- [start:writable-layer]
        # The container's own writable layer on top of the read-only layers (an image's, or a
        # --rootfs DIR:O). The supervisor makes these directories; the runtime mounts the
        # overlay on "merged", inside the container's mount namespace, as Docker's graph driver
        # does before runc starts: nothing is mounted on the host, and nothing is left to unmount.
        spec["root"]["path"] = os.path.join(container_dir, "merged")
        # Between them, Docker's "init layer": the empty files the engine mounts over
        # (/etc/hosts...), so that mounting creates nothing in the writable layer, and a
        # `commit` or `diff` of the container never shows them.
        spec["minidocker"]["overlay"] = {"lowerdirs": [os.path.join(container_dir, "init")] + layers,
                                         "upperdir": os.path.join(container_dir, "upper"),
                                         "workdir": os.path.join(container_dir, "work")}
        # --8<-- [end:writable-layer]
    # Chapter 04: the network namespace's path, and the container's own /etc/hosts, resolv.conf, hostname.
    from minidocker.network import sandbox

    sandbox.prepare_spec(spec, container_id, container_dir, host_config)
    # Chapter 08: capabilities, seccomp, the device cgroup, user namespaces.
    from minidocker import security

    security.apply(spec, host_config)
    return spec
