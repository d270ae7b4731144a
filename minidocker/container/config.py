"""The engine's checks on a create request: Config and HostConfig, as the Docker daemon checks them.

The docker CLI checks only the syntax of its flags ("64m" is a size); what the values *mean* is the
daemon's to judge, because an HTTP client (docker-py, curl) can send any JSON. So every rule on a
value lives here, once, and both the command line and the API (chapter 07) go through it. A
refused request is one clear line and exit code 125, before anything is created.
"""

import os
import re
import stat

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
    """Config.User "UID[:GID]" -> (uid, gid or None), numbers only: what can be checked without
    a filesystem to look names up in (resolve_user does that)."""
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    if not match:
        raise MinidockerError(f"invalid user {user!r}", "use -u UID or -u UID:GID, e.g. -u 1000:1000")
    uid, gid = (None if v is None else int(v) for v in match.groups())
    _check_range(user, uid, gid)
    return uid, gid


def _check_range(user: str, *ids: int | None) -> None:
    if any((i or 0) > MAX_ID for i in ids):
        raise MinidockerError(f"invalid user {user!r}: uids and gids must be in range 0-{MAX_ID}",
                              "use a smaller number")


def layered_file(layers: list[str], path: str) -> str | None:
    """The real file that `path` ("etc/passwd") is in a stack of layers, top-most first, as the
    overlay will show it: the top-most layer that has it, unless a layer above deleted it (a
    whiteout: a 0/0 character device) or made its directory opaque. None if it is not there."""
    for layer in layers:
        real = os.path.join(layer, path)
        try:
            st = os.lstat(real)
        except OSError:  # not in this layer (or its parent is no directory here)
            st = None
        if st is not None:
            return None if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 else real
        try:
            if os.getxattr(os.path.dirname(real), "trusted.overlay.opaque") == b"y":
                return None  # the directory was replaced here: nothing below shows through
        except OSError:
            pass
    return None


def _entries(layers: list[str], path: str) -> list[list[str]]:
    """The colon-separated lines of /etc/passwd or /etc/group in the layers; none if it is missing."""
    real = layered_file(layers, path)
    try:
        with open(real or "", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if not line.startswith("#")]
    except OSError:
        return []


# --8<-- [start:resolve-user]
def resolve_user(user: str, layers: list[str]) -> tuple[int, int, str]:
    """Config.User -> (uid, gid, home), with names looked up in the image's /etc/passwd and
    /etc/group (`layers`: the root filesystem's layers, top-most first), as runc and Docker do:

    - "NAME" or "UID": the passwd entry gives the uid, the primary gid and the home; a UID that
      has no entry is still a uid (gid 0, home "/"), a NAME that has none is an error;
    - ":GROUP" or ":GID" replaces the gid, looked up in /etc/group the same way.
    The lookup happens when the container is created, in the image's files (Docker looks when it
    starts, in the container's own: a user added by the container counts there, not here)."""
    name, _, group = user.partition(":")
    uid, gid, home = None, 0, "/"
    for fields in _entries(layers, "etc/passwd"):
        if len(fields) >= 6 and name in (fields[0], fields[2]) and fields[2].isdigit() and fields[3].isdigit():
            uid, gid, home = int(fields[2]), int(fields[3]), fields[5] or "/"
            break
    if uid is None:
        if not name.isdigit():
            raise MinidockerError(f"unable to find user {name}: no matching entries in passwd file",
                                  "use a user of the image's /etc/passwd, or a number: -u UID[:GID]")
        uid = int(name)
    if group:
        found = [f for f in _entries(layers, "etc/group") if len(f) >= 3 and group in (f[0], f[2]) and f[2].isdigit()]
        if found:
            gid = int(found[0][2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise MinidockerError(f"unable to find group {group}: no matching entries in group file",
                                  "use a group of the image's /etc/group, or a number: -u UID:GID")
    _check_range(user, uid, gid)
    return uid, gid, home
# --8<-- [end:resolve-user]


def check(config: dict, host_config: dict, layers: list[str] | None = None) -> None:
    """Refuse what Docker's daemon refuses, with its words where it has them. `layers`: the root
    filesystem's layers, top-most first, where a user name is looked up (None: numbers only)."""
    if not config.get("Cmd") and not config.get("Entrypoint"):
        raise MinidockerError("no command specified", "give one after the image: minidocker run IMAGE CMD")
    if config.get("User"):
        parse_user(config["User"]) if layers is None else resolve_user(config["User"], layers)
    check_settings(config, host_config)


def check_settings(config: dict, host_config: dict) -> None:
    """What dockerd checks first, before it even looks for the image: the request's own values."""
    workdir = config.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise MinidockerError(f"the working directory '{workdir}' is invalid", "it needs to be an absolute path")
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
    from minidocker.container import restart

    restart.validate(host_config)  # chapter 07: --restart
    from minidocker.security import capabilities

    capabilities.check(host_config)  # chapter 08: --cap-add, --cap-drop
    from minidocker.security import userns

    userns.check(host_config, config)  # chapter 08: --userns, and what a remapped engine refuses
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
