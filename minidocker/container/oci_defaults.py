"""What Docker puts in every container's config.json before any flag: moby's default spec.

Docker (moby's oci/defaults.go) starts each container from the same base, then applies the
image and the flags. These are the parts of that base the runtime reads: the mounts every
container gets, the paths it hides or makes read-only, and the devices. They are OCI `mounts`
and `linux.*` fields, so the runtime mounts them like any other entry: nothing is hard-coded
in the runtime. See docs/01-isolation.md#the-runtime.
"""

SHM_SIZE = 64 * 1024 * 1024  # Docker's --shm-size default: 64 MB


def default_mounts(shm_size: int = SHM_SIZE) -> list[dict]:
    """Docker's default mounts, in the order they are mounted (a parent before its children)."""
    no_suid_exec_dev = ["nosuid", "noexec", "nodev"]
    return [
        # A fresh procfs: it shows the PID namespace of the process that mounts it, the container.
        {"destination": "/proc", "type": "proc", "source": "proc", "options": list(no_suid_exec_dev)},
        # /dev is a small tmpfs, not the host's devtmpfs: only the nodes the runtime makes appear.
        # strictatime: tmpfs has no disk to spare writes to, so atime costs nothing here.
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        # A devpts of its own ("newinstance"): pty numbers from 0, and none of the host's. gid 5
        # is the "tty" group, which owns terminals; ptmxmode lets anyone open /dev/ptmx.
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        # /sys read-only: the host's devices and kernel knobs may be read, never turned.
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*no_suid_exec_dev, "ro"]},
        # The container's own cgroup, read-only: it may see its limits, not change them.
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", *no_suid_exec_dev]},
        # POSIX message queues of the container's IPC namespace.
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": list(no_suid_exec_dev)},
        # Shared memory (shm_open, Python's multiprocessing): world-writable with the sticky bit.
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*no_suid_exec_dev, "mode=1777", f"size={shm_size // 1024}k"]},
    ]


# --8<-- [start:masked-list]
# Files and directories under /proc and /sys that tell about, or act on, the host rather than the
# container (kernel memory, keyrings, timers, firmware): hidden under /dev/null or an empty tmpfs.
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap"]
# Visible but read-only: the kernel's sysctls and triggers, which are not namespaced.
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# --8<-- [end:masked-list]


def default_masked_paths() -> list[str]:
    return list(MASKED_PATHS)


def default_readonly_paths() -> list[str]:
    return list(READONLY_PATHS)


# --8<-- [start:privileged]
def unlock_for_privileged(spec: dict) -> None:
    """--privileged, as moby does it: /sys and the cgroup filesystem mounted read-write, and no
    path masked or made read-only. The container may then turn every kernel knob of the host."""
    for mount in spec["mounts"]:
        if mount["destination"] == "/sys" or mount["type"] == "cgroup":
            mount["options"] = [option for option in mount["options"] if option != "ro"]
    spec["linux"]["maskedPaths"], spec["linux"]["readonlyPaths"] = [], []
# --8<-- [end:privileged]


# --8<-- [start:device-rules]
def default_device_rules() -> list[dict]:
    """linux.resources.devices, moby's list: deny every device, then allow /dev/zero, null,
    urandom, random, tty and console; deny /dev/fuse (10:229). The runtime appends its own
    (mknod of anything; full, ptmx, the ptys: see minidocker/cgroups/devices.py), as runc does."""
    allow = [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)]
    return ([{"allow": False, "access": "rwm"}]
            + [{"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"} for major, minor in allow]
            + [{"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}])
# --8<-- [end:device-rules]


def default_devices() -> list[dict]:
    """linux.devices: none beyond the ones runc always makes (null, zero, full, random, urandom,
    tty, plus /dev/ptmx, /dev/fd...), which is what Docker asks for without --device."""
    return []
