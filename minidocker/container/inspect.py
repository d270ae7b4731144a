"""What the engine tells about containers: ContainerJSON (`inspect`) and the list (`ps`)."""

from datetime import datetime, timezone

from minidocker.container import records
from minidocker.container.lifecycle import all_containers, find


def _since(timestamp: str) -> float:
    then = datetime.strptime(timestamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - then).total_seconds()


def human_duration(seconds: float) -> str:
    """A duration as Docker words it (go-units' HumanDuration): "Less than a second", "About a
    minute", "3 hours". Hours are rounded (1.5 hours is "2 hours"); the longer units count
    whole days, weeks (7 days) and months (30 days) of those rounded hours."""
    minutes, hours = int(seconds / 60), int(seconds / 3600 + 0.5)
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return "1 second" if int(seconds) == 1 else f"{int(seconds)} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def status_line(c: records.Container) -> str:
    """Docker's Status: "Up 5 seconds", "Up 2 minutes (Paused)", "Exited (0) 3 seconds ago", "Created"."""
    s = c.state
    if s["Running"]:
        up = f"Up {human_duration(_since(s['StartedAt']))}"
        return f"{up} (Paused)" if s.get("Paused") else up
    if s["Status"] == "exited":
        return f"Exited ({s['ExitCode']}) {human_duration(_since(s['FinishedAt']))} ago"
    return "Created"


def inspect(ref: str) -> dict:
    """GET /containers/{id}/json: Docker's ContainerJSON (the fields that mean something here)."""
    c = find(ref)
    shown_state = {k: v for k, v in c.state.items() if not k.startswith("Supervisor")}
    return {**c.record, "HostConfig": host_config(c.record.get("HostConfig") or {}),
            "State": shown_state, "LogPath": c.log_path, "GraphDriver": graph_driver(c),
            "Mounts": c.record.get("Mounts") or [],  # Docker's MountPoints (chapter 05: volume/mounts.py)
            "NetworkSettings": network_settings(c)}


def host_config(stored: dict) -> dict:
    """HostConfig as dockerd shows it: the values a client left empty are the daemon's defaults,
    filled in, not blank. Clients rely on them: docker-py's containers.run() reads
    HostConfig.LogConfig.Type to decide whether it may read the container's logs."""
    from minidocker.container import oci_defaults

    shown = {**stored}
    shown["LogConfig"] = {"Type": (stored.get("LogConfig") or {}).get("Type") or "json-file",
                          "Config": (stored.get("LogConfig") or {}).get("Config") or {}}
    defaults = {"NetworkMode": "bridge", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                "IpcMode": "private", "CgroupnsMode": "private", "ShmSize": oci_defaults.SHM_SIZE,
                "Runtime": "runc", "MaskedPaths": oci_defaults.default_masked_paths(),
                "ReadonlyPaths": list(oci_defaults.READONLY_PATHS)}
    for key, value in defaults.items():
        if not shown.get(key) or (key == "NetworkMode" and shown[key] == "default"):
            shown[key] = value
    return shown


def graph_driver(c: records.Container) -> dict:
    """Where the container's filesystem lives, in the words of Docker's overlay2 driver: the
    read-only layers (LowerDir, top-most first, as overlayfs's lowerdir= lists them), the
    container's writable layer (UpperDir), overlayfs's scratch space (WorkDir), and the mount
    point of the union (MergedDir: mounted only inside the container's mount namespace, so on
    the host it is an empty directory)."""
    overlay = c.spec.get("minidocker", {}).get("overlay")
    if not overlay:
        return {"Name": "none", "Data": None}  # --rootfs DIR: the directory itself, no layers
    return {"Name": "overlay2", "Data": {"LowerDir": ":".join(overlay["lowerdirs"]), "MergedDir": c.spec["root"]["path"],
                                         "UpperDir": overlay["upperdir"], "WorkDir": overlay["workdir"]}}


def network_settings(c: records.Container) -> dict:
    """Its networks, addresses and published ports (chapter 04: network/sandbox.py)."""
    from minidocker.network import sandbox

    return sandbox.settings(c)


def list_containers(all: bool = False) -> list[dict]:
    """GET /containers/json[?all=1]: the running containers (or all), newest first."""
    from minidocker.network import ports

    shown = [c for c in all_containers() if all or c.state["Running"]]
    shown.sort(key=lambda c: c.record["Created"], reverse=True)
    return [{"Id": c.id, "Names": [f"/{c.name}"], "Image": c.record["Config"]["Image"],
             "Command": " ".join(c.record["Config"]["Cmd"] or []),
             "Created": int(datetime.strptime(c.record["Created"][:19], "%Y-%m-%dT%H:%M:%S")
                            .replace(tzinfo=timezone.utc).timestamp()),
             "State": c.state["Status"], "Status": status_line(c), "Ports": ports.summary(c), "Labels": {},
             "Mounts": c.record.get("Mounts") or [],
             "NetworkSettings": {"Networks": network_settings(c)["Networks"]}} for c in shown]


def changes(ref: str) -> list[dict]:
    """GET /containers/{id}/changes: what the container changed in its filesystem (chapter 02)."""
    from minidocker.unionfs.diff import changes as walk

    c = find(ref)
    if c.upperdir is None:
        return []  # no writable layer, so nothing can have changed
    kinds = {"C": 0, "A": 1, "D": 2}
    return [{"Path": path, "Kind": kinds[kind]} for kind, path in walk(c.upperdir, c.lowerdirs)]
