"""From `minidocker run` flags to a Spec: the OCI runtime config.json that the runtime consumes.

The Spec keeps the OCI runtime spec's field names (process, root, hostname, mounts,
linux.namespaces, linux.resources, linux.cgroupsPath), so it is what runc would read from a
bundle's config.json. This module also validates the flags the way Docker does: a bad value is
one clear line and exit code 125, before anything is created.
"""

import os
import re

from minidocker import cgroups
from minidocker.errors import MinidockerError

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Docker's default
# Every namespace Docker gives a container by default (user namespaces are opt-in in Docker).
NAMESPACES = ("pid", "network", "ipc", "uts", "mount", "cgroup")

# Docker's rule for container names: a letter or digit, then letters, digits, `_`, `.` or `-`.
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_size(text: str, flag: str = "-m, --memory") -> int:
    """Docker's size syntax, binary units: "64m" -> 67108864, "1.5g", "512k", "100" (bytes)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?", text.strip().lower())
    if not match:
        raise MinidockerError(f'invalid argument "{text}" for "{flag}" flag: invalid size',
                              "use a number with an optional unit: b, k, m, g, e.g. 64m")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit])


def parse_cpus(text: str) -> float:
    """--cpus 0.5: half of one CPU's time, enforced as a CFS quota (see cgroups.py)."""
    try:
        cpus = float(text)
    except ValueError:
        raise MinidockerError(f'invalid argument "{text}" for "--cpus" flag', "use a number such as 0.5") from None
    cgroups.cpu_quota(cpus)  # refuses what the kernel or Docker would, before anything is made
    return cpus


def parse_memory(text: str) -> int:
    memory = parse_size(text)
    if memory < cgroups.MIN_MEMORY:
        raise MinidockerError("Minimum memory limit allowed is 6MB", "use -m 6m or more")
    return memory


def parse_user(text: str) -> tuple[int, int | None]:
    """-u UID[:GID]. (Docker also accepts names; resolving them needs the image's /etc/passwd.)"""
    match = re.fullmatch(r"(\d+)(?::(\d+))?", text)
    if not match:
        raise MinidockerError(f"invalid user {text!r}", "use -u UID or -u UID:GID, e.g. -u 1000:1000")
    uid, gid = match.groups()
    return int(uid), None if gid is None else int(gid)


def parse_env(items: list[str]) -> list[str]:
    """-e NAME=VALUE as is; -e NAME alone takes the value from our own environment, as Docker does."""
    env = []
    for item in items:
        name = item.split("=", 1)[0]
        if not name:
            raise MinidockerError(f"invalid environment variable: {item}", "use -e NAME=VALUE")
        if "=" in item:
            env.append(item)
        elif name in os.environ:
            env.append(f"{name}={os.environ[name]}")
    return env


def check_workdir(path: str) -> str:
    if not path.startswith("/"):
        raise MinidockerError(f"the working directory '{path}' is invalid", "it needs to be an absolute path")
    return path


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise MinidockerError(f"Invalid container name ({name})",
                              "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def home_of(rootfs: str, uid: int) -> str:
    """The user's home from the rootfs's /etc/passwd; "/" when it has none (Docker does the same)."""
    try:
        with open(os.path.join(rootfs, "etc/passwd")) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def merge_env(defaults: list[str], overrides: list[str]) -> list[str]:
    """Later NAME=VALUE entries replace earlier ones with the same NAME; order is kept."""
    merged: dict[str, str] = {}
    for item in defaults + overrides:
        name = item.split("=", 1)[0]
        merged[name] = item
    return list(merged.values())


def build(*, args, rootfs, hostname, env=(), cwd="/", user=(0, None), tty=False, readonly=False,
          memory=None, pids=None, cpus=None, cgroups_path="", init=False) -> dict:
    """The OCI runtime config for one container (a subset of config.json, same field names)."""
    uid, gid = user
    defaults = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}", f"HOME={home_of(rootfs, uid)}"]
    if tty:
        defaults.append("TERM=xterm")  # Docker sets it for -t, so programs know they can draw
    resources = {}
    if memory is not None:
        resources["memory"] = {"limit": memory}
    if pids is not None:
        resources["pids"] = {"limit": pids}
    if cpus is not None:
        quota, period = cgroups.cpu_quota(cpus)
        resources["cpu"] = {"quota": quota, "period": period}
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": tty,
            "user": {"uid": uid, "gid": uid if gid is None else gid},
            "args": list(args),
            "env": merge_env(defaults, list(env)),
            "cwd": cwd,
        },
        "root": {"path": rootfs, "readonly": readonly},
        "hostname": hostname,
        "mounts": [],  # chapter 05 adds volumes here
        "linux": {
            "namespaces": [{"type": t} for t in NAMESPACES],
            "resources": resources,
            "cgroupsPath": cgroups_path,
        },
        # Not OCI: runc has no init of its own; Docker adds one (docker-init) with --init.
        "minidocker": {"init": init},
    }
