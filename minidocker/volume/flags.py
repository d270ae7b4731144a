"""-v, --mount, --tmpfs and --volumes-from, as the docker CLI turns them into the create request.

The docker CLI checks only the shape of these flags; what they mean is the engine's to judge
(volume/mounts.py). What it sends:

    -v /host:/ctr:ro        HostConfig.Binds   ["/host:/ctr:ro"]   (./dir made absolute first)
    -v data:/ctr            HostConfig.Binds   ["data:/ctr"]       (a name: a named volume)
    -v /ctr                 Config.Volumes     {"/ctr": {}}        (no source: an anonymous volume)
    --mount type=bind,src=/host,dst=/ctr,ro
                            HostConfig.Mounts  [{"Type": "bind", "Source": "/host", "Target": "/ctr", "ReadOnly": true}]
    --tmpfs /run:size=64m   HostConfig.Tmpfs   {"/run": "size=64m"}
    --volumes-from web:ro   HostConfig.VolumesFrom ["web:ro"]

See docs/05-volumes.md#the-flags.
"""

import csv
import os

from minidocker.errors import MinidockerError

HINT_V = "use -v /host/dir:/ctr[:ro], -v NAME:/ctr[:ro] or -v /ctr"
HINT_MOUNT = "use --mount type=bind|volume|tmpfs,source=…,target=/ctr[,readonly]"


def split_volume(spec: str) -> tuple[str, str]:
    """(source, target) of a -v value, read as the docker CLI's compose loader reads it: colons
    separate source, target and options; one field alone (or a value of 1-2 characters) is the
    target of an anonymous volume."""
    if not spec:
        raise MinidockerError("invalid empty volume spec", HINT_V)
    if len(spec) <= 2:
        return "", spec
    fields = spec.split(":")
    if any(not field for field in fields):
        raise MinidockerError(f"invalid spec: {spec}: empty section between colons", HINT_V)
    if len(fields) > 3:
        raise MinidockerError(f"invalid spec: {spec}: too many colons", HINT_V)
    return ("", fields[0]) if len(fields) == 1 else (fields[0], fields[1])


def volume_flags(values: list[str]) -> tuple[list[str] | None, dict | None]:
    """-v values -> (HostConfig.Binds, Config.Volumes): a value with a source is a bind (or a named
    volume: the engine tells them apart), one without is an anonymous volume."""
    binds, anonymous = [], {}
    for spec in values:
        source, _ = split_volume(spec)
        if not source:
            anonymous[spec] = {}
            continue
        if source == "." or source.startswith("./"):
            # Only the docker CLI knows its working directory: it sends an absolute path.
            spec = os.path.abspath(source) + spec[len(source):]
        binds.append(spec)
    return binds or None, anonymous or None


def _invalid(text: str, why: str) -> MinidockerError:
    return MinidockerError(f'invalid argument "{text}" for "--mount" flag: {why}', HINT_MOUNT)


def _bool(text: str, key: str, value: str) -> bool:
    """Go's strconv.ParseBool, which the docker CLI uses for readonly=, volume-nocopy=..."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise _invalid(text, f"invalid value for {key}: {value}")


def mount_flag(text: str) -> dict:
    """One --mount value (CSV of key=value) -> a HostConfig.Mounts entry (the API's mount.Mount)."""
    from minidocker.cli.create_flags import parse_size  # here: that module imports this one

    mount, bind, volume, tmpfs = {"Type": "volume"}, {}, {}, {}
    for field in next(csv.reader([text])) if text else []:
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq:  # a few keys may stand alone and mean "true"
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
            elif key == "volume-nocopy":
                volume["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bind["NonRecursive"] = True
            else:
                raise _invalid(text, f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            mount["Type"] = value.lower()
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(text, key, value)
        elif key == "consistency":
            mount["Consistency"] = value.lower()
        elif key == "bind-propagation":
            bind["Propagation"] = value.lower()
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool(text, key, value)
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool(text, key, value)
        elif key == "volume-label":
            label, _, label_value = value.partition("=")
            volume.setdefault("Labels", {})[label] = label_value
        elif key == "volume-driver":
            volume["DriverConfig"] = {**volume.get("DriverConfig", {}), "Name": value}
        elif key == "volume-opt":
            option, _, option_value = value.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[option] = option_value
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = parse_size(value, "--mount")
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise _invalid(text, f"invalid value for {key}: {value}") from None
        else:
            raise _invalid(text, f"unexpected key '{key}' in '{field}'")
    if not mount["Type"]:
        raise _invalid(text, "type is required")
    if not mount.get("Target"):
        raise _invalid(text, "target is required")
    for prefix, options, kind in (("volume", volume, "VolumeOptions"), ("bind", bind, "BindOptions"),
                                  ("tmpfs", tmpfs, "TmpfsOptions")):
        if options and mount["Type"] != prefix:
            raise _invalid(text, f"cannot mix '{prefix}-*' options with mount type '{mount['Type']}'")
        if options:
            mount[kind] = options
    return mount


def tmpfs_flags(values: list[str]) -> dict | None:
    """--tmpfs /path[:options] -> HostConfig.Tmpfs {"/path": "options"}; the engine checks them."""
    found = {}
    for value in values:
        path, _, options = value.partition(":")
        found[path] = options
    return found or None


def apply(args, body: dict) -> None:
    """Chapter 05's flags into a create request's body (as the docker CLI fills it)."""
    host_config = body["HostConfig"]
    binds, anonymous = volume_flags(args.volume)
    for key, value in (("Binds", binds), ("Mounts", [mount_flag(m) for m in args.mount] or None),
                       ("Tmpfs", tmpfs_flags(args.tmpfs)), ("VolumesFrom", list(args.volumes_from) or None)):
        if value:
            host_config[key] = value
    if anonymous:
        body["Volumes"] = anonymous
