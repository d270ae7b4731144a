"""IPAM (docs/04-networks.md#ipam): every address handed out is unique, inside the subnet, and never
the network's own address, its broadcast or the gateway, whatever the order of allocations and
releases. API-level: the chapter teaches ipam.choose (exercise ex-04-ipam) and its lock."""

import os
import tempfile

from hypothesis import given, settings, strategies as st

from minidocker import store
from minidocker.errors import MinidockerError
from minidocker.network import ipam

HELP = "see docs/04-networks.md#ipam"

# An operation: ("alloc", container number) or ("release", container number).
operations = st.lists(st.tuples(st.sampled_from(["alloc", "release"]), st.integers(0, 12)), max_size=40)


@settings(max_examples=60)
@given(ops=operations, prefix=st.sampled_from([28, 29, 30]), gateway_offset=st.integers(1, 2))
def test_any_interleaving_keeps_addresses_unique_and_in_the_subnet(ops, prefix, gateway_offset):
    subnet = f"10.213.9.0/{prefix}"
    gateway = f"10.213.9.{gateway_offset}"
    broadcast = f"10.213.9.{(1 << (32 - prefix)) - 1}"
    with tempfile.TemporaryDirectory() as directory:
        held = {}
        for op, n in ops:
            cid = f"c{n}"
            with store.lock(directory):
                if op == "alloc":
                    try:
                        held[cid] = ipam.allocate(directory, subnet, gateway, cid)
                    except MinidockerError as e:
                        assert "no available IPv4 addresses" in e.what, f"{e.what} ({HELP})"
                        assert len(set(held.values())) == (1 << (32 - prefix)) - 3, \
                            f"the subnet was called full with addresses still free: {held} ({HELP})"
                else:
                    ipam.release(directory, cid)
                    held.pop(cid, None)
            taken = ipam.allocations(directory)
            assert sorted(taken) == sorted(held.values()), f"ipam.json {taken} is not what was handed out {held} ({HELP})"
            assert len(set(taken)) == len(taken.values()), f"an address given twice: {taken} ({HELP})"
            for ip in taken:
                assert ipam.contains(subnet, ip), f"{ip} is outside {subnet} ({HELP})"
                assert ip not in (gateway, broadcast, "10.213.9.0"), \
                    f"{ip} is the gateway, the broadcast or the network's own address ({HELP})"


def test_requested_address_is_given_or_refused_in_dockers_words():
    with tempfile.TemporaryDirectory() as directory:
        assert ipam.allocate(directory, "10.213.9.0/24", "10.213.9.1", "a", "10.213.9.50") == "10.213.9.50", HELP
        for bad, words in (("10.213.9.50", "Address already in use"), ("10.213.9.1", "no configured subnet"),
                           ("10.213.9.255", "no configured subnet"), ("10.213.10.5", "no configured subnet")):
            try:
                ipam.allocate(directory, "10.213.9.0/24", "10.213.9.1", "b", bad)
            except MinidockerError as e:
                assert words in e.what, f"--ip {bad}: {e.what!r}, expected {words!r} ({HELP})"
            else:
                raise AssertionError(f"--ip {bad} was handed out ({HELP})")
        assert ipam.allocate(directory, "10.213.9.0/24", "10.213.9.1", "b") == "10.213.9.2", \
            f"the lowest free address comes first ({HELP})"


def test_concurrent_allocations_under_the_lock_never_collide():
    """Eight processes allocate at once through the lock: eight different addresses."""
    with tempfile.TemporaryDirectory() as directory:
        pids = []
        for n in range(8):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    with store.lock(directory):
                        ipam.allocate(directory, "10.213.9.0/24", "10.213.9.1", f"c{n}")
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        assert all(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) == 0 for p in pids), HELP
        taken = ipam.allocations(directory)
        assert len(taken) == 8 and len(set(taken.values())) == 8, f"lost or doubled allocations: {taken} ({HELP})"
