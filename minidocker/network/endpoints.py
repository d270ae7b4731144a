"""Plugging a container into networks: its namespace, a veth per network, addresses and routes.

    host namespace                                   container's namespace (netns.py)
    ┌───────────────────────────┐                    ┌───────────────────────────────┐
    │ md0 (bridge) 10.213.0.1/24│── mdv<id>0 ═══════ eth0 10.213.0.2/24             │
    │                           │    (veth: a cable  │ default via 10.213.0.1        │
    └───────────────────────────┘     with two ends) └───────────────────────────────┘

At start (the supervisor, before the runtime): setup(). At exit, stop, disconnect or after a
SIGKILLed supervisor (lifecycle.refresh): teardown(). Every step is written down before it is
made (the endpoint, with its veth's name, goes into endpoints.json first), so that teardown after
a crash at any point knows what may exist, and deletes it whether it does or not.
"""

import os

from minidocker import store
from minidocker.network import dns, firewall, ipam, netns, networks

_host = None
_host_pid = 0  # the process that opened _host


def host_netlink():
    """One netlink socket to the host's namespace, opened on first use in this process.

    A supervisor forked by the daemon (chapter 07) closes every fd it inherited, this socket's
    too: the number may since name another file (ENOTSOCK), so it opens its own and forgets the
    old object without closing it (closing would close whatever now has that number)."""
    global _host, _host_pid
    if _host is not None and _host_pid != os.getpid():
        _host.sock.detach()
        _host = None
    if _host is None:
        from minidocker.network.netlink import Netlink

        _host, _host_pid = Netlink(), os.getpid()
    return _host


def veth_name(container_id: str, index: int) -> str:
    return f"mdv{container_id[:9]}{index}"  # 13 characters: IFNAMSIZ allows 15


def mac_of(ip: str) -> str:
    """02:42 and the four bytes of the IP, as Docker did before 26.0: readable (the MAC names the
    IP), and unique on the network since the IP is. 02: a locally administered unicast address."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


# --8<-- [start:ensure-bridge]
def ensure_bridge(net: dict) -> int:
    """The network's bridge, made if missing (the default one on first use); its index. The
    caller holds the network's lock."""
    nl, name = host_netlink(), networks.bridge_name(net)
    index = nl.link_index(name)
    if index is None:
        config = net["IPAM"]["Config"][0]
        gateway, prefix = config["Gateway"], int(config["Subnet"].split("/")[1])
        nl.add_bridge(name, mac_of(gateway))
        index = nl.link_index(name)
        nl.add_address(index, gateway, prefix)  # the host's address on the network: the gateway
        nl.set_up(index)
        firewall.network_created(net)  # its NAT and FORWARD rules, with the bridge (network-api.md)
    return index
# --8<-- [end:ensure-bridge]


def requested_networks(record: dict) -> dict:
    """{network name: {"IPAMConfig": {"IPv4Address"}, "Aliases": [...]}}: the networks the
    container asked for (--network, then `network connect`)."""
    mode = record["HostConfig"].get("NetworkMode") or "bridge"
    wanted = dict((record.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    if mode not in ("none", "host") and not mode.startswith("container:") and mode not in wanted:
        wanted = {mode: {}, **wanted}
    return wanted


def setup(container_id: str, record: dict) -> None:
    """Everything the container's network needs before its first process starts."""
    wanted = requested_networks(record)
    _, inside = netns.create(container_id)
    try:
        ns_fd = os.open(netns.path_of(container_id), os.O_RDONLY | os.O_CLOEXEC)
        try:
            for index, (name, config) in enumerate(wanted.items()):
                attach(container_id, record, networks.get(name), index, config or {}, ns_fd, inside)
        finally:
            os.close(ns_fd)
    finally:
        inside.close()


def attach(container_id: str, record: dict, net: dict, index: int, config: dict, ns_fd: int, inside) -> dict:
    """One endpoint: an address, a veth whose inner end is eth<index>, plugged into the bridge."""
    requested = (config.get("IPAMConfig") or {}).get("IPv4Address") or None
    subnet, gateway = net["IPAM"]["Config"][0]["Subnet"], net["IPAM"]["Config"][0]["Gateway"]
    veth, inner = veth_name(container_id, index), f"eth{index}"
    directory = networks.network_dir(net)
    with store.lock(directory):
        ip = ipam.allocate(directory, subnet, gateway, container_id, requested)
        endpoint = {"Name": record["Name"].lstrip("/"), "EndpointID": store.new_id(), "MacAddress": mac_of(ip),
                    "IPv4Address": f"{ip}/{subnet.split('/')[1]}", "IPv6Address": "",
                    "Aliases": list(config.get("Aliases") or []), "Veth": veth, "Interface": inner}
        taken = networks.endpoints_of(net)
        taken[container_id] = endpoint
        networks.write_endpoints(net, taken)  # first written, then made: see the module's doc
        # Under the lock: the last container of the default network removes its bridge.
        bridge = ensure_bridge(net)
        nl = host_netlink()
        nl.add_veth(veth, inner, ns_fd, endpoint["MacAddress"])
        nl.set_up(nl.link_index(veth), master=bridge)
    # Inside the container's namespace, through the socket opened there.
    inner_index = inside.link_index(inner)
    inside.add_address(inner_index, ip, int(subnet.split("/")[1]))
    inside.set_up(inner_index)
    if index == 0:
        inside.add_default_route(gateway)
    net = networks.get(net["Id"])  # with this container in Containers, for the hooks
    firewall.endpoint_up(net, container_id, ip, record["HostConfig"])
    if net["Name"] != "bridge":  # the default bridge has no names (Docker)
        dns.container_started(net, container_id)
    return endpoint


def detach(container_id: str, record: dict, net: dict) -> None:
    """Undo attach(), whatever part of it was done."""
    directory = networks.network_dir(net)
    endpoint = networks.endpoints_of(net).get(container_id)
    if endpoint is None:
        with store.lock(directory):
            ipam.release(directory, container_id)
        return
    ip = endpoint["IPv4Address"].split("/")[0]
    firewall.endpoint_down(net, container_id, ip, record.get("HostConfig", {}))
    with store.lock(directory):
        host_netlink().delete_link(endpoint["Veth"])  # both ends go
        taken = networks.endpoints_of(net)
        taken.pop(container_id, None)
        networks.write_endpoints(net, taken)
        ipam.release(directory, container_id)
        # The default network's md0 stays when its last container goes, as dockerd keeps docker0
        # for good: making it again for the next container (a link, its address, the firewall's
        # rules) and deleting it (an RCU grace period) cost ~85 ms of every `run` on the bridge.
    if net["Name"] != "bridge":
        # After the endpoint is gone from endpoints.json, not before: two containers stopping at
        # once would each still see the other, and neither would stop the responder.
        dns.container_stopped(net, container_id)


def teardown(container_id: str, record: dict | None = None) -> None:
    """Everything setup() may have made, gone: endpoints, addresses, veths, the namespace file."""
    record = record or {"Name": "", "HostConfig": {}}
    # The namespace first: unmounting its last reference lets the kernel destroy it, its links
    # with it, and a veth's host end goes with its inner end, in the background. detach() then
    # finds the veth gone (ENODEV) instead of deleting it and waiting ~25 ms for an RCU grace
    # period. (A veth whose namespace some process still holds is deleted by detach(), as before.)
    netns.remove(container_id)
    for net in networks.all():
        if container_id in networks.endpoints_of(net) or container_id in ipam.allocations(networks.network_dir(net)).values():
            detach(container_id, record, net)


def sweep(is_running) -> None:
    """The stale-resource sweep: tear down every namespace or endpoint whose container is not
    running (its supervisor was killed, or its record is gone), then ask N2's and N3's parts to
    do the same for theirs. `is_running(container_id)` is asked after the listing, so that a
    container that started while we listed is seen running (sandbox.sweep)."""
    found = set(netns.existing())
    for net in networks.all():
        found |= set(networks.endpoints_of(net)) | set(ipam.allocations(networks.network_dir(net)).values())
    for container_id in found:
        if not is_running(container_id):
            teardown(container_id)
    firewall.cleanup_stale()
    dns.cleanup_stale()
