"""What chapter 04's firewall tests share: an "outside" of the test's own, user networks, servers
in containers, and dockerd's FORWARD policy. (A helper module, not a test file: loaded with
importlib.import_module("chapters.04.netlab").)

The outside world stands in for the internet, and is a network namespace this test makes: a veth
from the host into it, a /30 of 198.18.0.0/15 (the benchmarking range, RFC 2544: never routed on
the internet), the namespace owning one address and the host the other. Nothing in these tests
sends a packet anywhere else than there, to 127.0.0.1, or to the host's own addresses.
"""

import os
import socket
import subprocess
import sys

import harness
import pytest

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
while True:
    conn, (peer, _) = s.accept()
    conn.sendall(peer.encode() + b"\\n")  # who the outside sees: the source address, after NAT
    conn.close()
"""


class Outside:
    def __init__(self, ns: str, host_ip: str, ip: str, port: int):
        self.ns, self.host_ip, self.ip, self.port = ns, host_ip, ip, port


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def outside():
    """A namespace `md-out-PID` behind veth mdohPID (host) / mdonPID (inside), with a server
    that answers each connection with the source address it saw."""
    harness.need_root()
    pid = os.getpid()
    ns, host_end, ns_end = f"md-out-{pid}", f"mdoh{pid}", f"mdon{pid}"
    base = f"198.{18 + (pid >> 14) % 2}.{(pid >> 6) % 256}.{(pid % 64) * 4}"  # a /30 of this session's own
    prefix = base.rsplit(".", 1)[0]
    host_ip, ip = f"{prefix}.{int(base.rsplit('.', 1)[1]) + 1}", f"{prefix}.{int(base.rsplit('.', 1)[1]) + 2}"
    server = None
    try:
        _ip("netns", "add", ns)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_end)
        _ip("link", "set", host_end, "up")
        for args in (["addr", "add", f"{ip}/30", "dev", ns_end], ["link", "set", ns_end, "up"],
                     ["link", "set", "lo", "up"]):
            _ip("-n", ns, *args)
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, ip, "9000"],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready", "the outside's server did not start"
        yield Outside(ns, host_ip, ip, 9000)
    finally:
        if server:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def forward_drop():
    """dockerd's FORWARD policy, DROP, for the length of one test; restored after, and only if
    this fixture changed it."""
    harness.need_root()
    before = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True).stdout
    policy = before.splitlines()[0].split()[-1]  # "-P FORWARD ACCEPT"
    if policy != "DROP":
        subprocess.run(["iptables", "-P", "FORWARD", "DROP"], check=True)
    try:
        yield
    finally:
        if policy != "DROP":
            subprocess.run(["iptables", "-P", "FORWARD", policy], check=True)


@pytest.fixture
def networks(md):
    """networks(n, internal=False) -> names of n new user networks; after the test, every
    container of the session's root is removed, then the networks."""
    made = []

    def make(count: int = 1, internal: bool = False) -> list[str]:
        names = []
        for _ in range(count):
            name = f"mdt-{os.getpid()}-{len(made)}"
            out = md("network", "create", *(["--internal"] if internal else []), name)
            assert out.returncode == 0, f"cannot create a network {harness.explain(out)}"
            made.append(name)
            names.append(name)
        return names

    yield make
    ids = md("ps", "-aq").stdout.split()  # this session's root holds only this test's containers now
    if ids:
        md("rm", "-f", *ids)
    for name in made:
        out = md("network", "rm", name)
        assert out.returncode == 0, f"cannot remove the test's network {harness.explain(out)}"


def server(md, network: str, *flags: str) -> str:
    """A container on `network` answering "hello" on port 80, once it answers (the host reaches
    every network through its bridge, an --internal one too); its id."""
    out = md("run", "-d", "--network", network, *flags, "busybox", "nc", "-ll", "-p", "80", "-e", "echo", "hello")
    assert out.returncode == 0, f"cannot start a server container {harness.explain(out)}"
    container = out.stdout.strip()
    ask(ip_of(md, container), 80)
    return container


def ip_of(md, container: str) -> str:
    # Not .NetworkSettings.IPAddress: as in Docker, that is the default bridge's address only.
    out = md("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container)
    assert out.stdout.split(), f"inspect shows no address for the container {harness.explain(out)}"
    return out.stdout.split()[0]


def host_port(md, container: str, private: str = "80/tcp") -> int:
    out = md("port", container, private)
    assert out.returncode == 0, f"`port` names no host port for {private} {harness.explain(out)}"
    return int(out.stdout.split()[0].rsplit(":", 1)[1])


def ask(host: str, port: int, timeout: float = 10) -> str:
    """Connect from the host and read the answer; retried until the container's server listens."""
    def answer():
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                return s.recv(100).decode()
        except OSError:
            return ""
    return harness.wait_until(answer, f"an answer on {host}:{port}", timeout=timeout)


def reach(*probes: tuple[str, str, int]) -> list[str]:
    """For each (network, host, port), all at once: a new container on the network connects to
    host:port and gives itself half a second. Returns what each one read, "" for none.

    A dropped SYN gets no answer at all, only a deadline tells; on a bridge a connection takes
    well under a millisecond, so half a second is plenty for one that is allowed."""
    script = 'nc "$0" "$1" & sleep 0.5; kill $! 2>/dev/null || wait $!'
    running = [harness.popen_cli("run", "--rm", "--network", network, "busybox", "sh", "-c", script, host, str(port),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for network, host, port in probes]
    return [p.communicate(timeout=30)[0] for p in running]


def host_address() -> str:
    """One of the host's own IPv4 addresses that is not loopback and not minidocker's."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        words = line.split()
        if not words[1].startswith("md"):
            return words[3].split("/")[0]
    pytest.fail("the host has no IPv4 address besides loopback and minidocker's bridges")


def rules() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
