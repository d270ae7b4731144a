"""The network endpoints, over network/networks.py (the store) and network/sandbox.py (connect).

    GET    /networks                    all, filtered          -> [NetworkResource]
    POST   /networks/create             create                 -> 201 {"Id", "Warning"}
    GET    /networks/{id}               get                    -> NetworkResource
    DELETE /networks/{id}               remove                 -> 204
    POST   /networks/prune              prune                  -> {"NetworksDeleted": [names]}
    POST   /networks/{id}/connect       sandbox.connect        -> 200
    POST   /networks/{id}/disconnect    sandbox.disconnect     -> 200

Every handler first lets the engine sweep what killed containers left behind, as each network
command of the daemonless CLI does (cli/network.py).
"""

from minidocker.daemon.http import ApiError, Request, Response
from minidocker.daemon.images import filters, not_found
from minidocker.daemon.router import route
from minidocker.errors import MinidockerError

LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")


def _sweep() -> None:
    from minidocker.container.lifecycle import all_containers

    all_containers()


def _get(ref: str) -> dict:
    from minidocker.network import networks

    try:
        return networks.get(ref)
    except MinidockerError as e:
        raise not_found(e) if "not found" in e.what else e


def labels_match(labels: dict, wanted: list[str]) -> bool:
    """label=KEY or label=KEY=VALUE, every one of them (Docker's filters.MatchKVList)."""
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def matches(net: dict, wanted: dict[str, list[str]]) -> bool:
    """Docker's network filters: a name or id matches on a part of it (name=fro finds frontend);
    type is builtin (bridge, host, none) or custom; dangling=true is a network no container uses."""
    from minidocker.network.networks import PREDEFINED

    checks = {
        "name": lambda v: v in net["Name"],
        "id": lambda v: net["Id"].startswith(v),
        "driver": lambda v: v == net["Driver"],
        "scope": lambda v: v == net["Scope"],
        "type": lambda v: v == ("builtin" if net["Name"] in PREDEFINED else "custom"),
        "dangling": lambda v: (v.lower() in ("true", "1")) == (not net["Containers"] and net["Name"] not in PREDEFINED),
    }
    for key, values in wanted.items():
        if key == "type" and any(v not in ("builtin", "custom") for v in values):
            raise ApiError(400, f"invalid filter: 'type'='{values[0]}' (want builtin or custom)")
        if key == "label":
            if not labels_match(net["Labels"], values):
                return False
        elif values and not any(checks[key](v) for v in values):
            return False
    return True


@route("GET", "/networks")
def list_networks(req: Request) -> Response:
    from minidocker.network import networks

    wanted = filters(req, LIST_FILTERS)
    _sweep()
    return Response(200, [n for n in sorted(networks.all(), key=lambda n: n["Name"]) if matches(n, wanted)])


@route("POST", "/networks/create")
def create_network(req: Request) -> Response:
    from minidocker.network import networks

    body = req.json({})
    if not isinstance(body, dict) or not isinstance(body.get("Name"), str):
        raise ApiError(400, "a network needs a Name")
    ipam = body.get("IPAM") or {}
    configs = ipam.get("Config") or []
    if body.get("EnableIPv6"):
        raise ApiError(400, "minidocker networks are IPv4 only (EnableIPv6)")
    if len(configs) > 1:
        raise ApiError(400, "minidocker networks have one subnet (IPAM.Config has more)")
    if ipam.get("Driver", "default") not in ("default", ""):
        raise ApiError(400, f'plugin "{ipam["Driver"]}" not found (minidocker has the default IPAM driver only)')
    if body.get("Options"):
        raise ApiError(400, f"minidocker's bridge driver takes no options (got {', '.join(body['Options'])})")
    config = configs[0] if configs else {}
    _sweep()
    answer = networks.create(body["Name"], body.get("Driver") or "bridge", config.get("Subnet") or None,
                             config.get("Gateway") or None, bool(body.get("Internal")), body.get("Labels") or {})
    return Response(201, answer)


@route("GET", "/networks/{id}")
def inspect_network(req: Request, id: str) -> Response:
    return Response(200, _get(id))


@route("DELETE", "/networks/{id}")
def remove_network(req: Request, id: str) -> Response:
    from minidocker.network import networks

    _sweep()
    net = _get(id)
    try:
        networks.remove(net["Id"])
    except MinidockerError as e:
        # dockerd's words: a network in use or a predefined one is Forbidden, not a bad request
        raise ApiError(403, str(e)) if "active endpoints" in e.what or "pre-defined" in e.what else e
    return Response(204)


@route("POST", "/networks/prune")
def prune_networks(req: Request) -> Response:
    from minidocker.network import networks

    if filters(req, ("until", "label")):
        raise ApiError(400, "minidocker prunes every unused network (no until or label filters)")
    _sweep()
    return Response(200, {"NetworksDeleted": networks.prune()})


def _container(body) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str) or not body["Container"]:
        raise ApiError(400, "which container? The body needs a Container")
    return body["Container"]


@route("POST", "/networks/{id}/connect")
def connect(req: Request, id: str) -> Response:
    from minidocker.network import sandbox

    body = req.json({})
    container = _container(body)
    endpoint = body.get("EndpointConfig") or {}
    ip = (endpoint.get("IPAMConfig") or {}).get("IPv4Address") or None
    net = _get(id)
    sandbox.connect(net["Id"], container, ip, list(endpoint.get("Aliases") or []))
    return Response(200)


@route("POST", "/networks/{id}/disconnect")
def disconnect(req: Request, id: str) -> Response:
    from minidocker.network import sandbox

    container = _container(req.json({}))
    net = _get(id)
    sandbox.disconnect(net["Id"], container)
    return Response(200)
