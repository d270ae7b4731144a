"""User namespaces: container root is an unprivileged user of the host.

Every other lock of this chapter takes powers away from root in the container. A user namespace
changes *who* that root is: inside, uid 0 with every capability over what the namespace owns;
outside, uid 100000, a user the host has never heard of. A process that escapes the other locks
(a kernel bug, a bind mount it should not have had) lands on the host as nobody in particular:
it cannot read root's 0600 files, and what it writes belongs to 100000.

Docker's model, which we follow (dockerd --userns-remap, docs/08-hardening.md#user-namespaces):

- The switch is the *engine's*, not the container's: `minidocker daemon --userns-remap=VALUE`,
  or MINIDOCKER_USERNS_REMAP=VALUE for the daemonless CLI. VALUE is `default` (a user named
  `mdremap`, made on first need, as Docker makes `dockremap`) or USER[:GROUP], a user whose ranges
  /etc/subuid and /etc/subgid list ("mdremap:100000:65536": 65536 ids from 100000). Off unless set.
- Every container then gets a "user" namespace with linux.uidMappings/gidMappings: container id 0
  -> the range's first id, as many ids as the range holds. `--userns=host` opts one container out,
  and --privileged, --network host (and Docker's --pid host) need that opt-out.
- The files must be owned to match. An image's layers belong to host root; seen from the
  container they would belong to nobody (65534), and root inside could not write its own /etc.
  Docker keeps a second layer store per remapping (/var/lib/docker/100000.100000/) with the
  layers copied and chowned by the offset; we do the same under $MINIDOCKER_ROOT/100000.100000/.
  The container's writable layer, its init layer and its /etc/hosts, resolv.conf and hostname are
  chowned to the mapped root when it starts (remapped_files.py).

Why a chowned copy and not an idmapped mount (mount_setattr(MOUNT_ATTR_IDMAP), which shows a
directory with its ids shifted and copies nothing)? Overlayfs accepts idmapped layers from Linux
5.19, but the filesystem under the layers must support idmapped mounts too: tmpfs does only from
6.3, and Debian 12 runs 6.1. The copy works on every kernel and filesystem, costs a layer's size
once per remapping, and is what Docker's userns-remap does.

The runtime's side (runtime/spawn.py): the user namespace must exist, with its maps written,
before the namespaces it will own are made, the PID namespace included (mounting proc needs
CAP_SYS_ADMIN in the user namespace that owns the PID namespace).
"""

import fcntl
import grp
import os
import pwd

from minidocker.errors import MinidockerError

ENV = "MINIDOCKER_USERNS_REMAP"  # the daemonless CLI's switch; the daemon's flag sets it too
DEFAULT_USER = "mdremap"  # Docker's is "dockremap"
RANGE_START, RANGE_SIZE = 100000, 65536  # where a new range may start, and how many ids it holds
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"


def setting() -> str:
    """The engine's --userns-remap: "" (off), "default" or "USER[:GROUP]"."""
    return os.environ.get(ENV, "").strip()


def check(host_config: dict, config: dict | None = None) -> None:
    """At create, before anything is made: --userns's value, and Docker's conflicts."""
    mode = host_config.get("UsernsMode") or ""
    if mode not in ("", "host"):
        raise MinidockerError(f"invalid UsernsMode: {mode}", "--userns takes only host")
    if not setting() or mode == "host":
        return
    if host_config.get("Privileged"):
        raise MinidockerError("privileged mode is incompatible with user namespaces.  You must run the container "
                              "in the host namespace when running privileged mode", "add --userns=host")
    if host_config.get("NetworkMode") == "host":
        raise MinidockerError("cannot share the host's network namespace when user namespaces are enabled",
                              "add --userns=host")
    image = (config or {}).get("Image") or ""
    if image.startswith("/") and not image.endswith(":O"):
        # The runtime would use the directory as it is, and its files are the host root's: root
        # inside could not even make the mount points of /etc/hosts. (DIR:O has an init layer.)
        raise MinidockerError(f"--rootfs {image} cannot be used with user namespaces: its files belong to the "
                              "host's root", "use --rootfs DIR:O, or --userns=host")
    remap()  # the user and its ranges must be there: say so now, not at start


# --8<-- [start:to-spec]
def to_spec(spec: dict, host_config: dict) -> None:
    """The remapping (and HostConfig.UsernsMode) -> linux.uidMappings, linux.gidMappings and a
    "user" namespace; the image's layers -> their copies owned by the mapped ids."""
    if not setting() or host_config.get("UsernsMode") == "host":
        return
    uids, gids = remap()
    linux = spec["linux"]
    # A new one: the runtime makes it before the others, which it then owns (runtime/userns.py).
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"], linux["gidMappings"] = mappings(uids), mappings(gids)
    overlay = spec.get("minidocker", {}).get("overlay")
    if overlay:  # [init layer, image layers...]: the image's from the remapped store
        from minidocker.security.remapped_files import remapped_layer

        overlay["lowerdirs"] = overlay["lowerdirs"][:1] + [remapped_layer(d, linux) for d in overlay["lowerdirs"][1:]]
# --8<-- [end:to-spec]


def mappings(ranges: list[tuple[int, int]]) -> list[dict]:
    """Ranges of the host, [(100000, 65536)], -> OCI mappings: container ids from 0, one after another."""
    found, inside = [], 0
    for start, size in ranges:
        found.append({"containerID": inside, "hostID": start, "size": size})
        inside += size
    return found


def to_host(ident: int, maps: list[dict]) -> int:
    """A container's uid (or gid) as the host sees it, through the OCI mappings `maps`."""
    # --8<-- [start:ex-08-id-map]
    # Find the mapping whose ids inside (containerID, and `size` of them) hold `ident`, and return
    # the id at the same offset from its hostID. None holds it: fall through to the error below.
    #
    # The kernel does the same sum with /proc/PID/uid_map on every permission check.
    for m in maps:
        if m["containerID"] <= ident < m["containerID"] + m["size"]:
            return m["hostID"] + ident - m["containerID"]
    # --8<-- [end:ex-08-id-map]
    raise MinidockerError(f"Container ID {ident} cannot be mapped to a host ID", "the range in /etc/subuid is too small")


NOBODY = 65534  # the kernel's overflowuid: what a process inside sees for an id the map lacks


# --8<-- [start:to-container]
def to_container(ident: int, maps: list[dict]) -> int:
    """A host's uid (or gid) as the container sees it: to_host's inverse. What leaves a remapped
    container (commit's layer, export's tar, cp's files) is written with these ids, so that an
    image committed there has root's files like any other image."""
    for m in maps:
        if m["hostID"] <= ident < m["hostID"] + m["size"]:
            return m["containerID"] + ident - m["hostID"]
    # Not in the map: a host's file (in a bind-mounted directory, or a --rootfs DIR:O). Inside,
    # `stat` shows it as nobody's, and so does the tar. (Docker's tar writer fails instead.)
    return NOBODY
# --8<-- [end:to-container]


def header_to_container(info, spec: dict):
    """A tar header (tarfile.TarInfo) of a remapped container's file, as the host sees it -> the
    ids the container sees; `spec` is the container's OCI config. The host's names for those
    ids would mean nothing in an image: numbers only. A container with no maps: left as it is."""
    maps = spec.get("linux", {})
    if maps.get("uidMappings"):
        info.uid = to_container(info.uid, maps["uidMappings"])
        info.gid = to_container(info.gid, maps["gidMappings"])
        info.uname = info.gname = ""
        for key in ("uid", "gid", "uname", "gname"):  # a PAX record of the old ids would win over ours
            info.pax_headers.pop(key, None)
    return info


def header_to_host(info, spec: dict):
    """The other way, for a tar going *into* a remapped container: the header's ids are the
    container's (root's file: 0), the file on disk gets the host's (100000)."""
    maps = spec.get("linux", {})
    if maps.get("uidMappings"):
        info.uid = to_host(info.uid, maps["uidMappings"])
        info.gid = to_host(info.gid, maps["gidMappings"])
        info.uname = info.gname = ""
    return info


# ---------------------------------------------------------------------------------------------
# The remapping's user and its subordinate ranges (/etc/subuid, /etc/subgid)


def remap() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(uid ranges, gid ranges) of the engine's setting; `default` makes mdremap when missing."""
    value = setting()
    if value == "default":
        ensure_default_user()
        value = DEFAULT_USER
    user, _, group = value.partition(":")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        raise MinidockerError(f'unable to find user {user}: no matching entries in passwd file',
                              f"check {ENV} or --userns-remap (default, or USER[:GROUP])") from None
    group = group or entry.pw_name  # Docker: the group defaults to the user's name
    try:
        gid_name = grp.getgrgid(int(group)).gr_name if group.isdigit() else grp.getgrnam(group).gr_name
    except (KeyError, ValueError):
        raise MinidockerError(f"unable to find group {group}", f"check {ENV} or --userns-remap") from None
    uids = ranges_of(SUBUID, entry.pw_name, entry.pw_uid)
    gids = ranges_of(SUBGID, gid_name, grp.getgrnam(gid_name).gr_gid)
    if not uids:
        raise MinidockerError(f'no subuid ranges found for user "{entry.pw_name}"', f"add one to {SUBUID}")
    if not gids:
        raise MinidockerError(f'no subgid ranges found for group "{gid_name}"', f"add one to {SUBGID}")
    return uids, gids


def ranges_of(path: str, name: str, ident: int) -> list[tuple[int, int]]:
    """The ranges that `path` gives to `name` (or to its number): lines "name:start:count"."""
    found = []
    for owner, start, count in read_ranges(path):
        if owner in (name, str(ident)):
            found.append((start, count))
    return found


def read_ranges(path: str) -> list[tuple[str, int, int]]:
    try:
        with open(path) as f:
            lines = [line.strip().split(":") for line in f]
    except FileNotFoundError:
        return []
    return [(p[0], int(p[1]), int(p[2])) for p in lines if len(p) == 3 and p[1].isdigit() and p[2].isdigit()]


def free_range(path: str) -> int:
    """The first start from 100000 where RANGE_SIZE ids overlap no range that `path` gives anyone."""
    start = RANGE_START
    for _, begin, count in sorted(read_ranges(path), key=lambda r: r[1]):
        if begin < start + RANGE_SIZE and start < begin + count:
            start = begin + count
    return start


def ensure_default_user() -> None:
    """mdremap, as dockerd makes dockremap: a system user (no login, no home), and one free range of
    65536 ids in /etc/subuid and /etc/subgid, added with usermod (shadow's tools lock the files)."""
    os.makedirs("/run/minidocker", exist_ok=True)
    with open("/run/minidocker/userns.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two engines starting at once make one user, one range
        try:
            pwd.getpwnam(DEFAULT_USER)
        except KeyError:
            _tool("useradd", "--system", "--shell", "/bin/false", "--no-create-home", "--user-group", DEFAULT_USER)
        uid, gid = pwd.getpwnam(DEFAULT_USER).pw_uid, grp.getgrnam(DEFAULT_USER).gr_gid
        for path in (SUBUID, SUBGID):  # usermod refuses to add ranges to a file that is not there
            if not os.path.exists(path):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        if not ranges_of(SUBUID, DEFAULT_USER, uid):
            start = free_range(SUBUID)
            _tool("usermod", "--add-subuids", f"{start}-{start + RANGE_SIZE - 1}", DEFAULT_USER)
        if not ranges_of(SUBGID, DEFAULT_USER, gid):
            start = free_range(SUBGID)
            _tool("usermod", "--add-subgids", f"{start}-{start + RANGE_SIZE - 1}", DEFAULT_USER)


def _tool(*argv: str) -> None:
    import subprocess  # here: only the first remapped container of a machine makes the user

    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise MinidockerError(f"cannot set up user {DEFAULT_USER}: {' '.join(argv)}: {done.stderr.strip()}",
                              "add the user and its ranges in /etc/subuid and /etc/subgid by hand")
