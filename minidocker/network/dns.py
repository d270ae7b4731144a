"""Names that resolve on a user network: one DNS responder per network (chapter 04, N3's module).

This is the contract's stub: the engine calls these hooks; until the responder is written they do
nothing and resolver_ip() names no resolver, so a container's /etc/resolv.conf gets the host's
servers. See /work/notes/network-api.md.
"""


def container_started(net: dict, container_id: str) -> None:
    """A container's endpoint on `net` is up (its address is in net["Containers"])."""


def container_stopped(net: dict, container_id: str) -> None:
    """A container's endpoint on `net` is going away."""


def resolver_ip(net: dict) -> "str | None":
    """The address a container on `net` should name in /etc/resolv.conf, or None for the host's."""
    return None


def cleanup_stale() -> None:
    """Stop responders whose network has no running container (after a SIGKILL)."""
