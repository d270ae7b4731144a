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


def mode_of(host_config: dict) -> str:
    mode = host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def own_namespace(mode: str) -> bool:
    """Does a container in `mode` get a namespace that the engine wires (bridge or a user network)?"""
    return mode not in ("none", "host") and not mode.startswith("container:")


def check(host_config: dict, networking: dict | None) -> dict:
    """At create: the request's network settings, in Docker's words when they are wrong.
    Returns the NetworkingConfig to keep in the container's record."""
    from minidocker.network import networks

    mode = host_config["NetworkMode"] = mode_of(host_config)
    endpoints = dict((networking or {}).get("EndpointsConfig") or {})
    if mode.startswith("container:"):
        from minidocker.container.records import find

        find(mode.split(":", 1)[1])  # No such container: ...
        if endpoints or host_config.get("ExtraHosts") or host_config.get("Dns"):
            raise MinidockerError("conflicting options: networking settings and the network mode container:",
                                  "a container that shares another's namespace has that one's network")
    elif mode not in ("none", "host"):
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
    from minidocker.network import dns, endpoints, networks

    try:
        endpoints.setup(c.id, record)
        mine = networks.endpoints(c.id)
        resolver = next((dns.resolver_ip(e["network"]) for e in mine if e["network"]["Name"] != "bridge"), None)
        aliases = [a for e in mine for a in e["aliases"]]
        etc_files.write(c.dir, hostname, [e["ip"] for e in mine], record["HostConfig"], resolver, aliases)
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
    was cut short; tear it all down. One listdir when nothing is stale."""
    supervised = {c.id for c in containers if c.state.get("SupervisorPid")}
    if set(netns.existing()) - supervised:
        from minidocker.network import endpoints

        endpoints.sweep(supervised)
