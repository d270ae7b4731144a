"""Capabilities (chapter 08): root's powers, one bit each, in five sets per thread.

The kernel checks a capability, not uid 0: mount(2) asks for CAP_SYS_ADMIN, chown(2) for
CAP_CHOWN. Each thread has five 64-bit sets (capabilities(7)): bounding (the most it can ever
get back at an exec), permitted (what it may use), effective (what the kernel checks now),
inheritable and ambient (what it may pass on to a program it execs). /proc/PID/status shows
them as CapBnd, CapPrm, CapEff, CapInh and CapAmb, in hex. Which sets a container gets is
minidocker/security/capabilities.py's business; here are only the calls.
"""

import ctypes

from minidocker.linux import _check, _libc, _option_name, _traced, flag_names

# The bit numbers, from <linux/capability.h>: ABI, they never change. Kernel 5.9 knows all 41.
CAPABILITIES = {name: number for number, name in enumerate([
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"])}
CAPABILITY_BITS = {name: 1 << number for name, number in CAPABILITIES.items()}  # for flag_names

# prctl(2) options for the per-thread capability state (not in linux.PRCTL_OPTIONS: their own table).
CAP_PRCTL_OPTIONS = {"PR_SET_KEEPCAPS": 8, "PR_CAPBSET_READ": 23, "PR_CAPBSET_DROP": 24, "PR_CAP_AMBIENT": 47}
PR_SET_KEEPCAPS, PR_CAPBSET_READ, PR_CAPBSET_DROP, PR_CAP_AMBIENT = CAP_PRCTL_OPTIONS.values()
AMBIENT_OPERATIONS = {"PR_CAP_AMBIENT_IS_SET": 1, "PR_CAP_AMBIENT_RAISE": 2, "PR_CAP_AMBIENT_LOWER": 3,
                      "PR_CAP_AMBIENT_CLEAR_ALL": 4}
PR_CAP_AMBIENT_IS_SET, PR_CAP_AMBIENT_RAISE, PR_CAP_AMBIENT_LOWER, PR_CAP_AMBIENT_CLEAR_ALL = AMBIENT_OPERATIONS.values()

# capget/capset take a header (which version of the ABI, which thread: 0 is "me") and, in version
# 3, two {effective, permitted, inheritable} words of 32 bits: capabilities 0-31, then 32-63.
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capability_names(mask: int) -> str:
    """A set in words: CAP_CHOWN|CAP_KILL (0 for the empty set)."""
    return flag_names(mask, CAPABILITY_BITS)


def _capability_name(number: int) -> str:
    return next((name for name, n in CAPABILITIES.items() if n == number), str(number))


def _cap_prctl_words(option: int, arg2: int = 0, arg3: int = 0) -> str:
    words = [_option_name(option, CAP_PRCTL_OPTIONS)]
    if option == PR_CAP_AMBIENT:
        words.append(_option_name(arg2, AMBIENT_OPERATIONS))
        if arg2 != PR_CAP_AMBIENT_CLEAR_ALL:
            words.append(_capability_name(arg3))
    elif option in (PR_CAPBSET_READ, PR_CAPBSET_DROP):
        words.append(_capability_name(arg2))
    else:
        words.append(str(arg2))
    return ", ".join(words)


@_traced(_cap_prctl_words, name="prctl")
def cap_prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    """prctl(2) for capabilities: PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_SET_KEEPCAPS... Returns the
    kernel's answer (PR_CAPBSET_READ: 1 if the capability is in the bounding set)."""
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0),
                  "prctl", option, arg2, arg3)


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) sets, as 64-bit masks."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    return tuple(getattr(data[0], s) | getattr(data[1], s) << 32 for s in ("effective", "permitted", "inheritable"))


@_traced(lambda effective, permitted, inheritable: "{_LINUX_CAPABILITY_VERSION_3, 0}, "
         f"{{effective={capability_names(effective)}, permitted={capability_names(permitted)}, "
         f"inheritable={capability_names(inheritable)}}}")
def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's three sets. The kernel refuses (EPERM) a permitted bit we do not hold,
    an effective bit outside the new permitted set, and an inheritable bit outside the bounding set."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(*[_CapData(*((mask >> shift) & 0xFFFFFFFF for mask in (effective, permitted, inheritable)))
                            for shift in (0, 32)])
    _check(_libc.capset(ctypes.byref(header), data), "capset", hex(effective), hex(permitted), hex(inheritable))
