"""The device cgroup: which device nodes a container may open, read, write or mknod.

(Skeleton: chapter 08's devices part fills this module.)
"""


def to_spec(spec: dict, host_config: dict) -> None:
    """HostConfig.Devices, Privileged -> linux.devices and linux.resources.devices."""
