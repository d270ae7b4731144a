"""Isolation: containers on different user networks cannot reach each other, and an --internal
network's traffic never leaves it; each refusal beside a control that the same path works where
it is allowed (docs/04-networks.md#isolation)."""

import importlib

netlab = importlib.import_module("chapters.04.netlab")
networks, outside = netlab.networks, netlab.outside


def test_user_networks_cannot_reach_each_other(md, networks):
    mine, theirs = networks(2)
    target_ip = netlab.ip_of(md, netlab.server(md, theirs))
    neighbour, stranger = netlab.reach((theirs, target_ip, 80), (mine, target_ip, 80))
    assert neighbour == "hello\n", f"a container on the same network should reach {target_ip}:80"
    assert stranger == "", \
        (f"a container on another user network reached {target_ip}:80: MINIDOCKER-ISOLATION-STAGE-1/2 "
         "must drop it (docs/04-networks.md#isolation)")


def test_internal_network_traffic_never_leaves_it(md, networks, outside):
    internal, = networks(internal=True)
    public, = networks()
    inside_ip = netlab.ip_of(md, netlab.server(md, internal))
    local, control, escape, inward = netlab.reach(
        (internal, inside_ip, 80), (public, outside.ip, outside.port),
        (internal, outside.ip, outside.port), (public, inside_ip, 80))
    assert local == "hello\n", "containers on one --internal network should reach each other"
    assert control.strip() == outside.host_ip, "a container on a normal network should reach the outside"
    assert escape == "", f"an --internal network's container reached the outside, which saw {escape.strip()} " \
                         "(docs/04-networks.md#isolation)"
    assert inward == "", "a container on another network reached into an --internal one (docs/04-networks.md#isolation)"
    subnet = md("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", internal).stdout.strip()
    assert subnet and f"-s {subnet} " not in netlab.rules(), \
        f"an --internal network gets no NAT: no rule for {subnet} in the nat table"
