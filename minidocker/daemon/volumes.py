"""The volume endpoints, over volume/volumes.py.

    GET    /volumes                 list_volumes, filtered   -> {"Volumes": [Volume], "Warnings": []}
    POST   /volumes/create          create                   -> 201 Volume
    GET    /volumes/{name}          get                      -> Volume
    DELETE /volumes/{name}          remove (force)           -> 204
    POST   /volumes/prune           prune (filters: all)     -> {"VolumesDeleted", "SpaceReclaimed"}
"""

from minidocker.daemon.http import ApiError, Request, Response
from minidocker.daemon.images import filters, not_found
from minidocker.daemon.networks import labels_match
from minidocker.daemon.router import route
from minidocker.errors import MinidockerError

LIST_FILTERS = ("dangling", "driver", "label", "name")


def _get(name: str) -> dict:
    from minidocker.volume import volumes

    try:
        return volumes.get(name)
    except MinidockerError as e:
        raise not_found(e) from None


def matches(volume: dict, wanted: dict[str, list[str]], used: dict) -> bool:
    """Docker's volume filters: name on a part of it, driver exactly, label KEY or KEY=VALUE,
    dangling=true for a volume no container names."""
    for key, values in wanted.items():
        if key == "label":
            if not labels_match(volume.get("Labels") or {}, values):
                return False
        elif key == "name" and values and not any(v in volume["Name"] for v in values):
            return False
        elif key == "driver" and values and volume["Driver"] not in values:
            return False
        elif key == "dangling" and values:
            if (values[-1].lower() in ("true", "1")) != (volume["Name"] not in used):
                return False
    return True


@route("GET", "/volumes")
def list_volumes(req: Request) -> Response:
    from minidocker.volume import volumes

    wanted = filters(req, LIST_FILTERS)
    used = volumes.in_use() if "dangling" in wanted else {}
    found = [v for v in sorted(volumes.list_volumes(), key=lambda v: v["Name"]) if matches(v, wanted, used)]
    return Response(200, {"Volumes": found, "Warnings": []})


@route("POST", "/volumes/create")
def create_volume(req: Request) -> Response:
    from minidocker.volume import volumes

    body = req.json({})
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object: {Name, Driver, DriverOpts, Labels}")
    for key in ("DriverOpts", "Labels"):
        if not isinstance(body.get(key) or {}, dict):
            raise ApiError(400, f"{key} must be an object of strings")
    volume = volumes.create(body.get("Name") or None, labels=body.get("Labels") or {},
                            options=body.get("DriverOpts") or {}, driver=body.get("Driver") or volumes.DRIVER)
    return Response(201, volume)


@route("GET", "/volumes/{name}")
def inspect_volume(req: Request, name: str) -> Response:
    return Response(200, _get(name))


@route("DELETE", "/volumes/{name}")
def remove_volume(req: Request, name: str) -> Response:
    from minidocker.volume import volumes

    if not req.flag("force"):
        _get(name)  # missing: 404 (with force it is no error, as dockerd)
    try:
        volumes.remove(name, force=req.flag("force"))
    except MinidockerError as e:
        raise ApiError(409, str(e)) if "in use" in e.what else e
    return Response(204)


@route("POST", "/volumes/prune")
def prune_volumes(req: Request) -> Response:
    from minidocker.volume import volumes

    wanted = filters(req, ("all", "label"))
    if wanted.get("label"):
        raise ApiError(400, "minidocker prunes by all only (no label filter)")
    everything = (wanted.get("all") or ["false"])[-1].lower() in ("true", "1")
    return Response(200, volumes.prune(all=everything))
