"""Published ports: -p and -P as the docker CLI sends them, host ports picked and held, `port`,
inspect's NetworkSettings.Ports (docs/04-networks.md#published-ports)."""

import importlib
import json
import os
import socket

import harness
from hypothesis import given, strategies as st

from minidocker.network import ports

netlab = importlib.import_module("chapters.04.netlab")
networks = netlab.networks

ips = st.sampled_from(["", "127.0.0.1", "0.0.0.0", "10.1.2.3"])
numbers = st.integers(1, 65535)
protocols = st.sampled_from(["", "/tcp", "/udp", "/UDP"])


@given(ips, st.one_of(st.just(""), numbers.map(str)), numbers, protocols)
def test_publish_spec_becomes_port_bindings(ip, host, container, proto):
    spec = f"{ip}:{host}:{container}{proto}" if ip else (f"{host}:{container}{proto}" if host else f"{container}{proto}")
    exposed, bindings = ports.parse_publish([spec])
    key = f"{container}/{proto[1:].lower() or 'tcp'}"
    assert exposed == {key: {}}, f"-p {spec} exposes {exposed}, not {key} (docs/04-networks.md#published-ports)"
    assert bindings == {key: [{"HostIp": ip, "HostPort": host}]}, \
        f"-p {spec} gives PortBindings {bindings} (docs/04-networks.md#published-ports)"


@given(st.integers(1, 60000), st.integers(1, 60000), st.integers(0, 5))
def test_publish_ranges_pair_up(host, container, extra):
    exposed, bindings = ports.parse_publish([f"{host}-{host + extra}:{container}-{container + extra}"])
    assert bindings == {f"{container + i}/tcp": [{"HostIp": "", "HostPort": str(host + i)}] for i in range(extra + 1)}, \
        "a host range and a container range of one length pair up port by port (docs/04-networks.md#published-ports)"


def test_bad_publish_specs_are_refused_in_dockers_words(md):
    harness.need_root()
    for spec, words in (("abc", "invalid containerPort: abc"), ("80/xyz", "invalid proto: xyz"),
                        ("1.2.3:80:80", "invalid IP address: 1.2.3"), ("abc:80", "invalid hostPort: abc"),
                        ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002")):
        out = md("create", "-p", spec, "busybox", "true")
        assert out.returncode == 125 and words in out.stderr, \
            f"-p {spec} should be refused with {words!r} {harness.explain(out)}"
    assert md("ps", "-aq").stdout == "", "a refused -p left a container behind"


def test_ephemeral_port_is_held_and_shown(md, networks):
    """-p 80: any free host port, from the kernel's ephemeral range; `port`, inspect and a second
    container that asks for the same host port (refused: the first one holds it)."""
    net, = networks()
    first = netlab.server(md, net, "-p", "80", "--expose", "443")
    out = md("port", first)
    low, high = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    line = out.stdout.strip()
    assert out.returncode == 0 and line.startswith("80/tcp -> 0.0.0.0:"), \
        f"`port` should print '80/tcp -> 0.0.0.0:PORT', not {line!r} {harness.explain(out)}"
    chosen = int(line.rsplit(":", 1)[1])
    assert low <= chosen <= high, f"-p 80 took host port {chosen}, outside ip_local_port_range {low}-{high}"
    inspected = json.loads(md("inspect", "-f", "{{json .NetworkSettings.Ports}}", first).stdout)
    assert inspected == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(chosen)}], "443/tcp": None}, \
        f"NetworkSettings.Ports is {inspected} (docs/04-networks.md#published-ports)"
    for host in ("127.0.0.1", netlab.host_address()):
        assert netlab.ask(host, chosen) == "hello\n", \
            f"the published port {host}:{chosen} did not answer (docs/04-networks.md#published-ports)"
    assert first[:12] in netlab.rules(), "the DNAT rule should name its container in a comment"
    # The port is held: nobody else may bind it, minidocker or not.
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", chosen))
            held = False
        except OSError:
            held = True
    assert held, f"host port {chosen} is published but not held: another program could bind it"
    second = md("run", "-d", "--network", net, "-p", f"{chosen}:80", "busybox", "true")
    assert second.returncode == 125 and "port is already allocated" in second.stderr, \
        f"a second container on the same host port must be refused {harness.explain(second)}"
    missing = md("port", first, "81")
    assert missing.returncode == 1 and f"No public port '81' published for {first}" in missing.stderr, \
        f"`port CONTAINER 81` with no such binding {harness.explain(missing)}"
    md("rm", "-f", first)
    assert first[:12] not in netlab.rules(), "the container's DNAT rule outlived it (docs/04-networks.md#the-firewall)"
    with socket.socket() as s:
        s.bind(("0.0.0.0", chosen))  # free again once the container is gone


def test_publish_all_uses_the_images_exposed_ports(md, networks):
    """-P publishes every port of Config.ExposedPorts: the image's EXPOSE, and --expose."""
    net, = networks()
    tag = f"md-exposed-{os.getpid()}"
    base = md("create", "busybox", "true").stdout.strip()
    commit = md("commit", "--change", "EXPOSE 7000/udp", base, tag)
    assert commit.returncode == 0, f"cannot make an image with EXPOSE {harness.explain(commit)}"
    try:
        c = md("run", "-d", "--network", net, "-P", "--expose", "7001", tag, "sleep", "30").stdout.strip()
        lines = md("port", c).stdout.splitlines()
        assert [line.split(" -> ")[0] for line in lines] == ["7000/udp", "7001/tcp"], \
            f"-P should publish the image's 7000/udp and --expose 7001, `port` says {lines}"
        assert all(line.split(" -> ")[1].startswith("0.0.0.0:") for line in lines), lines
        md("rm", "-f", c, base)
    finally:
        md("rmi", tag)
