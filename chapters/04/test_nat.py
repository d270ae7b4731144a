"""NAT: a published port answers on the host's addresses and on 127.0.0.1 (DNAT), containers reach
the outside under the host's address (masquerade), beside dockerd's FORWARD policy DROP, and every
rule goes with its container (docs/04-networks.md#the-firewall)."""

import importlib
import json
import os
import signal

import harness

from minidocker.network import firewall

netlab = importlib.import_module("chapters.04.netlab")
networks, outside, forward_drop = netlab.networks, netlab.outside, netlab.forward_drop


def test_dnat_rule_sends_the_host_port_to_the_container():
    rule = firewall.dnat_rule("tcp", "0.0.0.0", 8080, "10.213.0.2", 80, "minidocker 0123456789ab 1/2")
    text = " ".join(rule)
    assert "-j DNAT --to-destination 10.213.0.2:80" in text and "--dport 8080" in text and "-p tcp" in text, \
        f"the DNAT rule {rule} should send tcp port 8080 to 10.213.0.2:80 (docs/04-networks.md#ex-04-dnat)"
    assert "-d" not in rule, "0.0.0.0 means every address of the host: no -d (docs/04-networks.md#ex-04-dnat)"
    assert rule[rule.index("--comment") + 1] == "minidocker 0123456789ab 1/2", \
        "the rule carries its owner's tag as a comment, for cleanup_stale (docs/04-networks.md#ex-04-dnat)"
    local = firewall.dnat_rule("udp", "127.0.0.1", 5353, "10.213.0.2", 53, "t")
    assert local[:2] == ["-d", "127.0.0.1/32"] and "udp" in local, \
        f"published on 127.0.0.1 only: -d 127.0.0.1/32, and udp for a udp port; got {local}"


def test_outbound_traffic_leaves_under_the_hosts_address(md, networks, outside, forward_drop):
    """Beside Docker (FORWARD policy DROP): a container reaches the outside, which sees the host's
    address (masquerade), and reaches another network's published port through the host."""
    net, other = networks(2)
    c = netlab.server(md, other, "-p", "80")
    port = netlab.host_port(md, c)
    seen, reply = netlab.reach((net, outside.ip, outside.port), (net, outside.host_ip, port))
    assert seen.strip() == outside.host_ip, \
        (f"the outside should see the host's address {outside.host_ip}, saw {seen.strip()!r}: "
         "masquerade and MINIDOCKER-FORWARD (docs/04-networks.md#the-firewall)")
    assert reply == "hello\n", "a container should reach another network's published port through the host"


def test_rules_of_a_killed_supervisor_go_with_the_next_command(md, networks):
    net, = networks()
    c = netlab.server(md, net, "-p", "80")
    port = netlab.host_port(md, c)
    state = json.load(open(os.path.join(os.environ["MINIDOCKER_ROOT"], "containers", c, "state.json")))
    os.kill(state["SupervisorPid"], signal.SIGKILL)  # the test's own container's supervisor
    harness.wait_until(lambda: not os.path.exists(f"/proc/{state['SupervisorPid']}/stat")
                       or open(f"/proc/{state['SupervisorPid']}/stat").read().split()[2] == "Z", "the supervisor to die")
    md("ps", "-a")
    assert c[:12] not in netlab.rules(), \
        "after a SIGKILLed supervisor, the next command must remove its DNAT rule (docs/04-networks.md#the-firewall)"
    import socket

    with socket.socket() as s:
        s.bind(("0.0.0.0", port))  # the kernel let go of the held port with the supervisor
