"""Capabilities: root's powers, split in ~40 pieces, of which a Docker container keeps 14.

(Skeleton: chapter 08's capabilities part fills this module.)
"""


def to_spec(spec: dict, host_config: dict) -> None:
    """HostConfig.CapAdd, CapDrop, Privileged -> process.capabilities."""


def drop_bounding(capabilities: dict) -> None:
    """In the container's process, before the uid changes: drop from the bounding set every
    capability not in capabilities["bounding"]."""


def apply(capabilities: dict) -> None:
    """In the container's process, after the uid changes: set the effective, permitted,
    inheritable and ambient sets to the spec's."""
