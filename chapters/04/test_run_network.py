"""run --network & co. (docs/04-networks.md#run-on-a-network): each container's namespace, its veth and
address, its /etc files, inspect's NetworkSettings, and nothing left behind, even after a SIGKILL."""

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import harness

HELP = "see docs/04-networks.md#run-on-a-network"


@pytest.fixture(autouse=True)
def _root():
    harness.need_root()


@pytest.fixture
def network(md):
    made = []

    def create(name, *flags):
        out = md("network", "create", *flags, name)
        assert out.returncode == 0, harness.explain(out)
        made.append(name)
        return json.loads(md("network", "inspect", name).stdout)[0]

    yield create
    for name in made:
        md("network", "rm", name)


def ping(ip: str) -> bool:
    """One ping from the host to an address inside a namespace the test made."""
    import shutil

    command = ["ping"] if shutil.which("ping") else ["busybox", "ping"]  # the host's busybox (the rootfs's source)
    return subprocess.run([*command, "-c", "1", "-W", "2", ip], capture_output=True).returncode == 0


def test_default_bridge_address_route_and_etc_files(md):
    out = md("run", "--rm", "--hostname", "web1", "--add-host", "db.local:10.9.9.9", "--dns", "10.1.2.3",
             "--dns-search", "example.test", "busybox", "sh", "-c",
             "ip -4 -o addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf /etc/hostname")
    assert out.returncode == 0, harness.explain(out)
    text = out.stdout
    assert "inet 10.213." in text, f"eth0 has no address of the default bridge:\n{text}\n({HELP})"
    assert "default via 10.213." in text, f"no default route through the bridge:\n{text}\n({HELP})"
    assert "10.9.9.9\tdb.local" in text and "\tweb1" in text, f"/etc/hosts lacks --add-host or our name:\n{text}\n({HELP})"
    assert "nameserver 10.1.2.3" in text and "search example.test" in text, f"resolv.conf ignores --dns:\n{text}\n({HELP})"
    assert text.rstrip().endswith("web1"), f"/etc/hostname is not web1:\n{text}\n({HELP})"


def test_none_and_host_modes(md):
    out = md("run", "--rm", "--network", "none", "busybox", "sh", "-c", "ls /sys/class/net")
    assert out.returncode == 0 and out.stdout.split() == ["lo"], f"--network none: {out.stdout!r} {out.stderr} ({HELP})"
    out = md("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net")
    assert sorted(out.stdout.split()) == sorted(os.listdir("/sys/class/net")), \
        f"--network host does not see the host's interfaces: {out.stdout!r} {out.stderr} ({HELP})"


def test_user_network_ip_inspect_ping_and_container_mode(md, network):
    net = network("md-t-run", "--subnet", "10.213.77.0/24")
    out = md("run", "-d", "--network", "md-t-run", "--ip", "10.213.77.50", "--network-alias", "api", "busybox", "sleep", "30")
    assert out.returncode == 0, harness.explain(out)
    cid = out.stdout.strip()
    try:
        info = json.loads(md("inspect", cid).stdout)[0]["NetworkSettings"]
        endpoint = info["Networks"]["md-t-run"]
        assert endpoint["IPAddress"] == "10.213.77.50" and endpoint["Gateway"] == "10.213.77.1", f"{endpoint} ({HELP})"
        assert endpoint["MacAddress"] == "02:42:0a:d5:4d:32", f"MAC {endpoint['MacAddress']}: not 02:42:<ip> ({HELP})"
        assert endpoint["NetworkID"] == net["Id"] and "api" in endpoint["Aliases"], f"{endpoint} ({HELP})"
        assert info["IPAddress"] == "", f"top-level IPAddress is the default bridge's only, as Docker ({HELP})"
        assert ping("10.213.77.50"), f"the host cannot ping the container through the bridge ({HELP})"
        members = json.loads(md("network", "inspect", "md-t-run").stdout)[0]["Containers"]
        assert members[cid]["IPv4Address"] == "10.213.77.50/24", f"network inspect: {members} ({HELP})"
        refused = md("network", "rm", "md-t-run")
        assert refused.returncode == 1 and "active endpoints" in refused.stderr, harness.explain(refused)
        shared = md("run", "--rm", "--network", f"container:{cid}", "busybox", "ip", "-4", "-o", "addr", "show", "eth0")
        assert "10.213.77.50" in shared.stdout, f"container:ID does not share the namespace: {harness.explain(shared)} ({HELP})"
        taken = md("run", "--rm", "--network", "md-t-run", "--ip", "10.213.77.50", "busybox", "true")
        assert taken.returncode == 125 and "Address already in use" in taken.stderr, harness.explain(taken)
    finally:
        md("rm", "-f", cid)
    members = json.loads(md("network", "inspect", "md-t-run").stdout)[0]["Containers"]
    assert members == {}, f"rm left the endpoint: {members} ({HELP})"


def test_32_containers_at_once_get_distinct_addresses_that_answer(md, network):
    network("md-t-many")
    names = [f"md-t-many{n}" for n in range(32)]  # a `run` that fails at start leaves its container, as Docker's
    with ThreadPoolExecutor(32) as pool:
        outs = list(pool.map(lambda name: md("run", "-d", "--name", name, "--network", "md-t-many", "busybox", "sleep", "60"), names))
    ids = [o.stdout.strip() for o in outs if o.returncode == 0]
    try:
        assert len(ids) == 32, f"some `run -d` failed: {[harness.explain(o) for o in outs if o.returncode][:3]} ({HELP})"
        members = json.loads(md("network", "inspect", "md-t-many").stdout)[0]["Containers"]
        ips = [m["IPv4Address"].split("/")[0] for m in members.values()]
        assert len(ips) == 32 and len(set(ips)) == 32, f"addresses not distinct: {sorted(ips)} ({HELP})"
        with ThreadPoolExecutor(32) as pool:
            answered = list(pool.map(ping, ips))
        assert all(answered), f"no answer from {[ip for ip, ok in zip(ips, answered) if not ok]} ({HELP})"
    finally:
        md("rm", "-f", *names)


def test_the_sweep_asks_again_before_it_tears_a_namespace_down(md, network):
    """Every command first sweeps what killed containers left: a namespace whose container has
    no supervisor is torn down. But the command read the containers' states before it looked at
    the namespaces, and a container may have started in between (32 `run -d` at once do that):
    the sweep must read that container's state again, not tear a running container's network
    down from a stale list."""
    from minidocker.network import netns, sandbox

    network("md-t-late")
    out = md("run", "-d", "--network", "md-t-late", "busybox", "sleep", "30")
    assert out.returncode == 0, harness.explain(out)
    cid = out.stdout.strip()
    try:
        sandbox.sweep([])  # what a command saw whose list was read before this container existed
        members = json.loads(md("network", "inspect", "md-t-late").stdout)[0]["Containers"]
        assert cid in netns.existing() and cid in members, \
            f"the sweep tore down the network of a container that runs ({HELP})"
        assert ping(members[cid]["IPv4Address"].split("/")[0]), f"the container no longer answers ({HELP})"
    finally:
        md("rm", "-f", cid)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.12])
def test_sigkill_during_setup_leaves_nothing_after_the_next_command(md, delay):
    """Kill the attached `run` (it is the supervisor) at some point of its start; `ps -a` then
    sees the dead supervisor and releases the namespace, veth and address."""
    proc = harness.popen_cli("run", "--name", f"md-t-kill{int(delay * 100)}", "busybox", "sleep", "30",
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    md("ps", "-a")
    root = os.environ["MINIDOCKER_RUNTIME_ROOT"]
    left = os.listdir(os.path.join(root, "netns")) if os.path.isdir(os.path.join(root, "netns")) else []
    veths = [n for n in os.listdir("/sys/class/net") if n.startswith("mdv")]
    md("rm", "-f", f"md-t-kill{int(delay * 100)}")
    assert not left, f"namespace files left after the next command: {left} ({HELP})"
    mine = [v for v in veths if any(v.startswith(f"mdv{c[:9]}") for c in left)]
    assert not mine, f"veths left: {mine} ({HELP})"
