"""The engine's checks on a create request: Config and HostConfig, as the Docker daemon checks them.

The docker CLI checks only the syntax of its flags ("64m" is a size); what the values *mean* is the
daemon's to judge, because an HTTP client (docker-py, curl) can send any JSON. So every rule on a
value lives here, once, and both the command line and the API (chapter 07) go through it. A
refused request is one clear line and exit code 125, before anything is created.
"""

import os
import re

from minidocker.cgroups import CFS_PERIOD_US, MIN_MEMORY
from minidocker.errors import MinidockerError

# Docker's rule for container names: a letter or digit, then letters, digits, `_`, `.` or `-`.
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
MAX_ID = 2**31 - 1  # uids and gids, as Docker (and the kernel's signed checks) accept them
HOST_NAME_MAX = 64  # sethostname(2) refuses a longer name, in bytes, with EINVAL
PID_MAX_LIMIT = 4 * 1024 * 1024  # the most pids a 64-bit kernel hands out; pids.max takes no more
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1  # the Engine API's numbers are Go int64s


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise MinidockerError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                              "a name needs two characters or more")
    return name.lstrip("/")


def parse_user(user: str) -> tuple[int, int | None]:
    """Config.User "UID[:GID]" -> (uid, gid or None). (Docker also resolves names in the image's
    /etc/passwd; that comes with images, in chapter 03.)"""
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    if not match:
        raise MinidockerError(f"invalid user {user!r}", "use -u UID or -u UID:GID, e.g. -u 1000:1000")
    uid, gid = (None if v is None else int(v) for v in match.groups())
    if uid > MAX_ID or (gid or 0) > MAX_ID:
        raise MinidockerError(f"invalid user {user!r}: uids and gids must be in range 0-{MAX_ID}",
                              "use a smaller number")
    return uid, gid


def check(config: dict, host_config: dict) -> None:
    """Refuse what Docker's daemon refuses, with its words where it has them."""
    if not config.get("Cmd") and not config.get("Entrypoint"):
        raise MinidockerError("no command specified", "add one: minidocker run --rootfs DIR -- CMD")
    workdir = config.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise MinidockerError(f"the working directory '{workdir}' is invalid", "it needs to be an absolute path")
    if config.get("User"):
        parse_user(config["User"])
    hostname = config.get("Hostname") or ""
    try:
        size = len(hostname.encode())
    except UnicodeEncodeError:  # bytes that were no UTF-8 on our command line
        raise MinidockerError(f"invalid hostname {hostname!r}", "a hostname is UTF-8 text") from None
    if size > HOST_NAME_MAX:
        raise MinidockerError(f"invalid hostname {hostname[:20]}…",
                              f"sethostname takes at most {HOST_NAME_MAX} bytes: fewer if not plain ASCII")
    for item in config.get("Env") or []:
        if not item.split("=", 1)[0]:
            raise MinidockerError(f"invalid environment variable: {item}", "use -e NAME=VALUE")
    for field in ("Memory", "NanoCpus", "PidsLimit"):
        value = host_config.get(field) or 0
        if not (isinstance(value, int) and INT64_MIN <= value <= INT64_MAX):
            # What dockerd's JSON decoder refuses (an HTTP client may send any number).
            raise MinidockerError(f"invalid HostConfig.{field}: {value!r}", "the Engine API takes a signed 64-bit integer")
    memory = host_config.get("Memory") or 0
    if memory < 0 or 0 < memory < MIN_MEMORY:
        raise MinidockerError("Minimum memory limit allowed is 6MB", "use -m 6m or more")
    if (host_config.get("PidsLimit") or 0) > PID_MAX_LIMIT:
        # Docker passes it on, and the kernel's EINVAL comes back from the runtime at start.
        raise MinidockerError(f"invalid pids limit {host_config['PidsLimit']}",
                              f"the kernel counts at most {PID_MAX_LIMIT} processes; -1 means no limit")
    nano_cpus, cores = host_config.get("NanoCpus") or 0, os.cpu_count() or 1
    # The kernel refuses a CFS quota under 1 ms per 100 ms period: 0.01 CPU is the floor.
    if nano_cpus and not 10**7 <= nano_cpus <= cores * 10**9:
        raise MinidockerError(f"Range of CPUs is from 0.01 to {cores}.00, as there are only {cores} CPUs available",
                              "use --cpus within that range")


def cpu_quota(nano_cpus: int) -> dict:
    """HostConfig.NanoCpus -> OCI linux.resources.cpu: 0.5 CPU is 50 ms of CPU time per 100 ms.

    The quota counts time over all cores, so 1.5 CPUs on a 2-core machine is 150 ms per 100 ms.
    """
    return {"quota": nano_cpus * CFS_PERIOD_US // 10**9, "period": CFS_PERIOD_US}
