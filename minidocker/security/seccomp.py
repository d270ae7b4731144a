"""Seccomp: a BPF filter the kernel runs on every system call the container makes.

(Skeleton: chapter 08's seccomp part fills this module.)
"""


def to_spec(spec: dict, host_config: dict) -> None:
    """HostConfig.SecurityOpt (seccomp=..., no-new-privileges), Privileged -> linux.seccomp
    and process.noNewPrivileges."""


def install(linux_seccomp: dict) -> None:
    """In the container's process: compile linux.seccomp to BPF and load it (seccomp(2))."""
