"""User namespaces: container root is an unprivileged user of the host.

(Skeleton: chapter 08's user-namespace part fills this module.)
"""


def to_spec(spec: dict, host_config: dict) -> None:
    """The remapping (and HostConfig.UsernsMode) -> linux.uidMappings, linux.gidMappings and a
    "user" namespace."""
