"""The network store: create, list, inspect, remove and prune networks (Docker's NetworkResource).

    $MINIDOCKER_ROOT/networks/<id>/network.json   Name, Id, Driver, IPAM.Config, Internal, Options, Labels
                                  /endpoints.json {container id: {Name, EndpointID, MacAddress, IPv4Address, ...}}
                                  /ipam.json      {ip: container id}   (ipam.py)
                                  /.lock          held while any of the three changes

Three networks always exist, as in Docker: `bridge` (the default, on the bridge md0), `host` (the
host's own stack: no namespace) and `none` (a namespace with only lo). They are written on first
use. A user network (`network create NAME`) gets a bridge of its own, mdbr-<9 hex of its id>.

Subnets come from our pool, 10.213.0.0/16, one /24 per network (see POOL for why there), skipping
any subnet that a host route or another network already covers.
"""

import os

from minidocker import store
from minidocker.errors import MinidockerError
from minidocker.network import ipam

# Our default-address-pool. Docker's own are 172.17.0.0/16 .. 172.31.0.0/16 and 192.168.0.0/16
# cut in /20s; podman's default is 10.88.0.0/16. 10.213.0.0/16 is none of these, so minidocker
# and dockerd (or podman) can run side by side on one machine; and since home routers and VPNs
# like 10.0.x and 10.1.x, every candidate is also checked against the host's routes.
POOL, POOL_PREFIX, SUBNET_PREFIX = "10.213.0.0", 16, 24
DEFAULT_BRIDGE = "md0"


def pool() -> tuple[str, int]:
    """The pool: ours, or $MINIDOCKER_DEFAULT_ADDRESS_POOL ("10.213.16.0/20"), as dockerd's
    --default-address-pool base=...; test sessions get a slice each (conftest.py), since two
    stores cannot see each other's subnets until a bridge routes them."""
    base, _, prefix = os.environ.get("MINIDOCKER_DEFAULT_ADDRESS_POOL", f"{POOL}/{POOL_PREFIX}").partition("/")
    return base, int(prefix)


def default_bridge() -> str:
    """md0, or the bridge $MINIDOCKER_BRIDGE names, as `dockerd --bridge=NAME` (`none`: no default
    network at all, sandbox.py)."""
    name = os.environ.get("MINIDOCKER_BRIDGE", "")
    return name if name and name != "none" else DEFAULT_BRIDGE
PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}  # name -> driver


def networks_dir() -> str:
    return store.directory("networks")


def bridge_name(net: dict) -> str:
    """The host's bridge for `net`: md0 for the default network, mdbr-<9 hex of its id> else
    (IFNAMSIZ: a link's name has at most 15 characters)."""
    return net["Options"].get("com.docker.network.bridge.name") or f"mdbr-{net['Id'][:9]}"


def network_dir(net: dict) -> str:
    return os.path.join(networks_dir(), net["Id"])


def _record(name: str, driver: str, subnet: str | None = None, gateway: str | None = None, internal: bool = False,
            labels: dict | None = None, options: dict | None = None) -> dict:
    return {"Name": name, "Id": store.new_id(), "Created": store.now(), "Scope": "local", "Driver": driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": subnet, "Gateway": gateway}] if subnet else []},
            "Internal": internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Options": options or {}, "Labels": labels or {}}


def _load(directory: str) -> dict:
    net = store.read_json(os.path.join(directory, "network.json"))
    try:
        endpoints = store.read_json(os.path.join(directory, "endpoints.json"))
    except FileNotFoundError:
        endpoints = {}
    net["Containers"] = {cid: {k: v for k, v in e.items() if k in ("Name", "EndpointID", "MacAddress", "IPv4Address", "IPv6Address")}
                         for cid, e in endpoints.items()}
    return net


def _write(net: dict) -> None:
    os.makedirs(network_dir(net), exist_ok=True)
    store.write_json(os.path.join(network_dir(net), "network.json"), {k: v for k, v in net.items() if k != "Containers"})


def all() -> list[dict]:  # noqa: A001 - the contract's name (network-api.md)
    """Every network, the predefined three first made if this store has none yet."""
    base = networks_dir()
    names = [d for d in os.listdir(base) if not d.startswith(".")]
    found = []
    for d in names:
        try:
            found.append(_load(os.path.join(base, d)))
        except FileNotFoundError:  # being created or removed right now
            continue
    if not {n["Name"] for n in found} >= set(PREDEFINED):
        _make_predefined({n["Name"] for n in found})
        return all()
    return found


def _make_predefined(have: set[str]) -> None:
    with store.lock(networks_dir()):
        have = {_load(os.path.join(networks_dir(), d))["Name"] for d in os.listdir(networks_dir()) if not d.startswith(".")}
        for name, driver in PREDEFINED.items():
            if name in have:
                continue
            if name == "bridge":
                subnet, gateway = _bridge_in_place() or (free_subnet([]), None)
                gateway = gateway or ipam.to_ip(ipam.parse_subnet(subnet)[0] + 1)
                net = _record(name, driver, subnet, gateway, options={
                    "com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": default_bridge()})
            else:
                net = _record(name, driver)
            _write(net)


def _bridge_in_place() -> tuple[str, str] | None:
    """(subnet, gateway) of the default bridge when the link exists already: it outlives a store,
    as docker0 outlives dockerd, and a new store (another MINIDOCKER_ROOT, a daemon's) must put
    its containers on the bridge's subnet, not on a fresh one nothing routes. dockerd, too, takes
    docker0's address when it finds one."""
    from minidocker.network.endpoints import host_netlink

    nl = host_netlink()
    index = nl.link_index(default_bridge())
    for ip, prefix in nl.addresses(index) if index is not None else []:
        start = ipam.to_int(ip) & ipam.mask(prefix)
        return f"{ipam.to_ip(start)}/{prefix}", ip
    return None


def get(ref: str) -> dict:
    """A network by name, full id or unique id prefix, as Docker finds them."""
    everyone = all()
    for net in everyone:
        if ref in (net["Name"], net["Id"]):
            return net
    matches = [n for n in everyone if ref and n["Id"].startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise MinidockerError(f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)", "give more of the id")
    raise MinidockerError(f"network {ref} not found", "see `minidocker network ls`")


def endpoints_of(net: dict) -> dict:
    try:
        return store.read_json(os.path.join(network_dir(net), "endpoints.json"))
    except FileNotFoundError:
        return {}


def write_endpoints(net: dict, endpoints: dict) -> None:
    store.write_json(os.path.join(network_dir(net), "endpoints.json"), endpoints)


def endpoints(container_id: str) -> list[dict]:
    """The contract's view of a running container's endpoints: [{network, ip, aliases, mac, veth}]."""
    found = []
    for net in all():
        e = endpoints_of(net).get(container_id)
        if e:
            found.append({"network": net, "ip": e["IPv4Address"].split("/")[0], "aliases": e.get("Aliases", []),
                          "mac": e["MacAddress"], "veth": e["Veth"]})
    return found


# ---------------------------------------------------------------------------------------------
# Subnets

def host_routes() -> list[str]:
    """Every subnet the host routes (read through netlink): a network there would be unreachable,
    or would hijack the host's traffic to it."""
    from minidocker.network.endpoints import host_netlink

    return host_netlink().routed_subnets()


def free_subnet(taken: list[str]) -> str:
    """The first /24 of the pool that overlaps no host route and no subnet in `taken`."""
    in_use = taken + host_routes() + [c["Subnet"] for n in _existing() for c in n["IPAM"]["Config"]]
    base, prefix = pool()
    start = ipam.to_int(base)
    for i in range(1 << (SUBNET_PREFIX - prefix)):
        candidate = f"{ipam.to_ip(start + (i << (32 - SUBNET_PREFIX)))}/{SUBNET_PREFIX}"
        if not any(ipam.overlaps(candidate, other) for other in in_use):
            return candidate
    raise MinidockerError("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
                          f"give one with --subnet, or remove networks (the pool is {'/'.join(map(str, pool()))})")


def _existing() -> list[dict]:
    base = networks_dir()
    return [store.read_json(os.path.join(base, d, "network.json")) for d in os.listdir(base)
            if not d.startswith(".") and os.path.exists(os.path.join(base, d, "network.json"))]


# ---------------------------------------------------------------------------------------------
# create, remove, prune

def create(name: str, driver: str = "bridge", subnet: str | None = None, gateway: str | None = None,
           internal: bool = False, labels: dict | None = None) -> dict:
    """POST /networks/create -> {"Id", "Warning"}: the record, then the bridge, then the
    firewall's rules; a failure part-way removes what was made."""
    store.require_root()
    if driver != "bridge":
        raise MinidockerError(f'plugin "{driver}" not found', "minidocker has only the bridge driver")
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise MinidockerError(f'invalid network name "{name}"', "use letters, digits, and _ . -")
    all()  # the predefined networks first, so their names and subnets are known
    with store.lock(networks_dir()):
        existing = _existing()
        if any(n["Name"] == name for n in existing):
            raise MinidockerError(f"network with name {name} already exists", "choose another name, or remove that one")
        if subnet:
            network, prefix = ipam.parse_subnet(subnet)
            for other in (c["Subnet"] for n in existing for c in n["IPAM"]["Config"]):
                if ipam.overlaps(subnet, other):
                    raise MinidockerError("invalid pool request: Pool overlaps with other one on this address space",
                                          f"{subnet} overlaps {other}")
            gateway = gateway or ipam.to_ip(network + 1)
            if not ipam.contains(subnet, gateway) or gateway in (ipam.to_ip(network), ipam.to_ip(network | ~ipam.mask(prefix) & 0xFFFFFFFF)):
                raise MinidockerError(f"invalid gateway {gateway}", f"use a host address of {subnet}")
        elif gateway:
            raise MinidockerError("gateway with no subnet", "give --subnet too")
        else:
            subnet = free_subnet([])
            gateway = ipam.to_ip(ipam.parse_subnet(subnet)[0] + 1)
        net = _record(name, driver, subnet, gateway, internal, labels)
        _write(net)
    net["Containers"] = {}
    try:
        from minidocker.network import endpoints

        with store.lock(network_dir(net)):
            endpoints.ensure_bridge(net)  # and firewall.network_created(net)
    except BaseException:
        _destroy(net)
        raise
    return {"Id": net["Id"], "Warning": ""}


def _destroy(net: dict) -> None:
    from minidocker.network import dns, endpoints, firewall

    dns.network_removed(net)
    firewall.network_removed(net)
    endpoints.host_netlink().delete_link(bridge_name(net))
    import shutil

    shutil.rmtree(network_dir(net), ignore_errors=True)


def remove(ref: str) -> None:
    """DELETE /networks/{id}: refused for the predefined networks and while containers use it."""
    net = get(ref)
    if net["Name"] in PREDEFINED:
        raise MinidockerError(f"{net['Name']} is a pre-defined network and cannot be removed", "remove user-defined networks only")
    with store.lock(network_dir(net)):
        users = endpoints_of(net)
        if users:
            names = ", ".join(e["Name"] for e in users.values())
            raise MinidockerError(f"error while removing network: network {net['Name']} id {net['Id']} has active endpoints ({names})",
                                  "stop or disconnect those containers first")
        _destroy(net)


def prune() -> list[str]:
    """POST /networks/prune: remove every user network without containers; their names."""
    removed = []
    for net in all():
        if net["Name"] in PREDEFINED:
            continue
        try:
            remove(net["Id"])
            removed.append(net["Name"])
        except MinidockerError:
            continue
    return removed
