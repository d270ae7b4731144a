"""Talking to the kernel's network stack over rtnetlink, with pyroute2's messages.

`ip link add`, `ip addr add`, `ip route` are all one thing underneath: a message on an AF_NETLINK
socket (protocol NETLINK_ROUTE), "please make this link / add this address", answered by an ACK
or an errno. A message is a 16-byte header (length, type such as RTM_NEWLINK, flags, sequence
number, port), a fixed struct (ifinfomsg for a link, ifaddrmsg, rtmsg) and a list of attributes
(NLAs: type-length-value, nested for a veth's peer). pyroute2 knows every message and attribute
of the kernel and turns them into bytes and back; this module sends them and reads the answers.

Why not pyroute2's IPRoute? Since 0.9 it runs on asyncio, and importing it costs ~80-140 ms: more
than a whole `run --rm busybox true`. Its message classes alone cost ~20 ms, and one request is a
send and a recv of well under a millisecond (bench/network_setup.py measures both). We also skip
`pyroute2/__init__.py`, which imports every protocol the library knows (conntrack, wireguard,
nl80211...) for ~140 ms: see _messages().

Every request shows in `minidocker --trace` as `sendmsg(RTM_NEWLINK ...)`.
"""

import os
import socket
import struct
import sys

from minidocker import linux

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 16, 17, 18, 20, 22, 24, 26
MESSAGE_NAMES = {16: "RTM_NEWLINK", 17: "RTM_DELLINK", 18: "RTM_GETLINK", 20: "RTM_NEWADDR", 22: "RTM_GETADDR",
                 24: "RTM_NEWROUTE", 26: "RTM_GETROUTE"}
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
HEADER = struct.Struct("=IHHII")  # struct nlmsghdr: length, type, flags, sequence, port id


def _messages():
    """pyroute2's message classes, without running pyroute2/__init__.py.

    Importing `pyroute2.netlink.rtnl.ifinfmsg` would first import the package `pyroute2`, whose
    __init__ imports the whole library. A package is only a module with a __path__: we register
    an empty one under that name, and Python then finds the submodules we ask for in its
    directory, and nothing else."""
    if "pyroute2" not in sys.modules:
        import importlib.util
        import types

        spec = importlib.util.find_spec("pyroute2")
        package = types.ModuleType("pyroute2")
        package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
        sys.modules["pyroute2"] = package
    from pyroute2.netlink import nlmsgerr
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    return ifinfmsg, ifaddrmsg, rtmsg, nlmsgerr


@linux._traced(lambda sock, words, data: words, name="sendmsg")
def _send(sock: socket.socket, words: str, data: bytes) -> int:
    return sock.send(data)


class Netlink:
    """One rtnetlink socket. It talks to the network namespace it was opened in, for its whole
    life, whichever namespace we are in later: that is how we configure a container's namespace
    from outside it (netns.py opens one while inside)."""

    def __init__(self):
        self.ifinfmsg, self.ifaddrmsg, self.rtmsg, self.nlmsgerr = _messages()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)  # 0: NETLINK_ROUTE
        self.sock.bind((0, 0))  # port 0: the kernel picks our address
        self.sequence = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, cls, kind: int, flags: int, fields: dict, attrs: list, words: str) -> list:
        """Send one message; return the replies (for a dump), or raise the kernel's errno."""
        msg = cls()
        msg.update(fields)
        msg["attrs"] = attrs
        self.sequence += 1
        msg["header"].update(type=kind, flags=NLM_F_REQUEST | NLM_F_ACK | flags, sequence_number=self.sequence)
        msg.encode()
        _send(self.sock, f"{MESSAGE_NAMES[kind]} {words}", bytes(msg.data))
        replies = []
        while True:  # a dump comes in many datagrams, each with many messages, until NLMSG_DONE
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset < len(data):
                length, kind_back, _, sequence, _ = HEADER.unpack_from(data, offset)
                if sequence == self.sequence:
                    if kind_back == NLMSG_DONE:
                        return replies
                    if kind_back == NLMSG_ERROR:
                        error = -struct.unpack_from("=i", data, offset + HEADER.size)[0]
                        if error:
                            raise OSError(error, f"netlink {MESSAGE_NAMES[kind]} {words}: {os.strerror(error)}")
                        return replies  # the ACK
                    reply = cls(data, offset=offset, length=length)
                    reply.decode()
                    replies.append(reply)
                offset += (length + 3) & ~3  # messages are 4-byte aligned

    # -- links ------------------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        try:
            return self.request(self.ifinfmsg, RTM_GETLINK, 0, {}, [("IFLA_IFNAME", name)], name)[0]["index"]
        except OSError as e:
            if e.errno == 19:  # ENODEV
                return None
            raise

    def add_bridge(self, name: str, mac: str) -> None:
        """`ip link add NAME address MAC type bridge`. A fixed MAC: without one, a bridge takes
        the lowest MAC of its ports, and changes it as containers come and go."""
        self.request(self.ifinfmsg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, {},
                     [("IFLA_IFNAME", name), ("IFLA_ADDRESS", mac),
                      ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})], f"{name} bridge")

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, peer_mac: str) -> None:
        """`ip link add NAME type veth peer name PEER netns NS address MAC`: a pair of virtual
        Ethernet devices, a cable with two ends. The peer end is born inside the container's
        namespace (IFLA_NET_NS_FD), so there is no moment when it sits on the host."""
        # --8<-- [start:ex-04-veth]
        # One RTM_NEWLINK: the link NAME of kind "veth", whose IFLA_INFO_DATA nests the peer's
        # own attributes (its name, MAC, and the namespace it is born in).
        peer_attrs = [("IFLA_IFNAME", peer), ("IFLA_ADDRESS", peer_mac), ("IFLA_NET_NS_FD", peer_netns_fd)]
        self.request(self.ifinfmsg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, {},
                     [("IFLA_IFNAME", name),
                      ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), (
                          "IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]})]})],
                     f"{name} veth peer {peer} netns fd {peer_netns_fd}")
        # --8<-- [end:ex-04-veth]

    def set_up(self, index: int, master: int | None = None) -> None:
        """`ip link set DEV up [master BRIDGE]`: plug a port into a bridge, and switch it on."""
        attrs = [("IFLA_MASTER", master)] if master else []
        self.request(self.ifinfmsg, RTM_NEWLINK, 0, {"index": index, "flags": IFF_UP, "change": IFF_UP},
                     attrs, f"index {index} up" + (f" master {master}" if master else ""))

    def delete_link(self, name: str) -> bool:
        """`ip link del NAME`; False if there was none. Deleting one end of a veth deletes both."""
        try:
            self.request(self.ifinfmsg, RTM_DELLINK, 0, {}, [("IFLA_IFNAME", name)], name)
            return True
        except OSError as e:
            if e.errno == 19:  # ENODEV
                return False
            raise

    def links(self) -> list[str]:
        return [m.get_attr("IFLA_IFNAME") for m in self.request(self.ifinfmsg, RTM_GETLINK, NLM_F_DUMP, {}, [], "dump")]

    # -- addresses and routes -------------------------------------------------------------------

    def add_address(self, index: int, ip: str, prefixlen: int) -> None:
        """`ip addr add IP/PREFIX dev DEV`: the kernel also adds the route to the subnet."""
        self.request(self.ifaddrmsg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                     {"family": socket.AF_INET, "prefixlen": prefixlen, "index": index},
                     [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)], f"{ip}/{prefixlen} index {index}")

    def addresses(self, index: int) -> list[tuple[str, int]]:
        """`ip -4 addr show dev DEV`: the link's IPv4 addresses, as (ip, prefix length)."""
        found = self.request(self.ifaddrmsg, RTM_GETADDR, NLM_F_DUMP, {"family": socket.AF_INET}, [], "dump")
        return [(a.get_attr("IFA_LOCAL") or a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in found if a["index"] == index]

    def add_default_route(self, gateway: str) -> None:
        """`ip route add default via GATEWAY`: everything not on the subnet goes to the bridge."""
        self.request(self.rtmsg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL,
                     {"family": socket.AF_INET, "dst_len": 0, "table": RT_TABLE_MAIN, "proto": RTPROT_BOOT,
                      "scope": RT_SCOPE_UNIVERSE, "type": RTN_UNICAST},
                     [("RTA_GATEWAY", gateway)], f"default via {gateway}")

    def routed_subnets(self) -> list[str]:
        """The IPv4 subnets the host's routing tables reach directly ("10.0.0.0/8"), default
        routes left out: read, never used to send anything."""
        found = []
        for route in self.request(self.rtmsg, RTM_GETROUTE, NLM_F_DUMP, {"family": socket.AF_INET}, [], "dump"):
            if route["dst_len"] and route.get_attr("RTA_DST"):
                found.append(f"{route.get_attr('RTA_DST')}/{route['dst_len']}")
        return found
