"""Chapter 04: names that resolve (minidocker/network/dns.py and dns_responder.py).

First the answer, API-level: whatever names and aliases a network holds, each resolves to its
containers' addresses, in any letter case, with or without the final dot; an unknown bare name is
NXDOMAIN; any other name is forwarded. Then the responder, on 127.0.0.1 in this process, with a
fake upstream server beside it (no test ever asks a real resolver). Then through the CLI: two
containers on a user network find each other by name, alias and short id with busybox nslookup;
the default bridge resolves no names; the responder stops with the last container, and a killed
one is started again by the next command.
"""

import json
import os
import socket
import struct
import threading
import types

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from hypothesis import given, settings, strategies as st

import harness
from minidocker.network import dns, dns_responder

DOCS = "docs/04-networks.md#dns"
EXERCISE = "docs/04-networks.md#ex-04-dns-answer"
OUTSIDE_NAME, OUTSIDE_IP = "outside.example.test", "192.0.2.7"  # what the fake upstream knows


# ---------------------------------------------------------------------------------------------
# The answer (the exercise) and the name table

label = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,20}", fullmatch=True)
address = st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: "10.%d.%d.%d" % t[1:])


@st.composite
def networks(draw):
    """Members of a network: distinct names, ids and addresses; aliases may be shared."""
    n = draw(st.integers(1, 6))
    names = draw(st.lists(label, min_size=n, max_size=n, unique_by=str.lower))
    ips = draw(st.lists(address, min_size=n, max_size=n, unique=True))
    ids = draw(st.lists(st.binary(min_size=32, max_size=32).map(bytes.hex), min_size=n, max_size=n, unique=True))
    aliases = draw(st.lists(st.lists(label, max_size=3), min_size=n, max_size=n))
    members = [{"id": i, "name": nm, "ip": ip, "aliases": al} for i, nm, ip, al in zip(ids, names, ips, aliases)]
    # a name must not be another container's alias or short id: each name then has one owner
    taken = {m["name"].lower() for m in members}
    for m in members:
        m["aliases"] = [a for a in m["aliases"] if a.lower() not in taken and a.lower() not in {x["id"][:12] for x in members}]
    return members


def ask(name: str, names: dict, qtype="A"):
    return dns_responder.answer(DNSRecord.question(name, qtype), names)


def addresses_in(reply) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


@settings(max_examples=40)
@given(networks(), st.sampled_from([str.lower, str.upper, str.swapcase]), st.booleans())
def test_every_name_alias_and_short_id_resolves(members, case, dot):
    table = dns.name_table(members)
    for m in members:
        for name in (m["name"], m["id"][:12], *m["aliases"]):
            query = case(name) + ("." if dot else "")
            reply = ask(query, table)
            assert reply is not None and reply.header.rcode == RCODE.NOERROR, (
                f"{query!r} is a name of the network, yet the answer is {reply} (see {EXERCISE})")
            assert m["ip"] in addresses_in(reply), (
                f"{query!r} should resolve to {m['ip']} (container {m['name']}), got {addresses_in(reply)} (see {EXERCISE})")
            assert str(reply.q.qname) == str(DNSRecord.question(query).q.qname), "the reply must repeat the question as asked"


@settings(max_examples=20)
@given(networks())
def test_a_shared_alias_has_every_address(members):
    for m in members:
        m["aliases"] = ["shared-alias"]
    reply = ask("shared-alias", dns.name_table(members))
    assert sorted(addresses_in(reply)) == sorted(m["ip"] for m in members), (
        f"an alias that several containers share resolves to all their addresses (see {DOCS})")


@settings(max_examples=40)
@given(networks(), label)
def test_an_unknown_bare_name_is_nxdomain_and_a_dotted_one_is_forwarded(members, name):
    table = dns.name_table(members)
    if name.lower() in table:
        return
    reply = ask(name, table)
    assert reply is not None and reply.header.rcode == RCODE.NXDOMAIN, (
        f"{name!r} is no container of the network: NXDOMAIN, not {reply} (see {EXERCISE})")
    assert ask(f"{name}.example.test", table) is None, (
        f"a dotted name that is not the network's must be forwarded upstream: answer() returns None (see {EXERCISE})")


def test_aaaa_of_a_known_name_is_an_empty_noerror():
    reply = ask("web", {"web": ["10.9.0.2"]}, "AAAA")
    assert reply is not None and reply.header.rcode == RCODE.NOERROR and not reply.rr, (
        f"AAAA for a container on an IPv4 network: NOERROR with no answer (NODATA), got {reply} (see {EXERCISE})")


def test_the_reply_answers_the_query():
    query = DNSRecord.question("web", "A")
    reply = dns_responder.answer(query, {"web": ["10.9.0.2"]})
    assert reply.header.id == query.header.id and reply.header.qr, "a reply has the query's id and the QR bit"
    assert reply.rr[0].ttl > 0


# ---------------------------------------------------------------------------------------------
# The responder, in this process, on 127.0.0.1; a fake upstream beside it

class FakeUpstream:
    """A DNS server on 127.0.0.1 that knows one name (UDP and TCP); it counts what it is asked."""

    def __init__(self):
        # One port number for both, as a DNS server has: the kernel picks a free UDP port, which
        # another process may hold for TCP; then try another.
        for _ in range(20):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        self.tcp.listen(4)
        self.asked: list[str] = []
        threading.Thread(target=self._udp, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def reply(self, packet: bytes) -> bytes:
        query = DNSRecord.parse(packet)
        self.asked.append(str(query.q.qname).rstrip("."))
        reply = query.reply()
        if str(query.q.qname).rstrip(".").lower() == OUTSIDE_NAME and query.q.qtype == QTYPE.A:
            reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(OUTSIDE_IP), ttl=60))
        elif str(query.q.qname).rstrip(".").lower() != OUTSIDE_NAME:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply.pack()

    def _udp(self):
        try:
            while True:
                packet, client = self.udp.recvfrom(65535)
                self.udp.sendto(self.reply(packet), client)
        except OSError:
            pass  # closed

    def _tcp(self):
        try:
            while True:
                conn, _ = self.tcp.accept()
                with conn:
                    n = struct.unpack("!H", conn.recv(2))[0]
                    out = self.reply(conn.recv(n))
                    conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            pass

    def close(self):
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def upstream():
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture
def responder(tmp_path, upstream):
    """dns_responder.serve() in a thread, on 127.0.0.1, with a records file naming `web` and the
    fake upstream. Removing the records file stops it."""
    records = tmp_path / "records.json"
    records.write_text(json.dumps({"names": {"web": ["10.9.0.2"], "db": ["10.9.0.3"]},
                                   "upstreams": [["127.0.0.1", upstream.port]]}))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(udp.getsockname())
    tcp.listen(4)
    thread = threading.Thread(target=dns_responder.serve, args=(udp, tcp, dns_responder.Records(str(records))), daemon=True)
    thread.start()
    yield types.SimpleNamespace(server=udp.getsockname(), records=records, thread=thread)
    stop(records, udp.getsockname(), thread)
    udp.close()
    tcp.close()


def replace(records, data):
    """Write the records as dns.py does: a new file renamed over the old (the responder may be
    reading it right now; it must see the old file or the new one, never half of one)."""
    tmp = records.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(records)


def stop(records, server, thread):
    if records.exists():
        records.unlink()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"", server)  # wake it up: it looks at the file after each event
    thread.join(5)


def query(server, name, tcp=False, qtype="A") -> DNSRecord:
    raw = DNSRecord.question(name, qtype).send(server[0], server[1], tcp=tcp, timeout=3)
    return DNSRecord.parse(raw)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_responder_answers_its_names_and_forwards_the_rest(responder, upstream, tcp):
    server = responder.server
    reply = query(server, "WEB.", tcp)
    assert addresses_in(reply) == ["10.9.0.2"], f"the responder should answer `web` from its records, got {reply} (see {DOCS})"
    assert upstream.asked == [], "a name of the network must never be asked upstream"
    reply = query(server, "nosuch", tcp)
    assert reply.header.rcode == RCODE.NXDOMAIN, f"an unknown bare name is NXDOMAIN, got {reply}"
    reply = query(server, OUTSIDE_NAME, tcp)
    assert addresses_in(reply) == [OUTSIDE_IP] and upstream.asked == [OUTSIDE_NAME], (
        f"{OUTSIDE_NAME} should be forwarded to the upstream and its answer passed back, got {reply} (see {DOCS})")


def test_responder_answers_its_names_in_the_order_asked(responder):
    # busybox's nslookup asks for A and AAAA at once and prints each reply as it comes: the
    # network's own names must come back in the order asked, or its output changes run to run.
    asked = [DNSRecord.question(name, qtype) for _ in range(10) for name in ("web", "db") for qtype in ("A", "AAAA")]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        for q in asked:
            s.sendto(q.pack(), responder.server)
        replies = [DNSRecord.parse(s.recv(65535)) for _ in asked]
    assert [r.header.id for r in replies] == [q.header.id for q in asked], (
        f"replies to local names must come back in the order of the queries (see {DOCS})")


def test_responder_rereads_its_records_and_stops_without_them(responder):
    server, records = responder.server, responder.records
    data = json.loads(records.read_text())
    data["names"]["cache"] = ["10.9.0.4"]
    replace(records, data)
    assert addresses_in(query(server, "cache")) == ["10.9.0.4"], f"a name added to the records must resolve at once (see {DOCS})"
    stop(records, server, responder.thread)
    assert not responder.thread.is_alive(), "without its records file (no container left) the responder must end"


def test_internal_network_refuses_outside_names(responder, upstream):
    server, records = responder.server, responder.records
    data = json.loads(records.read_text())
    data["upstreams"] = []
    replace(records, data)
    reply = query(server, OUTSIDE_NAME)
    assert reply.header.rcode == RCODE.REFUSED and upstream.asked == [], (
        f"with no upstream (an --internal network) an outside name is REFUSED, never forwarded, got {reply}")


def test_a_taken_port_53_is_a_clear_error_that_names_its_holder(tmp_path, monkeypatch):
    harness.need_root()  # port 53 is a privileged port
    monkeypatch.setattr(dns, "BIND_PATIENCE", 0)  # no removed network's responder to wait for here
    address = "127.213.0.1"  # all of 127/8 is loopback: clear of a resolver on 127.0.0.1 or 127.0.0.53
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((address, 53))
        with pytest.raises(dns.MinidockerError) as failed:
            dns._start(address, str(tmp_path))
    assert failed.value.what == f"cannot serve DNS on {address}:53: Address already in use", failed.value
    assert f"pid={os.getpid()}" in failed.value.hint, (
        f"the hint should name who holds the port, as `ss -p` does: {failed.value.hint} (see {DOCS})")
    assert not os.path.exists(tmp_path / "responder.pid"), "no responder may be left half-started"


def test_upstreams_from_the_environment_or_resolv_conf(monkeypatch):
    monkeypatch.setenv("MINIDOCKER_DNS_UPSTREAM", "127.0.0.1:5353, 10.0.0.1,[::1]:53")
    assert dns.upstreams() == [("127.0.0.1", 5353), ("10.0.0.1", 53), ("::1", 53)]
    monkeypatch.delenv("MINIDOCKER_DNS_UPSTREAM")
    with open("/etc/resolv.conf") as f:
        expected = [line.split()[1] for line in f if line.split()[:1] == ["nameserver"] and len(line.split()) > 1]
    assert [host for host, _ in dns.upstreams()] == expected, "by default, the host's nameservers, in order"


def test_the_default_bridge_has_no_resolver():
    config = {"IPAM": {"Config": [{"Subnet": "10.99.0.0/24", "Gateway": "10.99.0.1"}]}, "Driver": "bridge"}
    assert dns.resolver_ip({"Name": "bridge", **config}) is None, f"the default bridge resolves no names, as Docker's (see {DOCS})"
    assert dns.resolver_ip({"Name": "mynet", **config}) == "10.99.0.1", "a user network's resolver is its gateway"


# ---------------------------------------------------------------------------------------------
# Through the CLI: containers on a user network find each other

def responders() -> set[int]:
    """This session's DNS responder processes."""
    marker = f"MINIDOCKER_ROOT={os.environ['MINIDOCKER_ROOT']}".encode()
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"minidocker.network.dns_responder" not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    found.add(int(entry))
        except OSError:
            pass
    return found


def ask_host(server_ip: str, name: str):
    """Query the network's resolver from the host (the bridge's address is the host's own):
    the reply, or None when nothing listens there. A connected UDP socket hears the kernel's
    "port unreachable" at once (ECONNREFUSED), where an unconnected one would wait for a timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.connect((server_ip, 53))
        try:
            s.send(DNSRecord.question(name, "A").pack())
            return DNSRecord.parse(s.recv(65535))
        except (ConnectionRefusedError, socket.timeout):
            return None


@pytest.fixture
def cli(md, upstream):
    """The CLI, every command pointing the responders at the fake upstream (never a real one)."""
    env = {"MINIDOCKER_DNS_UPSTREAM": f"127.0.0.1:{upstream.port}"}
    return lambda *args, **kw: md(*args, env=env, **kw)


@pytest.fixture
def user_network(cli):
    """A user network: (name, its gateway, where its resolver listens)."""
    name = f"mdtest-dns-{os.getpid()}"
    cli("network", "create", name, check=True)
    net = json.loads(cli("network", "inspect", name, check=True).stdout)[0]
    yield name, net["IPAM"]["Config"][0]["Gateway"]
    cli("network", "rm", name)


def nslookup(output: str) -> list[str]:
    """The addresses in busybox nslookup's output (after the server's own lines)."""
    answers = output.split("\n\n", 1)[1] if "\n\n" in output else ""
    return [line.split()[-1] for line in answers.splitlines() if line.startswith("Address")]


def test_containers_resolve_each_other_by_name_alias_and_short_id(cli, user_network, upstream):
    net, gateway = user_network
    web = cli("run", "-d", "--network", net, "--name", "web", "--network-alias", "cache", "busybox", "sleep", "60")
    assert web.returncode == 0, web.stderr
    short = web.stdout.strip()[:12]
    try:
        ip = json.loads(cli("inspect", "web", check=True).stdout)[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
        script = "; ".join(f"echo == {n}; nslookup -type=a {n}" for n in ("web", "CACHE", short, "nosuch", OUTSIDE_NAME))
        out = cli("run", "--rm", "--network", net, "busybox", "sh", "-c", f"cat /etc/resolv.conf; {script}")
        assert out.returncode == 0, out.stderr
        assert f"nameserver {gateway}" in out.stdout, (
            f"a container on a user network names the network's resolver ({gateway}) in /etc/resolv.conf:\n{out.stdout} (see {DOCS})")
        parts = {p.split("\n", 1)[0]: p for p in out.stdout.split("== ")[1:]}
        for name in ("web", "CACHE", short):
            assert nslookup(parts[name]) == [ip], (
                f"`nslookup {name}` in a container on {net} should find web's address {ip}:\n{parts[name]} (see {DOCS})")
        assert nslookup(parts["nosuch"]) == [] and "NXDOMAIN" in parts["nosuch"], (
            f"an unknown name is NXDOMAIN:\n{parts['nosuch']} (see {EXERCISE})")
        assert nslookup(parts[OUTSIDE_NAME]) == [OUTSIDE_IP] and OUTSIDE_NAME in upstream.asked, (
            f"{OUTSIDE_NAME} should be forwarded to the upstream ($MINIDOCKER_DNS_UPSTREAM) and answered:\n{parts[OUTSIDE_NAME]} (see {DOCS})")
        assert [n for n in upstream.asked if n.split(".")[0].lower() in ("web", "cache", short, "nosuch")] == [], (
            f"the network's own names must never be asked upstream, but it saw {upstream.asked}")
    finally:
        cli("rm", "-f", "web")
    harness.wait_until(lambda: ask_host(gateway, "web") is None and not responders(),
                       "the responder to stop with the network's last container")


def test_responder_lives_while_any_container_does_and_comes_back_after_sigkill(cli, user_network):
    net, gateway = user_network
    for name in ("first", "second"):
        assert cli("run", "-d", "--network", net, "--name", name, "busybox", "sleep", "60").returncode == 0
    try:
        assert len(responders()) == 1, f"one responder per network, found {responders()} (see {DOCS})"
        cli("rm", "-f", "first", check=True)  # the container whose start started the responder
        harness.wait_until(lambda: (r := ask_host(gateway, "first")) and r.header.rcode == RCODE.NXDOMAIN,
                           "`first` to be NXDOMAIN once it is removed")
        assert addresses_in(ask_host(gateway, "second")), f"`second` still runs: its name must still resolve (see {DOCS})"
        for pid in responders():
            os.kill(pid, 9)
        harness.wait_until(lambda: ask_host(gateway, "second") is None, "the killed responder to be gone")
        cli("ps", check=True)  # the next command repairs what the SIGKILL broke
        reply = ask_host(gateway, "second")
        assert reply is not None and addresses_in(reply), (
            f"after its responder was SIGKILLed, the next command must start it again (see {DOCS})")
    finally:
        cli("rm", "-f", "second")
    harness.wait_until(lambda: not responders(), "the responder to stop with the network's last container")


def test_the_default_bridge_resolves_no_names(cli):
    out = cli("run", "--rm", "busybox", "cat", "/etc/resolv.conf")
    assert out.returncode == 0, out.stderr
    net = json.loads(cli("network", "inspect", "bridge", check=True).stdout)[0]
    gateway = net["IPAM"]["Config"][0]["Gateway"]
    assert f"nameserver {gateway}" not in out.stdout and not responders(), (
        f"the default bridge has no name resolver, as Docker's (see {DOCS}):\n{out.stdout}")
