"""The engine's side of networking: what `create`, the supervisor and `refresh` call.

A container's *sandbox* (libnetwork's word; inspect's NetworkSettings.SandboxKey) is its network
namespace with everything in it. HostConfig.NetworkMode picks what the sandbox is:

    bridge, NAME      a namespace of its own (netns.py), a veth into each network (endpoints.py)
    none              a namespace of its own with only lo: the runtime makes it, nothing to wire
    host              no namespace: the host's own interfaces, routes and ports
    container:ID      the namespace of another running container (as a Kubernetes pod's containers)

This module imports no netlink code: `--network none` and `host` never load pyroute2.
"""

import os

from minidocker import store
from minidocker.errors import MinidockerError
from minidocker.network import etc_files, netns


def default_network() -> str:
    """Where a container goes that names no network: the default `bridge`, unless the engine runs
    as `dockerd --bridge=none` does ($MINIDOCKER_BRIDGE=none): then to `none`. Chapters 01-03's
    suites run so, since the bridge is chapter 04's (docs/04-networks.md)."""
    return "none" if os.environ.get("MINIDOCKER_BRIDGE") == "none" else "bridge"


def mode_of(host_config: dict) -> str:
    mode = host_config.get("NetworkMode") or "default"
    return default_network() if mode == "default" else mode


def own_namespace(mode: str) -> bool:
    """Does a container in `mode` get a namespace that the engine wires (bridge or a user network)?"""
    return mode not in ("none", "host") and not mode.startswith("container:")


def check(host_config: dict, networking: dict | None) -> dict:
    """At create: the request's network settings, in Docker's words when they are wrong.
    Returns the NetworkingConfig to keep in the container's record."""
    mode = host_config["NetworkMode"] = mode_of(host_config)
    endpoints = dict((networking or {}).get("EndpointsConfig") or {})
    if "default" in endpoints:  # the docker CLI names the endpoint as it names the mode: "default"
        endpoints.setdefault(mode, endpoints.pop("default"))
    if mode.startswith("container:"):
        from minidocker.container.records import find

        find(mode.split(":", 1)[1])  # No such container: ...
        if endpoints or host_config.get("ExtraHosts") or host_config.get("Dns"):
            raise MinidockerError("conflicting options: networking settings and the network mode container:",
                                  "a container that shares another's namespace has that one's network")
    elif mode not in ("none", "host"):
        from minidocker.network import networks

        net = networks.get(mode)  # network NAME not found
        host_config["NetworkMode"] = net["Name"] if net["Name"] == mode else mode
        config = endpoints.get(mode) or {}
        user_network = net["Name"] != "bridge"
        if (config.get("IPAMConfig") or {}).get("IPv4Address"):
            if not user_network:
                raise MinidockerError("user specified IP address is supported on user defined networks only",
                                      "create a network with --subnet and run with --network NAME --ip IP")
            from minidocker.network import ipam

            ip, subnet = config["IPAMConfig"]["IPv4Address"], net["IPAM"]["Config"][0]["Subnet"]
            if not ipam.contains(subnet, ip):
                raise MinidockerError(f"no configured subnet or ip-range contain the IP address {ip}", f"use an address of {subnet}")
        if config.get("Aliases") and not user_network:
            raise MinidockerError("network-scoped alias is supported only for containers in user defined networks",
                                  "create a network and run with --network NAME")
    elif endpoints.get(mode, {}).get("Aliases") or endpoints.get(mode, {}).get("IPAMConfig"):
        raise MinidockerError(f"--ip and --network-alias need a network; --network {mode} has none", "use a user-defined network")
    for entry in host_config.get("ExtraHosts") or []:
        name, _, ip = entry.partition(":")
        if not name or not ip:
            raise MinidockerError(f"invalid argument \"{entry}\" for \"--add-host\" flag: invalid IP address in add-host: \"{ip}\"",
                                  "use --add-host NAME:IP")
    return {"EndpointsConfig": endpoints}


# --8<-- [start:spec]
def prepare_spec(spec: dict, container_id: str, container_dir: str, host_config: dict) -> None:
    """At create: name the network namespace in the OCI spec, and bind the /etc files."""
    mode = mode_of(host_config)
    others = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "network"]
    if own_namespace(mode):
        # Prepared by the supervisor before the runtime starts; the runtime setns()es into it.
        others.append({"type": "network", "path": netns.path_of(container_id)})
    elif mode == "none":
        others.append({"type": "network"})  # the runtime makes an empty one: only lo
    elif mode.startswith("container:"):
        others.append({"type": "network", "path": ""})  # filled at each start: the other's /proc/PID/ns/net
    # host: no entry at all, so the container stays in the host's network namespace.
    spec["linux"]["namespaces"] = others
    spec["mounts"] += etc_files.mounts(container_dir)
# --8<-- [end:spec]


def up(c) -> None:
    """In the supervisor, before the runtime: the sandbox, then the /etc files."""
    record, mode = c.record, mode_of(c.record["HostConfig"])
    hostname = record["Config"]["Hostname"]
    if mode.startswith("container:"):
        from minidocker.container.lifecycle import find

        other = find(mode.split(":", 1)[1])
        if not other.state["Running"]:
            raise MinidockerError(f"cannot join network namespace of a non running container: {other.id}", "start that container first")
        spec = c.spec
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{other.state['Pid']}/ns/net"
        store.write_json(os.path.join(c.dir, "config.json"), spec)  # the runtime reads the bundle
        for name in etc_files.FILES:  # Docker shares the other container's files too
            with open(os.path.join(other.dir, name)) as f:
                store.write_text(os.path.join(c.dir, name), f.read())
        return
    if not own_namespace(mode):
        if mode == "host":
            hostname = os.uname().nodename
        etc_files.write(c.dir, hostname, [], record["HostConfig"])
        return
    from minidocker.network import endpoints

    try:
        endpoints.setup(c.id, record)
        write_etc_files(c)
    except BaseException:
        endpoints.teardown(c.id, record)
        raise


def down(c) -> None:
    """After the container's last process: give back what up() took."""
    if own_namespace(mode_of(c.record["HostConfig"])):
        from minidocker.network import endpoints

        endpoints.teardown(c.id, c.record)


def sweep(containers: list) -> None:
    """The stale-resource sweep, for any command that lists containers: a namespace file whose
    container has no live supervisor (killed, or its record gone) means a set-up or teardown
    was cut short; tear it all down. One listdir when nothing is stale.

    `containers` were read before we look at the namespaces, so a container may have started in
    between (or been created: 32 `run -d` at once do it). So a container that looks stale has its
    state read again before anything of it goes: its supervisor records itself before up() makes
    anything, so the fresh state of a container whose namespace we saw names its supervisor."""
    supervised = {c.id for c in containers if c.state.get("SupervisorPid")}
    if set(netns.existing()) - supervised:
        from minidocker.container import records
        from minidocker.network import endpoints

        endpoints.sweep(lambda container_id: container_id in supervised or records.supervised(container_id))
    else:  # a SIGKILLed DNS responder leaves no stale namespace behind: look for it every time
        from minidocker.network import dns

        dns.cleanup_stale()


def settings(c) -> dict:
    """inspect's NetworkSettings. Networks: every network the container is on (while it runs,
    with its address; stopped, empty, as Docker). The top-level IPAddress, Gateway and
    MacAddress are Docker's older fields: they show the default `bridge` network's endpoint
    only, empty on a user network (read .NetworkSettings.Networks.NAME.IPAddress there)."""
    from minidocker.network import networks, ports

    mode = mode_of(c.record["HostConfig"])
    empty = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "NetworkID": "", "EndpointID": "",
             "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
             "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}
    shown = {}
    if mode.startswith("container:"):
        wanted = {}
    elif own_namespace(mode):
        from minidocker.network.endpoints import requested_networks

        wanted = requested_networks(c.record)
    else:
        wanted = {mode: {}}
    live = {e["network"]["Name"]: e for e in networks.endpoints(c.id)} if c.state.get("Running") and own_namespace(mode) else {}
    for name, config in wanted.items():
        entry = dict(empty, IPAMConfig=config.get("IPAMConfig"), Aliases=config.get("Aliases"))
        e = live.get(name)
        if e:
            endpoint = e["network"]["Containers"][c.id]
            ip, prefix = endpoint["IPv4Address"].split("/")
            entry.update(MacAddress=e["mac"], NetworkID=e["network"]["Id"], EndpointID=endpoint["EndpointID"],
                         Gateway=e["network"]["IPAM"]["Config"][0]["Gateway"], IPAddress=ip, IPPrefixLen=int(prefix),
                         DNSNames=None if name == "bridge" else [c.name, c.short_id, *e["aliases"]])
        shown[name] = entry
    default = shown.get("bridge", empty)
    return {"Bridge": "", "SandboxID": c.id if live else "", "SandboxKey": netns.path_of(c.id) if live else "",
            "Ports": ports.settings(c), "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "EndpointID": default["EndpointID"], "Gateway": default["Gateway"], "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPAddress": default["IPAddress"], "IPPrefixLen": default["IPPrefixLen"],
            "IPv6Gateway": "", "MacAddress": default["MacAddress"], "Networks": shown}


def _save_record(c) -> None:
    store.write_json(os.path.join(c.dir, "container.json"), c.record)


def connect(network_ref: str, container_ref: str, ip: str | None = None, aliases: list[str] = ()) -> None:
    """POST /networks/{id}/connect: another endpoint, now if the container runs, else at its start."""
    from minidocker.container.lifecycle import find
    from minidocker.network import endpoints, networks

    net, c = networks.get(network_ref), find(container_ref)
    mode = mode_of(c.record["HostConfig"])
    if not own_namespace(mode) or net["Driver"] != "bridge":
        raise MinidockerError("container sharing network namespace with another container or host cannot be connected to any other network",
                              f"its network mode is {mode}")
    wanted = endpoints.requested_networks(c.record)
    if net["Name"] in wanted:
        raise MinidockerError(f"endpoint with name {c.name} already exists in network {net['Name']}", "it is connected already")
    config = {}
    if ip:
        config["IPAMConfig"] = {"IPv4Address": ip}
    if aliases:
        config["Aliases"] = list(aliases)
    check({"NetworkMode": net["Name"]}, {"EndpointsConfig": {net["Name"]: config}})
    if c.state.get("Running"):
        ns_fd = os.open(netns.path_of(c.id), os.O_RDONLY | os.O_CLOEXEC)
        _, inside = _netlink_in(ns_fd)
        try:
            endpoints.attach(c.id, c.record, net, _next_index(c.id), config, ns_fd, inside)
        except BaseException:
            endpoints.detach(c.id, c.record, net)
            raise
        finally:
            inside.close()
            os.close(ns_fd)
    c.record.setdefault("NetworkingConfig", {}).setdefault("EndpointsConfig", {})[net["Name"]] = config
    _save_record(c)
    if c.state.get("Running"):
        write_etc_files(c)


def disconnect(network_ref: str, container_ref: str) -> None:
    """POST /networks/{id}/disconnect."""
    from minidocker.container.lifecycle import find
    from minidocker.network import endpoints, networks

    net, c = networks.get(network_ref), find(container_ref)
    wanted = endpoints.requested_networks(c.record)
    if net["Name"] not in wanted:
        raise MinidockerError(f"container {c.id} is not connected to network {net['Name']}", "see `minidocker inspect`")
    if c.state.get("Running") and own_namespace(mode_of(c.record["HostConfig"])):
        endpoints.detach(c.id, c.record, net)
    c.record.setdefault("NetworkingConfig", {}).setdefault("EndpointsConfig", {}).pop(net["Name"], None)
    if c.record["HostConfig"].get("NetworkMode") == net["Name"]:
        c.record["HostConfig"]["NetworkMode"] = next(iter(c.record["NetworkingConfig"]["EndpointsConfig"]), "none")
    _save_record(c)
    if c.state.get("Running"):
        write_etc_files(c)


def _netlink_in(ns_fd: int):
    """A netlink socket inside the namespace `ns_fd` (setns there, open, setns back)."""
    from minidocker import linux
    from minidocker.network.netlink import Netlink

    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(ns_fd, linux.CLONE_NEWNET)
        try:
            return None, Netlink()
        finally:
            linux.setns(own, linux.CLONE_NEWNET)
    finally:
        os.close(own)


def _next_index(container_id: str) -> int:
    from minidocker.network import networks

    used = {int(e["veth"][-1]) for e in networks.endpoints(container_id)}
    return next(i for i in range(10) if i not in used)


def write_etc_files(c) -> None:
    """The /etc files of a container on networks: its addresses, its aliases, and on a user
    network that network's resolver (dns.py) as the nameserver."""
    from minidocker.network import dns, networks

    mine = networks.endpoints(c.id)
    resolver = next((dns.resolver_ip(e["network"]) for e in mine if e["network"]["Name"] != "bridge"), None)
    etc_files.write(c.dir, c.record["Config"]["Hostname"], [e["ip"] for e in mine], c.record["HostConfig"],
                    resolver, [a for e in mine for a in e["aliases"]])
