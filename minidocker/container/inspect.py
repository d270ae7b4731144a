"""What the engine tells about containers: ContainerJSON (`inspect`) and the list (`ps`)."""

from datetime import datetime, timezone

from minidocker.container import records
from minidocker.container.lifecycle import all_containers, find


def _since(timestamp: str) -> float:
    then = datetime.strptime(timestamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - then).total_seconds()


def human_duration(seconds: float) -> str:
    """A duration as Docker words it: "Less than a second", "About a minute", "3 hours"."""
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return "1 second" if int(seconds) == 1 else f"{int(seconds)} seconds"
    if minutes < 2:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    if hours < 2:
        return "About an hour"
    if hours < 48:
        return f"{int(hours)} hours"
    if days < 14:
        return f"{int(days)} days"
    if days < 60:
        return f"{int(days / 7)} weeks"
    return f"{int(days / 30)} months" if days < 730 else f"{int(days / 365)} years"


def status_line(c: records.Container) -> str:
    """Docker's Status: "Up 5 seconds", "Exited (0) 3 seconds ago", "Created"."""
    s = c.state
    if s["Running"]:
        return f"Up {human_duration(_since(s['StartedAt']))}"
    if s["Status"] == "exited":
        return f"Exited ({s['ExitCode']}) {human_duration(_since(s['FinishedAt']))} ago"
    return "Created"


def inspect(ref: str) -> dict:
    """GET /containers/{id}/json: Docker's ContainerJSON (the fields that mean something here)."""
    c = find(ref)
    shown_state = {k: v for k, v in c.state.items() if not k.startswith("Supervisor")}
    return {**c.record, "State": shown_state, "LogPath": c.log_path,
            "GraphDriver": {"Name": "overlay2" if c.upperdir else "none",
                            "Data": {"UpperDir": c.upperdir, "LowerDir": ":".join(c.lowerdirs)} if c.upperdir else None}}


def list_containers(all: bool = False) -> list[dict]:
    """GET /containers/json[?all=1]: the running containers (or all), newest first."""
    shown = [c for c in all_containers() if all or c.state["Running"]]
    shown.sort(key=lambda c: c.record["Created"], reverse=True)
    return [{"Id": c.id, "Names": [f"/{c.name}"], "Image": c.record["Config"]["Image"],
             "Command": " ".join(c.record["Config"]["Cmd"] or []),
             "Created": int(datetime.strptime(c.record["Created"][:19], "%Y-%m-%dT%H:%M:%S")
                            .replace(tzinfo=timezone.utc).timestamp()),
             "State": c.state["Status"], "Status": status_line(c)} for c in shown]


def changes(ref: str) -> list[dict]:
    """GET /containers/{id}/changes: what the container changed in its filesystem (chapter 02)."""
    from minidocker.unionfs.diff import changes as walk

    c = find(ref)
    if c.upperdir is None:
        return []  # no writable layer, so nothing can have changed
    kinds = {"C": 0, "A": 1, "D": 2}
    return [{"Path": path, "Kind": kinds[kind]} for kind, path in walk(c.upperdir, c.lowerdirs)]
