"""The volume store and Docker's `local` volume driver: create, get, list, remove, prune, and the
mount that a volume with options gets while containers use it.

    $MINIDOCKER_ROOT/volumes/<name>/
        _data          the volume's data: what a container sees at its mount point (Docker's path)
        volume.json    Docker's Volume object: CreatedAt, Driver, Labels, Mountpoint, Name, Options, Scope
        users.json     who uses a mounted volume right now (only a volume with -o options has one)

A plain volume is just the directory `_data`, bind-mounted into each container that names it. With
options (`-o type=tmpfs -o device=tmpfs`, `-o type=none -o o=bind -o device=/srv/x`, `-o type=ext4
-o device=/dev/sdb1`) Docker's local driver mounts that filesystem *on* `_data`, on the host, when the
first container starts with it, and unmounts it when the last one stops. See docs/05-volumes.md.

Every change holds the store's lock (volumes/.lock); a volume appears by the rename of a complete
temporary directory and disappears by a rename before its files are deleted, so whatever kills a
command, `volume ls` sees a whole volume or none. A name must start with a letter or digit, so
`.lock` and `.tmp-…` can never be taken for volumes.
"""

import os
import re
import stat
import time

from minidocker import linux, store
from minidocker.errors import MinidockerError

DRIVER = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # what Docker 23+ puts on a container's anonymous volumes
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
# --8<-- [start:name]
# Docker's rule for a local volume's name. It is also what keeps a name a single path component:
# no "/", and never "." or ".." (a name starts with a letter or digit), so volumes/<name> stays
# inside volumes/ whatever a user types.
VALID_NAME = re.compile(NAME_CHARS + r"+\Z")
# --8<-- [end:name]
# The local driver's options (`-o KEY=VALUE`), and which others each one needs, as dockerd checks them.
VALID_OPTIONS = ("type", "o", "device", "size")
REQUIRED_WITH = {"type": ("device",), "device": ("type",), "o": ("type", "device")}
EXIT_CLI = 1  # the docker CLI's volume commands exit 1 when the daemon refuses (125 is for bad flags)


def error(op: str, name: str, what: str, hint: str = "") -> MinidockerError:
    """dockerd's volume errors read "OP NAME: WHAT", e.g. "remove data: volume is in use - [...]"."""
    return MinidockerError(f"{op} {name}: {what}", hint, exit_code=EXIT_CLI)


def volumes_dir() -> str:
    return store.directory("volumes")


def _dir(name: str) -> str:
    return os.path.join(volumes_dir(), name)


def data_dir(name: str) -> str:
    return os.path.join(os.path.abspath(volumes_dir()), name, "_data")


def check_name(name: str, op: str = "create") -> str:
    if len(name) == 1:
        raise error(op, name, "volume name is too short, names should be at least two alphanumeric characters",
                    "e.g. minidocker volume create data")
    if not VALID_NAME.match(name):
        raise error(op, name, f'"{name}" includes invalid characters for a local volume name, only "{NAME_CHARS}" '
                              "are allowed", "If you intended to pass a host directory, use absolute path")
    return name


def check_options(name: str, options: dict) -> None:
    for key in options:
        if key not in VALID_OPTIONS:
            raise error("create", name, f'invalid option: "{key}"', "the local driver takes type, device, o")
    if "size" in options:
        # A size is a project quota (XFS prjquota), which dockerd sets up only on such a filesystem.
        raise error("create", name, "quota size requested but no quota support", "for a sized volume: -o type=tmpfs -o device=tmpfs -o o=size=64m")
    for key, needs in REQUIRED_WITH.items():
        for need in needs if key in options else ():
            if need not in options:
                raise error("create", name, f'missing required option: "{need}"',
                            "e.g. -o type=tmpfs -o device=tmpfs, or -o type=none -o o=bind -o device=/path")


def rfc3339(seconds: float) -> str:
    """Go's time.RFC3339 in local time, as dockerd prints CreatedAt: 2024-05-01T09:30:00Z or …+08:00."""
    t = time.localtime(seconds)
    offset = time.strftime("%z", t)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + zone


# ---------------------------------------------------------------------------------------------
# create, get, list

# --8<-- [start:create]
def create(name: str | None = None, labels: dict | None = None, options: dict | None = None,
           anonymous: bool = False, driver: str = DRIVER) -> dict:
    """POST /volumes/create -> the Volume. Creating a name that exists returns that volume (as
    Docker does: `docker volume create data` twice is fine), whatever labels or options were asked."""
    if driver != DRIVER:
        raise error("create", name or "", f'error looking up volume plugin {driver}: plugin "{driver}" not found',
                    "minidocker has the local driver only")
    name = check_name(name) if name is not None else store.new_id()  # 64 hex digits, as Docker names them
    check_options(name, options or {})
    if anonymous:
        labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
    base = volumes_dir()
    with store.lock(base):
        try:
            return get(name)
        except MinidockerError:
            pass
        # Built complete under a temporary name, then renamed: a create that is killed half-way
        # leaves a .tmp- directory (cleaned by the next removal), never a volume without its JSON.
        tmp = os.path.join(base, f".tmp-{os.urandom(8).hex()}")
        os.mkdir(tmp, 0o755)
        os.mkdir(os.path.join(tmp, "_data"), 0o755)
        volume = {"CreatedAt": rfc3339(time.time()), "Driver": DRIVER, "Labels": labels,
                  "Mountpoint": data_dir(name), "Name": name, "Options": options, "Scope": "local"}
        store.write_json(os.path.join(tmp, "volume.json"), volume)
        os.rename(tmp, os.path.join(base, name))
    return volume
# --8<-- [end:create]


def get(name: str) -> dict:
    """GET /volumes/{name}. A name that cannot be a volume is not looked up on disk at all."""
    if not VALID_NAME.match(name):
        raise error("get", name, "no such volume", "see `minidocker volume ls`")
    try:
        return store.read_json(os.path.join(_dir(name), "volume.json"))
    except (FileNotFoundError, NotADirectoryError):
        raise error("get", name, "no such volume", "see `minidocker volume ls`") from None


def list_volumes() -> list[dict]:
    found = []
    for entry in os.listdir(volumes_dir()):
        if VALID_NAME.match(entry):  # not .lock, .tmp-…
            try:
                found.append(get(entry))
            except MinidockerError:  # removed while we looked
                continue
    return found


def is_anonymous(volume: dict) -> bool:
    return ANONYMOUS_LABEL in (volume.get("Labels") or {})


def in_use() -> dict[str, list[str]]:
    """{volume name: [ids of the containers that use it]}, from every container's record, whatever
    its state: Docker refuses to remove a volume that even a stopped container names."""
    from minidocker.container import records

    users: dict[str, list[str]] = {}
    for c in records.all_containers():
        for name in volume_names(c.record):
            users.setdefault(name, []).append(c.id)
    return users


def volume_names(record: dict) -> set[str]:
    """The volumes a container record names: its Mounts (Docker's MountPoint list), and its
    HostConfig's -v NAME:/path and --mount type=volume as a fallback."""
    names = {m["Name"] for m in record.get("Mounts") or () if m.get("Type") == "volume" and m.get("Name")}
    host = record.get("HostConfig") or {}
    for bind in host.get("Binds") or ():
        source = bind.split(":", 1)[0]
        if ":" in bind and VALID_NAME.match(source):
            names.add(source)
    for m in host.get("Mounts") or ():
        if m.get("Type") == "volume" and m.get("Source"):
            names.add(m["Source"])
    return names


# ---------------------------------------------------------------------------------------------
# remove, prune

def remove(name: str, force: bool = False) -> None:
    """DELETE /volumes/{name}. Refused while any container uses it, even with force (force only
    makes a missing volume no error), as dockerd does."""
    try:
        volume = get(name)
    except MinidockerError:
        if force:
            return
        raise
    name = volume["Name"]
    with store.lock(volumes_dir()):
        users = in_use().get(name)
        if users:
            raise error("remove", name, f"volume is in use - [{', '.join(users)}]",
                        "remove the containers that use it first")
        _delete(name)


def _delete(name: str) -> None:
    """Unmount a driver's leftover mount, rename the volume out of sight, then delete its files.
    Called with the lock held."""
    base = volumes_dir()
    data = data_dir(name)
    if _mounted(data):  # a tmpfs or bind of a volume whose container died without release()
        linux.umount2(data, linux.MNT_DETACH)
    if _mounts_under(os.path.join(base, name)):
        raise error("remove", name, "something is still mounted inside the volume", "unmount it first")
    doomed = os.path.join(base, f".tmp-rm-{name}-{os.urandom(4).hex()}")
    os.rename(os.path.join(base, name), doomed)  # from here on, the volume is gone as a whole
    _remove_tree(doomed)
    for entry in os.listdir(base):  # what killed creates and removals left behind
        if entry.startswith(".tmp-"):
            _remove_tree(os.path.join(base, entry))


def _remove_tree(path: str) -> None:
    # rmtree goes down into mount points: under a bind-mounted volume it would delete the host's
    # own directory. So nothing is deleted while anything under `path` is still mounted.
    if _mounts_under(path):
        return
    import shutil  # only a removal needs it; every import slows a container's start

    shutil.rmtree(path, ignore_errors=True)


def data_size(name: str) -> int:
    """The size of a volume's files, each hard-linked file once (what prune reports reclaiming)."""
    seen, total = set(), 0
    for dirpath, _, files in os.walk(data_dir(name)):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def prune(all: bool = False) -> dict:
    """POST /volumes/prune: every volume no container uses; since Docker 23 only the anonymous
    ones unless all=true (the API's filter `all`). -> {"VolumesDeleted", "SpaceReclaimed"}."""
    deleted, reclaimed = [], 0
    with store.lock(volumes_dir()):
        used = in_use()
        for volume in sorted(list_volumes(), key=lambda v: v["Name"]):
            name = volume["Name"]
            if name in used or not (all or is_anonymous(volume)):
                continue
            size = data_size(name)
            _delete(name)
            deleted.append(name)
            reclaimed += size
    return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}


# ---------------------------------------------------------------------------------------------
# The local driver's mount: on _data, while containers use the volume

# mount(8)'s option words that are flags of mount(2); every other word (size=64m, uid=1000) is
# the filesystem's own and goes in the data string. True: the word clears the flag.
MOUNT_FLAGS = {
    "ro": (False, linux.MS_RDONLY), "rw": (True, linux.MS_RDONLY),
    "nosuid": (False, linux.MS_NOSUID), "suid": (True, linux.MS_NOSUID),
    "nodev": (False, linux.MS_NODEV), "dev": (True, linux.MS_NODEV),
    "noexec": (False, linux.MS_NOEXEC), "exec": (True, linux.MS_NOEXEC),
    "sync": (False, linux.MS_SYNCHRONOUS), "async": (True, linux.MS_SYNCHRONOUS),
    "noatime": (False, linux.MS_NOATIME), "nodiratime": (False, linux.MS_NODIRATIME),
    "relatime": (False, linux.MS_RELATIME), "strictatime": (False, linux.MS_STRICTATIME),
    "bind": (False, linux.MS_BIND), "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "defaults": (False, 0),
}


def parse_mount_options(text: str) -> tuple[int, str]:
    """"size=64m,uid=1000,noexec" -> (MS_NOEXEC, "size=64m,uid=1000"), as mount(8) splits them."""
    flags, data = 0, []
    for word in filter(None, text.split(",")):
        if word in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[word]
            flags = flags & ~flag if clear else flags | flag
        else:
            data.append(word)
    return flags, ",".join(data)


def needs_mount(volume: dict) -> bool:
    options = volume.get("Options") or {}
    return bool(options.get("type") or options.get("device"))


def _mount(volume: dict, data: str) -> None:
    options = volume["Options"]
    fstype, device = options.get("type", ""), options.get("device", "")
    flags, extra = parse_mount_options(options.get("o", ""))
    try:
        if flags & linux.MS_BIND:
            # A bind mount ignores every other flag: they take a second call, a remount of the bind.
            linux.mount(device, data, None, flags & (linux.MS_BIND | linux.MS_REC))
            if flags & ~(linux.MS_BIND | linux.MS_REC):
                linux.mount(None, data, None, flags | linux.MS_REMOUNT)
        else:
            linux.mount(device, data, fstype or None, flags, extra or None)
    except OSError as e:
        # dockerd's words; the errno as Go spells it ("no such file or directory").
        why = os.strerror(e.errno).lower() if e.errno else str(e)
        raise MinidockerError(f"error while mounting volume '{data}': failed to mount local volume: mount "
                              f"{device}:{data}, flags: {hex(flags)}, data: {extra}: {why}",
                              "check the volume's -o type=, device= and o=", exit_code=EXIT_CLI) from None


def _users_path(name: str) -> str:
    return os.path.join(_dir(name), "users.json")


def mount_for(name: str, user: str = "") -> str:
    """The directory to bind into a container: `_data`, with the driver's filesystem mounted on it
    first when the volume has options and is not mounted yet. `user` (a container id) is recorded,
    so that release(name, user) twice is no harm."""
    volume = get(name)
    data = data_dir(name)
    if not needs_mount(volume):
        return data
    with store.lock(volumes_dir()):
        users = _read_users(name)
        if not _mounted(data):
            users = []  # not mounted (a reboot, a cleaned leak): whoever was listed is gone
            _mount(volume, data)
        store.write_json(_users_path(name), users + [user])
    return data


def release(name: str, user: str = "") -> None:
    """A container no longer uses the volume: the last one out unmounts the driver's filesystem."""
    try:
        volume = get(name)
    except MinidockerError:
        return
    if not needs_mount(volume):
        return
    data = data_dir(name)
    with store.lock(volumes_dir()):
        users = _read_users(name)
        if user in users:
            users.remove(user)
        if not users and _mounted(data):
            linux.umount2(data, linux.MNT_DETACH)
        store.write_json(_users_path(name), users)


def _read_users(name: str) -> list[str]:
    try:
        return store.read_json(_users_path(name))
    except FileNotFoundError:
        return []


def _mount_points() -> list[str]:
    """Every mount point in our mount namespace. (A bind of a directory on the same filesystem has
    the parent's st_dev, so os.path.ismount() cannot see it: the kernel's table can.)"""
    with open("/proc/self/mountinfo") as f:
        # mountinfo escapes a space, tab, newline and backslash in a path as \\040 and so on.
        return [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4]) for line in f]


def _mounted(path: str) -> bool:
    return os.path.realpath(path) in _mount_points()


def _mounts_under(path: str) -> list[str]:
    top = os.path.realpath(path)
    return [p for p in _mount_points() if p == top or p.startswith(top + "/")]
