"""The system endpoints: the handshake (/_ping, /version), /info, /events, /system/df.

Before its first real request the docker CLI asks `HEAD /_ping` and reads the answer's headers:
`API-Version` (the newest version this daemon speaks), `Ostype` (linux or windows images?) and
`Docker-Experimental`. It then speaks min(its own newest, ours) in every path: /v1.41/... for
Debian's docker 20.10 (docs/07-daemon.md#the-handshake).
"""

import os
import platform

from minidocker import API_VERSION, __version__
from minidocker.daemon.http import ApiError, Response, StreamResponse
from minidocker.daemon.router import MIN_API_VERSION, route


def identity_headers() -> dict[str, str]:
    """The headers on every answer: which API this is, and for which OS."""
    # --8<-- [start:ex-07-ping]
    # Api-Version (our newest, API_VERSION), Docker-Experimental "false", Ostype "linux", and
    # no caching of the answer (Cache-Control: no-cache, no-store, must-revalidate; Pragma: no-cache).
    return {"Api-Version": API_VERSION, "Docker-Experimental": "false", "Ostype": "linux", "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache"}
    # --8<-- [end:ex-07-ping]


@route("GET", "/_ping")
def ping(req):
    return Response(200, b"OK", {"Content-Type": "text/plain; charset=utf-8"})


@route("HEAD", "/_ping")
def ping_head(req):
    return Response(200, b"", {"Content-Type": "text/plain; charset=utf-8"})


@route("GET", "/version")
def version(req):
    uname = os.uname()
    return Response(200, {
        "Platform": {"Name": "minidocker"},
        "Components": [{"Name": "Engine", "Version": __version__,
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": f"python{platform.python_version()}", "Os": "linux",
        "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(uname.machine, uname.machine),
        "KernelVersion": uname.release, "BuildTime": ""})


@route("GET", "/info")
def info(req):
    from minidocker import store
    from minidocker.container import lifecycle

    containers = lifecycle.all_containers()
    running = sum(1 for c in containers if c.state["Running"] and not c.state.get("Paused"))
    paused = sum(1 for c in containers if c.state.get("Paused"))
    uname = os.uname()
    return Response(200, {
        "ID": "", "Name": uname.nodename, "Containers": len(containers), "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": len(containers) - running - paused,
        "Driver": "overlay2", "DockerRootDir": store.root(), "OperatingSystem": "minidocker", "OSType": "linux",
        "Architecture": uname.machine, "KernelVersion": uname.release, "NCPU": os.cpu_count(),
        "ServerVersion": __version__, "LoggingDriver": "json-file", "CgroupVersion": _cgroup_version(),
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "Warnings": None})


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


# ---------------------------------------------------------------------------------------------
# /system/df: what the store holds, and what could go

@route("GET", "/system/df")
def disk_usage(req):
    """`docker system df`: the CLI sums these lists itself. An image, a container or a volume is
    "active" when something uses it (Containers, State running, UsageData.RefCount), and only the
    rest counts as reclaimable; a layer shared by two images is freed with the last of them."""
    from minidocker.container import inspect as containers, lifecycle
    from minidocker.image import inspect as images, layers
    from minidocker.image.layout import Layout
    from minidocker.volume import volumes

    records = lifecycle.all_containers()
    users: dict[str, int] = {}  # image id -> containers made from it
    for c in records:
        users[c.record.get("Image", "")] = users.get(c.record.get("Image", ""), 0) + 1
    stored = Layout().images()
    chains = {image.id: images.chain_ids(image) for image in stored}
    sharing: dict[str, int] = {}  # layer (chain id) -> images that have it
    for ids in chains.values():
        for chain in set(ids):
            sharing[chain] = sharing.get(chain, 0) + 1
    layer_size = {chain: layers.size(chain) for chain in sharing}
    summaries = images.list_images(all=True)
    for summary in summaries:
        summary["Containers"] = users.get(summary["Id"], 0)
        summary["SharedSize"] = sum(layer_size[ch] for ch in set(chains.get(summary["Id"], [])) if sharing[ch] > 1)
    rows = containers.list_containers(all=True)
    by_id = {c.id: c for c in records}
    for row in rows:
        c = by_id.get(row["Id"])
        row["SizeRw"] = _tree_size(c.upperdir) if c and c.upperdir else 0
        row["SizeRootFs"] = row["SizeRw"] + sum(s["Size"] for s in summaries if s["Id"] == c.record.get("Image"))
    in_use = volumes.in_use()
    found = volumes.list_volumes()
    for v in found:
        v["UsageData"] = {"Size": volumes.data_size(v["Name"]), "RefCount": len(in_use.get(v["Name"], []))}
    return Response(200, {"LayersSize": sum(layer_size.values()), "Images": summaries, "Containers": rows,
                          "Volumes": found, "BuildCache": []})  # the classic builder keeps no cache of its own


def _tree_size(top: str) -> int:
    """The bytes of the files under `top`, a hard-linked file once (a container's SizeRw: its
    writable layer)."""
    seen, total = set(), 0
    for dirpath, _, files in os.walk(top):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


# ---------------------------------------------------------------------------------------------
# /events: what happened, as it happens

import queue  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

_subscribers: list[queue.Queue] = []
_subscribers_lock = threading.Lock()
_recent: list[dict] = []  # the last events, for `since`


def emit(kind: str, action: str, actor_id: str, attributes: dict | None = None) -> None:
    """Tell every /events listener: {"Type": "container", "Action": "start", "Actor": {...}}."""
    ns = time.time_ns()
    event = {"Type": kind, "Action": action, "Actor": {"ID": actor_id, "Attributes": dict(attributes or {})},
             "scope": "local", "time": ns // 10**9, "timeNano": ns}
    if kind == "container":  # the old fields the docker CLI still prints from
        event.update(status=action, id=actor_id, **({"from": attributes["image"]} if attributes and "image" in attributes else {}))
    with _subscribers_lock:
        _recent.append(event)
        del _recent[:-256]
        for q in _subscribers:
            q.put(event)


def _event_matches(event: dict, filters: dict) -> bool:
    """Docker's event filters: type, event (action), container (id or name), image."""
    for key, values in filters.items():
        values = list(values) if isinstance(values, (list, dict)) else [values]
        actor = event["Actor"]
        if key == "type" and event["Type"] not in values:
            return False
        if key == "event" and event["Action"].split(":")[0] not in values:
            return False
        if key == "container" and not (event["Type"] == "container" and any(
                actor["ID"].startswith(v) or actor["Attributes"].get("name") == v for v in values)):
            return False
        if key == "image" and actor["Attributes"].get("image") not in values:
            return False
    return True


def _time_arg(req, name: str) -> float | None:
    value = req.arg(name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ApiError(400, f"invalid value for {name}: {value!r} (want a unix timestamp)") from None


@route("GET", "/events")
def events(req):
    filters = req.json_arg("filters", {}) or {}
    if not isinstance(filters, dict):
        raise ApiError(400, "invalid filter: want a JSON object")
    since, until = _time_arg(req, "since"), _time_arg(req, "until")
    q: queue.Queue = queue.Queue()
    with _subscribers_lock:
        past = [e for e in _recent if since is not None and e["timeNano"] / 1e9 >= since]
        _subscribers.append(q)

    def stream():
        try:
            for e in past:
                if _event_matches(e, filters):
                    yield e
            while until is None or time.time() < until:
                try:
                    e = q.get(timeout=0.5 if until is None else max(0.01, min(0.5, until - time.time())))
                except queue.Empty:
                    continue
                if until is not None and e["timeNano"] / 1e9 > until:
                    return
                if _event_matches(e, filters):
                    yield e
        finally:
            with _subscribers_lock:
                _subscribers.remove(q)

    from minidocker.daemon.http import json_lines
    return StreamResponse(200, json_lines(stream()))
