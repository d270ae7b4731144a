"""The engine's mounts: HostConfig.Binds, Mounts, Tmpfs, VolumesFrom and the image's Volumes, checked
as dockerd checks them, then turned into the OCI config's `mounts`.

Three steps, so that bad input leaves nothing behind:

    plan(config, host_config)   every rule checked, nothing created  -> mount points
    prepare(points)             named and anonymous volumes created, missing -v sources made
    oci_mounts(points, tmpfs)   the runtime's entries, after Docker's default mounts

A mount point is Docker's MountPoint, as `inspect` shows it under "Mounts" (Type, Name, Source,
Destination, Driver, Mode, RW, Propagation), plus what only the engine needs (fields starting
with "_": dropped before the record is written). See docs/05-volumes.md#the-engine.
"""

import os
import posixpath

from minidocker.errors import EXIT_ENGINE, MinidockerError

RW_MODES = {"rw", "ro"}
LABEL_MODES = {"z", "Z"}  # SELinux relabelling: accepted and ignored, as on a host without SELinux
PROPAGATIONS = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
COPY_MODES = {"nocopy"}
CONSISTENCY_MODES = {"consistent", "cached", "delegated"}  # Docker Desktop's: meaningless on Linux
MODE_KINDS = (RW_MODES, LABEL_MODES, PROPAGATIONS, COPY_MODES, CONSISTENCY_MODES)
TMPFS_DATA = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}
TMPFS_FLAGS = {"ro": "rw", "rw": "rw", "exec": "exec", "noexec": "exec", "suid": "suid", "nosuid": "suid",
               "dev": "dev", "nodev": "dev", "atime": "atime", "noatime": "atime", "diratime": "diratime",
               "nodiratime": "diratime", "strictatime": "strictatime", "nostrictatime": "strictatime",
               "relatime": "relatime", "norelatime": "relatime", "sync": "sync", "async": "sync",
               **{p: "propagation" for p in PROPAGATIONS}}
HINT = "see docs/05-volumes.md#the-flags"


def error(what: str, hint: str = HINT) -> MinidockerError:
    return MinidockerError(what, hint, exit_code=EXIT_ENGINE)


# --8<-- [start:modes]
def valid_mode(mode: str) -> bool:
    """A -v mode ("ro", "ro,z", "rshared,nocopy"): known words, at most one of each kind."""
    if mode == "":
        return True
    words = mode.split(",")
    if any(not any(word in kind for kind in MODE_KINDS) for word in words):
        return False
    return all(sum(word in kind for word in words) <= 1 for kind in MODE_KINDS)
# --8<-- [end:modes]


def check_target(kind: str, target: str) -> str:
    """dockerd's rules for a destination: absolute, not "/"; returned clean ("/a/./b/" -> "/a/b")."""
    if not target:
        raise error(f'invalid mount config for type "{kind}": field Target must not be empty')
    if posixpath.normpath(target) in ("/", "//"):
        raise error(f"invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise error(f"invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be absolute")
    destination = posixpath.normpath(target).replace("//", "/")
    # Over /proc, runc refuses at start; we refuse at create, before anything is made. /sys itself
    # too (its inside may be bound: -v /sys/fs/cgroup:/sys/fs/cgroup:ro is common).
    if destination in ("/proc", "/sys"):
        fstype = "proc" if destination == "/proc" else "sysfs"
        raise error(f'"{destination}" cannot be mounted because it is not of type {fstype}', "choose another target")
    from minidocker.runtime.mounts import PROC_MOUNT_ALLOWED

    if destination.startswith("/proc/") and destination not in PROC_MOUNT_ALLOWED:
        raise error(f'"{destination}" cannot be mounted because it is inside /proc', "choose another target")
    return destination


def check_volume_name(name: str) -> str:
    from minidocker.volume import volumes

    try:
        return volumes.check_name(name)
    except MinidockerError as e:
        e.exit_code = EXIT_ENGINE  # `volume create` exits 1; a refused `run` exits 125
        raise


def point(kind: str, destination: str, source: str = "", name: str = "", rw: bool = True, mode: str = "",
          propagation: str = "", **private) -> dict:
    """A MountPoint in the shape of Docker's inspect (Name and Driver only for volumes)."""
    found = {"Type": kind, **({"Name": name} if kind == "volume" else {}), "Source": source,
             "Destination": destination, **({"Driver": "local"} if kind == "volume" else {}),
             "Mode": mode, "RW": rw, "Propagation": propagation}
    return {**found, **{f"_{key}": value for key, value in private.items()}}


# --8<-- [start:parse-bind]
def parse_bind(raw: str) -> dict:
    """One HostConfig.Binds entry, "SOURCE:TARGET[:MODE]", as dockerd's ParseMountRaw reads it: a
    SOURCE that is an absolute path binds that host path (made if missing); any other SOURCE
    names a volume (made if missing)."""
    fields = raw.split(":")
    if not fields[0] or len(fields) > 3 or (len(fields) == 2 and valid_mode(fields[1])):
        raise error(f"invalid volume specification: '{raw}'")  # "/ctr:ro": a mode needs a source
    source, target = ("", fields[0]) if len(fields) == 1 else (fields[0], fields[1])
    mode = fields[2] if len(fields) == 3 else ""
    if not valid_mode(mode):
        raise error(f"invalid mode: {mode}")
    kind = "bind" if source.startswith("/") else "volume"
    words = mode.split(",")
    try:
        destination = check_target(kind, target)
    except MinidockerError as e:
        raise error(f"invalid volume specification: '{raw}': {e.what}", e.hint) from None
    rw = "ro" not in words
    # A propagation is a bind's option, nocopy a volume's: each refused on the other kind.
    wrong = "VolumeOptions" if kind == "bind" and "nocopy" in words else \
        "BindOptions" if kind == "volume" and PROPAGATIONS.intersection(words) else None
    if wrong:
        raise error(f"invalid volume specification: '{raw}': invalid mount config for type \"{kind}\": "
                    f"field {wrong} must not be specified")
    if kind == "bind":
        propagation = next((w for w in words if w in PROPAGATIONS), "rprivate")
        return point("bind", destination, posixpath.normpath(source), rw=rw, mode=mode,
                     propagation=propagation, create=True)
    # Docker shows a local volume's Mode as "z" when none was given (its SELinux default).
    return point("volume", destination, name=source and check_volume_name(source), rw=rw,
                 mode=mode or "z", copy="nocopy" not in words)
# --8<-- [end:parse-bind]


def parse_mount(spec: dict) -> dict:
    """One HostConfig.Mounts entry (--mount), as dockerd's ParseMountSpec checks it. Unlike -v,
    a bind's source must exist: --mount never creates it."""
    kind, source = spec.get("Type") or "", spec.get("Source") or ""
    bad = f'invalid mount config for type "{kind}"'
    extra = {"bind": ("VolumeOptions", "TmpfsOptions"), "volume": ("BindOptions", "TmpfsOptions"),
             "tmpfs": ("BindOptions", "VolumeOptions")}
    destination = check_target(kind, spec.get("Target") or "")
    if kind not in extra:
        raise error(f"{bad}: mount type unknown", "type is bind, volume or tmpfs")
    for field in extra[kind]:
        if spec.get(field):
            raise error(f"{bad}: field {field} must not be specified")
    rw = not spec.get("ReadOnly")
    if kind == "bind":
        if not source:
            raise error(f"{bad}: field Source must not be empty")
        if not source.startswith("/"):
            raise error(f"{bad}: invalid mount path: '{source}' mount path must be absolute")
        propagation = (spec.get("BindOptions") or {}).get("Propagation") or "rprivate"
        if propagation not in PROPAGATIONS:
            raise error(f"{bad}: invalid propagation mode: {propagation}")
        if not os.path.exists(source):
            raise error(f"{bad}: bind source path does not exist: {source}", "make it first; -v would have made it")
        return point("bind", destination, posixpath.normpath(source), rw=rw, propagation=propagation)
    if kind == "volume":
        if not rw and not source:
            raise error(f"{bad}: must not set ReadOnly mode when using anonymous volumes")
        options = spec.get("VolumeOptions") or {}
        driver = (options.get("DriverConfig") or {}).get("Name") or "local"
        if driver != "local":
            raise error(f'error looking up volume plugin {driver}: plugin "{driver}" not found',
                        "minidocker has the local driver only")
        return point("volume", destination, name=source and check_volume_name(source), rw=rw, mode="z",
                     copy=not options.get("NoCopy"), labels=options.get("Labels"),
                     options=(options.get("DriverConfig") or {}).get("Options"))
    if source:
        raise error(f"{bad}: field Source must not be specified")
    return point("tmpfs", destination, rw=rw, tmpfs=tmpfs_data(spec.get("TmpfsOptions") or {}, rw))


def tmpfs_data(options: dict, rw: bool) -> str:
    """--mount's tmpfs-size and tmpfs-mode as mount data: "size=64m,mode=1770" (dockerd's words)."""
    data = [] if rw else ["ro"]
    if options.get("Mode"):
        data.append(f"mode={options['Mode']:o}")
    size = options.get("SizeBytes") or 0
    if size:
        suffix = next(((s, d) for s, d in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)) if size % d == 0), ("", 1))
        data.append(f"size={size // suffix[1]}{suffix[0]}")
    return ",".join(data)


def merge_tmpfs_options(options: list[str]) -> list[str]:
    """Docker's defaults then the user's words, the last of each kind winning (MergeTmpfsOptions):
    ["noexec", ..., "exec"] keeps "exec"; two size= keep the last."""
    seen, merged = set(), []
    for option in reversed(options):
        if option == "defaults":
            continue
        key = TMPFS_FLAGS.get(option)
        if key is None:
            name, eq, _ = option.partition("=")
            if not eq or name not in TMPFS_DATA:
                raise error(f'invalid tmpfs option ["{option}"]', "e.g. --tmpfs /run:size=64m,mode=1777")
            key = f"{name}="
        if key not in seen:
            seen.add(key)
            merged.insert(0, option)
    return merged


def tmpfs_options(data: str) -> list[str]:
    return merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate"] + (data.split(",") if data else []))


def volumes_from(spec: str) -> list[dict]:
    """--volumes-from CONTAINER[:ro|rw]: that container's mount points, at the same places; a mode
    of "ro" makes them all read-only, "rw" (or none) keeps each one as it was."""
    from minidocker.container import records

    if not spec:
        raise error("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    words = mode.split(",") if mode else []
    if not valid_mode(mode) or any(w in PROPAGATIONS or w in COPY_MODES for w in words):
        raise error(f"invalid mode: {mode}")
    source = records.find(ref)  # "No such container: …"
    copied = []
    for found in source.record.get("Mounts") or []:
        copied.append({**found, "RW": found["RW"] and "ro" not in words, "_copy": False})
    return copied


def plan(config: dict, host_config: dict) -> list[dict]:
    """Every mount of a create request, checked, in dockerd's order: --volumes-from, then -v, then
    --mount; a later one takes an earlier --volumes-from's place, two of -v/--mount/--tmpfs at one
    place are refused. Then an anonymous volume for each of Config.Volumes (the request's -v /ctr
    and the image's VOLUME, merged) that nothing covers yet. Nothing is created."""
    points: dict[str, dict] = {}
    for spec in host_config.get("VolumesFrom") or []:
        points.update((p["Destination"], p) for p in volumes_from(spec))
    taken: set[str] = set()
    tmpfs = {}
    for target, data in (host_config.get("Tmpfs") or {}).items():
        destination = check_target("tmpfs", target)
        tmpfs_options(data)  # a bad option is refused now, not at start
        tmpfs[destination] = data
    taken.update(tmpfs)
    parsed = [parse_bind(raw) for raw in host_config.get("Binds") or []]
    parsed += [parse_mount(spec) for spec in host_config.get("Mounts") or []]
    for found in parsed:
        if found["Destination"] in taken:
            raise error(f"Duplicate mount point: {found['Destination']}", "one mount per target")
        taken.add(found["Destination"])
        points[found["Destination"]] = found
    for target in config.get("Volumes") or {}:  # the request's and the image's, merged
        destination = check_target("volume", target)
        if destination not in points and destination not in tmpfs:
            points[destination] = point("volume", destination, copy=True)
    return sorted(points.values(), key=lambda p: p["Destination"].count("/"))  # parents first


# --8<-- [start:prepare]
def prepare(points: list[dict], container_id: str) -> list[dict]:
    """Make what the mount points need: a -v bind's missing host directory, the named volumes
    that do not exist yet, a new anonymous volume for each unnamed one. Returns them with their
    Source (a volume's _data directory) filled in."""
    if not points:
        return []
    from minidocker.volume import volumes

    ready = []
    for p in points:
        p = dict(p)
        if p["Type"] == "bind" and p.get("_create") and not os.path.exists(p["Source"]):
            os.makedirs(p["Source"], 0o755)  # -v makes a missing source; --mount refused it in plan()
        elif p["Type"] == "volume" and not p["Source"]:
            volume = volumes.create(p["Name"] or None, labels=p.get("_labels"), options=p.get("_options"),
                                    anonymous=not p["Name"])
            p.update(Name=volume["Name"], Source=volume["Mountpoint"])
        ready.append(p)
    return ready
# --8<-- [end:prepare]


def public(points: list[dict]) -> list[dict]:
    """The mount points as the container's record keeps them and `inspect` shows them under "Mounts":
    only Docker's fields (a --mount tmpfs keeps its options in the private _tmpfs, for the spec)."""
    return [{k: v for k, v in p.items() if not k.startswith("_")} for p in points]


# --8<-- [start:oci-mounts]
def oci_mounts(points: list[dict], tmpfs: dict | None) -> list[dict]:
    """The OCI `mounts` entries, as dockerd writes them for runc: a bind or volume is an "rbind" of
    its source (a volume's _data), "ro" when read-only, and a bind's propagation (rprivate unless
    asked); a tmpfs is Docker's noexec,nosuid,nodev,rprivate with the user's options over them."""
    entries = []
    for p in points:
        # --8<-- [start:ex-05-mount-entry]
        # Append the runtime's entry for the mount point `p`: a tmpfs is {"destination", "type":
        # "tmpfs", "source": "tmpfs", "options": tmpfs_options(DATA)}, DATA being p["_tmpfs"] when
        # set, else "ro" when not RW; a bind or a volume is a "bind" of its Source (a volume's
        # _data) with the options "rbind", then "ro" when not RW, then its Propagation if any.
        #
        # "rbind", not "bind": a host directory with mounts below it (a /mnt holding a USB disk)
        # shows them in the container too. The runtime mounts it inside the new root, before
        # pivot_root, and remounts it read-only in a second call (docs/05-volumes.md#the-safe-mount).
        if p["Type"] == "tmpfs":
            entries.append({"destination": p["Destination"], "type": "tmpfs", "source": "tmpfs",
                            "options": tmpfs_options(p.get("_tmpfs", "" if p["RW"] else "ro"))})
            continue
        options = ["rbind"] + ([] if p["RW"] else ["ro"]) + ([p["Propagation"]] if p["Propagation"] else [])
        entries.append({"destination": p["Destination"], "type": "bind", "source": p["Source"], "options": options})
        # --8<-- [end:ex-05-mount-entry]
    for destination, data in (tmpfs or {}).items():
        entries.append({"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": tmpfs_options(data)})
    return sorted(entries, key=lambda e: posixpath.normpath(e["destination"]).count("/"))
# --8<-- [end:oci-mounts]


def with_defaults(defaults: list[dict], user: list[dict]) -> list[dict]:
    """Docker's default mounts, less those a user mount replaces (a --tmpfs /dev/shm), then the user's."""
    taken = {e["destination"] for e in user}
    return [e for e in defaults if e["destination"] not in taken] + user


# ---------------------------------------------------------------------------------------------
# At start and stop, at removal

def copy_ups(points: list[dict]) -> list[dict]:
    """What to fill at start: each volume that copies the image's content (not nocopy, not from
    --volumes-from), by name and destination."""
    return [{"Name": p["Name"], "Destination": p["Destination"]}
            for p in points if p["Type"] == "volume" and p.get("_copy")]


def setup(c) -> None:
    """Before a container starts: each volume's driver mount (a -o type=tmpfs volume), then the
    copy-up of the image's content into a volume that is still empty (Docker does it on first use)."""
    minidocker = c.spec.get("minidocker", {})
    if not volume_points(c):
        return  # no volume: nothing to import or do (every `run` passes here)
    from minidocker.volume import copyup, volumes

    try:
        data = {p["Name"]: volumes.mount_for(p["Name"], c.id) for p in volume_points(c)}
    except MinidockerError as e:
        e.exit_code = EXIT_ENGINE  # the driver's mount failed: `run`/`start` exit 125, as Docker's
        raise
    overlay = minidocker.get("overlay")
    lowerdirs = [overlay["upperdir"], *overlay["lowerdirs"]] if overlay else [c.spec["root"]["path"]]
    for wanted in minidocker.get("copyup") or []:
        copyup.fill(data[wanted["Name"]], lowerdirs, wanted["Destination"])


def release(c) -> None:
    """After a container stopped: let go of its volumes (the last user out unmounts a driver mount)."""
    if not volume_points(c):
        return
    from minidocker.volume import volumes

    for p in volume_points(c):
        try:
            volumes.release(p["Name"], c.id)
        except MinidockerError:
            continue  # removed meanwhile (volume rm -f): nothing to release


def volume_points(c) -> list[dict]:
    return [p for p in c.record.get("Mounts") or [] if p["Type"] == "volume"]


def remove_anonymous(record: dict) -> None:
    """`rm -v` and `run --rm`: remove the container's anonymous volumes, never a named one; one
    that another container still uses (--volumes-from) stays, as with Docker."""
    from minidocker.volume import volumes

    for p in record.get("Mounts") or []:
        if p["Type"] != "volume":
            continue
        try:
            if volumes.is_anonymous(volumes.get(p["Name"])):
                volumes.remove(p["Name"])
        except MinidockerError:
            continue
