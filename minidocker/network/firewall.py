"""The firewall of minidocker's networks: NAT, published ports, isolation (chapter 04, N2's module).

This is the contract's stub: the engine (network/networks.py, network/endpoints.py, the supervisor)
calls these hooks at the moments named below; until the firewall is written they do nothing, so a
container is reachable from the host through its bridge but not from outside, and no port is published.
See /work/notes/network-api.md for the order the engine calls them in.
"""


def network_created(net: dict) -> None:
    """A network (NetworkResource dict) and its bridge were just made."""


def network_removed(net: dict) -> None:
    """A network is about to be removed (its bridge still exists)."""


def endpoint_up(net: dict, container_id: str, ip: str, host_config: dict) -> None:
    """A container's endpoint on `net` has address `ip` and its veth is up; publish its ports."""


def endpoint_down(net: dict, container_id: str, ip: str, host_config: dict) -> None:
    """A container's endpoint on `net` is going away; remove what endpoint_up added."""


def cleanup_stale() -> None:
    """Remove rules whose container or network no longer exists (after a SIGKILLed supervisor)."""
