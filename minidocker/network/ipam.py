"""IPAM, IP address management: which address of a network's subnet each container gets.

Docker's IPAM driver keeps a bitmap of each subnet; ours keeps a map, in the network's directory:

    $MINIDOCKER_ROOT/networks/<id>/ipam.json    {"10.213.0.2": "<container id>", ...}

An address is handed out under the network's lock (fcntl on networks/<id>/.lock), written before
the lock is let go, and given back when the container stops. So two `run` at once never get the
same address: the second one reads the file only after the first has written its choice.

In a subnet such as 10.213.0.0/24 not every address is a host's:
  - the first, 10.213.0.0, names the network itself;
  - the last, 10.213.0.255, is the broadcast address (sent to every host on the subnet);
  - the gateway, 10.213.0.1 by default, is the bridge's own address on the host.
So 253 containers fit in a /24.

Addresses are plain integers here (socket.inet_aton): the `ipaddress` module would cost every
`run` ~5 ms to import.
"""

import os
import socket
import struct

from minidocker import store
from minidocker.errors import MinidockerError


def to_int(ip: str) -> int:
    try:
        return struct.unpack("!I", socket.inet_aton(ip))[0]
    except OSError:
        raise MinidockerError(f"invalid IP address: {ip}", "use dotted IPv4, e.g. 10.213.0.5") from None


def to_ip(number: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", number))


def parse_subnet(cidr: str) -> tuple[int, int]:
    """"10.213.0.0/24" -> (network as an int, prefix length). Host bits must be zero."""
    address, _, length = cidr.partition("/")
    if not length.isdigit() or not 8 <= int(length) <= 30:
        raise MinidockerError(f"invalid subnet {cidr}", "use CIDR notation with a prefix from /8 to /30, e.g. 10.213.7.0/24")
    prefix = int(length)
    network = to_int(address)
    if network & ((1 << (32 - prefix)) - 1):
        raise MinidockerError(f"invalid subnet {cidr}: host bits are set", f"did you mean {to_ip(network & mask(prefix))}/{prefix}?")
    return network, prefix


def mask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def contains(subnet: str, ip: str) -> bool:
    network, prefix = parse_subnet(subnet)
    return to_int(ip) & mask(prefix) == network


def overlaps(a: str, b: str) -> bool:
    """Two subnets overlap when the shorter prefix's network holds the other's."""
    (na, pa), (nb, pb) = [(to_int(cidr.split("/")[0]), int(cidr.split("/")[1])) for cidr in (a, b)]  # host routes: /32 too
    shorter = mask(min(pa, pb))
    return na & shorter == nb & shorter


def choose(taken: set[str], subnet: str, gateway: str, requested: str | None = None) -> str:
    """The address for a new endpoint: `requested` if it is free (--ip), else the lowest free
    host address of `subnet`. Never the network's own address, its broadcast, the gateway, or
    an address in `taken`."""
    # --8<-- [start:ex-04-ipam]
    # The requested address if it is a free host address other than the gateway (else Docker's
    # errors), or the lowest free host address of the subnet, or "no available IPv4 addresses".
    network, prefix = parse_subnet(subnet)
    first, last = network + 1, network + (1 << (32 - prefix)) - 2  # without network and broadcast
    reserved = {to_int(ip) for ip in taken} | {to_int(gateway)}
    if requested:
        wanted = to_int(requested)
        if not first <= wanted <= last or wanted == to_int(gateway):
            raise MinidockerError(f"no configured subnet or ip-range contain the IP address {requested}",
                                  f"choose a host address of {subnet} other than the gateway {gateway}")
        if wanted in reserved:
            raise MinidockerError(f"Address already in use: {requested}", "choose another --ip, or let the network pick one")
        return requested
    for candidate in range(first, last + 1):
        if candidate not in reserved:
            return to_ip(candidate)
    raise MinidockerError(f"no available IPv4 addresses on this network's address pools: {subnet}",
                          "stop a container on it, or create a network with a larger --subnet")
    # --8<-- [end:ex-04-ipam]


def _path(network_dir: str) -> str:
    return os.path.join(network_dir, "ipam.json")


def allocations(network_dir: str) -> dict[str, str]:
    """{ip: container id}. Read it under the network's lock if you mean to change it."""
    try:
        return store.read_json(_path(network_dir))
    except FileNotFoundError:
        return {}


def allocate(network_dir: str, subnet: str, gateway: str, container_id: str, requested: str | None = None) -> str:
    """Take an address for `container_id`; the caller holds the network's lock."""
    taken = allocations(network_dir)
    for ip, owner in taken.items():
        if owner == container_id:
            return ip  # a restart after a crash: the address it had is still its own
    ip = choose(set(taken), subnet, gateway, requested)
    taken[ip] = container_id
    store.write_json(_path(network_dir), taken)
    return ip


def release(network_dir: str, container_id: str) -> None:
    """Give back every address `container_id` holds; the caller holds the network's lock."""
    taken = allocations(network_dir)
    kept = {ip: owner for ip, owner in taken.items() if owner != container_id}
    if kept != taken:
        store.write_json(_path(network_dir), kept)
