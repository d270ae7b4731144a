"""The DNS responder of one user network: the process that answers the containers' queries.

It is started by dns.py (`python -m minidocker.network.dns_responder RECORDS UDP_FD TCP_FD`) with
its two sockets already bound to the network's gateway address, port 53 (see dns.py for why the
starter binds them). It reads the network's names from RECORDS, a JSON file that dns.py rewrites
(atomically) whenever a container comes or goes, and re-reads it when it changes; when the file is
gone, the network has no running container left, and the responder exits on its own.

Each query gets one of three fates, decided by answer() (the chapter's exercise):
- a name of the network (a container's name, an alias, a short id): an A record, from the table;
- another single-label name: NXDOMAIN, for a bare name can only mean a container here, and must
  not leak to the outside resolvers (they would only say NXDOMAIN too, more slowly);
- any other name (example.com): forwarded, unchanged, to the upstream resolvers, and their reply
  passed back unchanged.

dnslib does the wire format (parsing and packing the messages); see docs/04-networks.md#dns.
"""

import json
import os
import selectors
import socket
import struct
import sys
import threading

from dnslib import QTYPE, RCODE, RR, A, DNSError, DNSRecord

TTL = 600  # seconds; what Docker's embedded server gives its answers
UPSTREAM_TIMEOUT = 2.0  # per upstream server, as resolv.conf's default `timeout:` is 5 s for all


# --8<-- [start:answer]
def answer(query: DNSRecord, names: dict[str, list[str]]) -> "DNSRecord | None":
    """The reply to `query` from the network's own `names` (lower-case name -> IPv4 addresses),
    or None when the name is not the network's and must be forwarded upstream."""
    # --8<-- [start:ex-04-dns-answer]
    # Look the question's name up in `names`, lower case and without its final dot. Found: a reply
    # (query.reply()) with an A record per address (RR(qname, QTYPE.A, rdata=A(ip), ttl=TTL)) if
    # the type is A or ANY, none for any other type. Not found: NXDOMAIN (RCODE) for a bare name,
    # None (forward it) for a name with a dot.
    #
    # DNS names are case-insensitive (RFC 4343), and a fully qualified one ends with a dot.
    question = query.q
    name = str(question.qname).rstrip(".").lower()
    addresses = names.get(name)
    if addresses is None:
        if "." in name:
            return None  # not one of ours: the upstream resolvers will answer it
        reply = query.reply()
        reply.header.rcode = RCODE.NXDOMAIN  # a bare name that no container has
        return reply
    reply = query.reply()  # same id and question, the "response" bit set
    if question.qtype in (QTYPE.A, QTYPE.ANY):
        for address in addresses:  # one name, several containers (an alias): every address
            reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(address), ttl=TTL))
    # Any other type (AAAA on an IPv4-only network): the name exists, so NOERROR with no answer
    # ("NODATA"); NXDOMAIN would tell the client the A record does not exist either.
    return reply
    # --8<-- [end:ex-04-dns-answer]
# --8<-- [end:answer]


class Records:
    """The network's names, re-read from the records file when dns.py has replaced it."""

    def __init__(self, path: str):
        self.path, self.stamp = path, None
        self.names: dict[str, list[str]] = {}
        self.upstreams: list[tuple[str, int]] = []

    def fresh(self) -> bool:
        """Reload if the file changed; False once it is gone (the responder should exit)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        stamp = (st.st_ino, st.st_mtime_ns)  # an atomic rewrite is a new inode
        if stamp != self.stamp:
            try:
                with open(self.path) as f:
                    data = json.load(f)
                names, upstreams = data["names"], [(host, int(port)) for host, port in data["upstreams"]]
            except FileNotFoundError:
                return False
            except (OSError, ValueError, KeyError, TypeError) as e:  # dns.py renames whole files: not ours
                print(f"dns_responder: {self.path}: {e}; the old names stay", file=sys.stderr, flush=True)
                return True
            self.names, self.upstreams, self.stamp = names, upstreams, stamp
        return True


# --8<-- [start:forward]
def forward(packet: bytes, upstreams: list[tuple[str, int]], tcp: bool) -> "bytes | None":
    """Ask each upstream resolver in turn; return the first reply, as it came."""
    for server in upstreams:
        try:
            return _ask_tcp(packet, server) if tcp else _ask_udp(packet, server)
        except OSError:
            continue  # timed out or refused: the next server
    return None


def _ask_udp(packet: bytes, server: tuple[str, int]) -> bytes:
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(UPSTREAM_TIMEOUT)
        s.connect(server)  # a connected UDP socket takes datagrams from that server only
        s.send(packet)
        while True:
            reply = s.recv(65535)
            if reply[:2] == packet[:2]:  # the same id: not a late reply to an earlier query
                return reply


def _ask_tcp(packet: bytes, server: tuple[str, int]) -> bytes:
    with socket.create_connection(server, UPSTREAM_TIMEOUT) as s:
        # Over TCP each message is prefixed by its length (RFC 1035, 4.2.2).
        s.sendall(struct.pack("!H", len(packet)) + packet)
        reply = _read_message(s)
    if reply is None:
        raise ConnectionResetError("the upstream closed the connection")
    return reply
# --8<-- [end:forward]


def parse_query(packet: bytes) -> "DNSRecord | None":
    """The query in a packet; None for anything else (a resolver drops garbage rather than
    answer a random sender)."""
    try:
        query = DNSRecord.parse(packet)
    except (DNSError, ValueError, IndexError, struct.error):
        return None
    return None if query.header.qr or not query.questions else query


def local_reply(query: DNSRecord, records: Records) -> "bytes | None":
    """The reply from the network's own names; None when the name is not ours to answer."""
    records.fresh()
    try:
        reply = answer(query, records.names)
    except Exception as e:  # noqa: BLE001 - one bad answer must not take the network's names down
        print(f"dns_responder: {query.q.qname}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        reply = query.reply()
        reply.header.rcode = RCODE.SERVFAIL  # the client learns at once, rather than time out
    return None if reply is None else reply.pack()


def upstream_reply(packet: bytes, query: DNSRecord, records: Records, tcp: bool) -> bytes:
    """The reply for a name that is not the network's: the upstream's, or our refusal."""
    if records.upstreams:
        forwarded = forward(packet, records.upstreams, tcp)
        if forwarded is not None:
            return forwarded
    # No upstream (an --internal network keeps its traffic in), or none answered.
    failed = query.reply()
    failed.header.rcode = RCODE.SERVFAIL if records.upstreams else RCODE.REFUSED
    return failed.pack()


def _read_message(conn: socket.socket) -> "bytes | None":
    head = _read_exactly(conn, 2)
    return _read_exactly(conn, struct.unpack("!H", head)[0]) if head else None


def _read_exactly(conn: socket.socket, n: int) -> "bytes | None":
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _answer_udp(sock: socket.socket, packet: bytes, client, records: Records) -> None:
    query = parse_query(packet)
    if query is None:
        return
    reply = local_reply(query, records)
    if reply is not None:
        sock.sendto(reply, client)
    else:  # only a forward can be slow: it waits in a thread of its own
        threading.Thread(target=_forward_udp, args=(sock, packet, query, client, records), daemon=True).start()


def _forward_udp(sock: socket.socket, packet: bytes, query: DNSRecord, client, records: Records) -> None:
    sock.sendto(upstream_reply(packet, query, records, tcp=False), client)


def _serve_tcp(conn: socket.socket, records: Records) -> None:
    """One TCP client: queries until it hangs up (resolvers fall back to TCP for a truncated
    UDP answer, and some, glibc's `options use-vc`, use TCP always)."""
    with conn:
        conn.settimeout(10)
        try:
            while (packet := _read_message(conn)) is not None:
                if (query := parse_query(packet)) is None:
                    return
                reply = local_reply(query, records) or upstream_reply(packet, query, records, tcp=True)
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass


def serve(udp: socket.socket, tcp: socket.socket, records: Records) -> None:
    """Answer until the records file goes away. The network's own names are answered at once, in
    the order the queries came (a resolver that asks for A and AAAA together gets its replies in
    that order); a forward to an upstream, or a TCP client, waits in a thread of its own, so that
    a slow upstream never holds up the local names."""
    with selectors.DefaultSelector() as selector:
        selector.register(udp, selectors.EVENT_READ)
        selector.register(tcp, selectors.EVENT_READ)
        while records.fresh():
            for key, _ in selector.select(timeout=1.0):  # wake up now and then to look at the file
                if key.fileobj is udp:
                    packet, client = udp.recvfrom(65535)
                    _answer_udp(udp, packet, client, records)
                else:
                    conn, _ = tcp.accept()
                    threading.Thread(target=_serve_tcp, args=(conn, records), daemon=True).start()


def main(argv: list[str]) -> int:
    records_path, udp_fd, tcp_fd = argv
    udp = socket.socket(fileno=int(udp_fd))
    tcp = socket.socket(fileno=int(tcp_fd))
    records = Records(records_path)
    if records.fresh():
        serve(udp, tcp, records)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
