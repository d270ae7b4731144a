"""`network create/ls/inspect/rm/prune` (docs/04-networks.md#network-commands), black-box through the CLI."""

import json
import subprocess

import pytest

import harness

HELP = "see docs/04-networks.md#network-commands"


@pytest.fixture(autouse=True)
def _root():
    harness.need_root()


def test_create_inspect_ls_rm(md):
    out = md("network", "create", "--label", "team=blue", "md-t-one")
    assert out.returncode == 0, harness.explain(out)
    net_id = out.stdout.strip()
    try:
        net = json.loads(md("network", "inspect", "md-t-one").stdout)[0]
        assert net["Id"] == net_id and net["Driver"] == "bridge" and net["Labels"] == {"team": "blue"}, f"{net} ({HELP})"
        subnet = net["IPAM"]["Config"][0]["Subnet"]
        assert subnet.startswith("10.213.") and subnet.endswith("/24"), f"a subnet outside our pool: {subnet} ({HELP})"
        routes = subprocess.run(["ip", "-4", "route", "show", subnet], capture_output=True, text=True).stdout
        assert f"mdbr-{net_id[:9]}" in routes, f"no bridge mdbr-{net_id[:9]} routes {subnet}: {routes!r} ({HELP})"
        names = md("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert {"bridge", "host", "none", "md-t-one"} <= set(names), f"network ls shows {names} ({HELP})"
        again = md("network", "create", "md-t-one")
        assert again.returncode != 0 and "already exists" in again.stderr, harness.explain(again)
        overlap = md("network", "create", "--subnet", subnet, "md-t-two")
        assert overlap.returncode != 0 and "overlaps" in overlap.stderr, harness.explain(overlap)
    finally:
        out = md("network", "rm", "md-t-one")
    assert out.returncode == 0 and out.stdout.strip() == "md-t-one", harness.explain(out)
    assert md("network", "inspect", "md-t-one").returncode == 1, f"the network is still there ({HELP})"


def test_subnets_skip_host_routes_and_each_other(md):
    from minidocker.network import ipam
    from minidocker.network.netlink import Netlink

    with Netlink() as nl:
        host = nl.routed_subnets()
    made = []
    try:
        for name in ("md-t-a", "md-t-b"):
            assert md("network", "create", name).returncode == 0, HELP
            made.append(name)
        subnets = [json.loads(md("network", "inspect", n).stdout)[0]["IPAM"]["Config"][0]["Subnet"] for n in made]
        assert subnets[0] != subnets[1], f"two networks share {subnets[0]} ({HELP})"
        for s in subnets:
            clash = [r for r in host if not r.endswith("/32") and ipam.overlaps(s, r)
                     and not any(r == other for other in subnets)]
            assert not clash, f"{s} overlaps the host's routes {clash} ({HELP})"
            for docker_pool in ("172.16.0.0/12", "192.168.0.0/16"):
                assert not ipam.overlaps(s, docker_pool), f"{s} is in Docker's pool {docker_pool} ({HELP})"
    finally:
        for name in made:
            md("network", "rm", name)


def test_predefined_cannot_be_removed_and_prune_removes_unused(md):
    out = md("network", "rm", "bridge")
    assert out.returncode == 1 and "pre-defined" in out.stderr, harness.explain(out)
    assert md("network", "create", "md-t-unused").returncode == 0, HELP
    out = md("network", "prune", "-f")
    assert out.returncode == 0 and "md-t-unused" in out.stdout, harness.explain(out)
    assert "md-t-unused" not in md("network", "ls").stdout, f"prune left the network ({HELP})"
