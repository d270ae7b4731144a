"""Capabilities: root's powers, split in 41 pieces, of which a Docker container keeps 14.

Since Linux 2.2 the kernel does not ask "is this uid 0?" but "does this thread hold CAP_X?":
CAP_SYS_ADMIN to mount, CAP_NET_ADMIN to change a network interface, CAP_SYS_MODULE to load a
kernel module. Root in a container with every capability can do all of that to the *host*, since
most of what these calls change is not namespaced. Docker therefore starts every container with
14 capabilities, enough for what root usually does inside (chown files, bind port 80, switch to
another user), and takes the others away, in the bounding set too, so no exec can get them back.

The engine's side (`to_spec`) turns HostConfig.CapAdd, CapDrop and Privileged into the OCI spec's
`process.capabilities`, with moby's rules (its TweakCapabilities). The runtime's side
(`drop_bounding`, then `apply`, called by runtime/process.py) makes the container's first process
hold exactly those sets, in runc's order, before it execs the command. See
docs/08-hardening.md#capabilities.
"""

import functools

from minidocker import linux
from minidocker.errors import MinidockerError

# --8<-- [start:default-set]
# moby's default set (oci/caps/defaults.go), in its order. What each one lets root do:
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN",  # give a file to another user
    "CAP_DAC_OVERRIDE",  # read and write any file, whatever its mode says
    "CAP_FSETID",  # keep a file's setuid bit when changing it
    "CAP_FOWNER",  # chmod, utime... files it does not own
    "CAP_MKNOD",  # make device nodes (opening them is the device cgroup's call)
    "CAP_NET_RAW",  # raw sockets: ping
    "CAP_SETGID",  # become another group
    "CAP_SETUID",  # become another user (su, a web server dropping root)
    "CAP_SETFCAP",  # give a file capabilities (setcap)
    "CAP_SETPCAP",  # change its own capability sets (drop from bounding, pass on)
    "CAP_NET_BIND_SERVICE",  # listen on a port below 1024
    "CAP_SYS_CHROOT",  # chroot
    "CAP_KILL",  # signal processes of other users
    "CAP_AUDIT_WRITE",  # write to the kernel's audit log (login programs do)
]
# --8<-- [end:default-set]

ALL = "ALL"  # CapAdd/CapDrop's word for every capability


def known() -> list[str]:
    """Every capability this kernel knows (an older kernel stops before CAP_CHECKPOINT_RESTORE)."""
    return [name for name, number in linux.CAPABILITIES.items() if number <= last_capability()]


@functools.cache
def last_capability() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


def available() -> list[str]:
    """What the runtime itself may hand out: the capabilities of our effective set (containerd
    reads the same from /proc/self/status for moby). Root on the host need not hold all (in a
    nested container, on a VM whose root lacks CAP_SYS_RESOURCE), and capset cannot give a
    container what we do not have."""
    effective, _, _ = linux.capget()
    return [name for name in known() if effective & linux.CAPABILITY_BITS[name]]


def normalize(names: list[str] | None, field: str) -> list[str]:
    """CapAdd/CapDrop as the API takes them ("net_admin", "CAP_NET_ADMIN", "ALL") -> "CAP_" names,
    refused in dockerd's words when unknown or not ours to give."""
    if isinstance(names, str):
        names = [names]  # the Engine API's StrSlice: one string stands for a list of one
    have, normalized = set(available()), []
    for name in names or []:
        if not isinstance(name, str):
            raise MinidockerError(f"invalid {field}: {name!r}", "the Engine API takes a list of names")
        name = name.upper()
        if name != ALL and not name.startswith("CAP_"):
            name = "CAP_" + name
        if name != ALL and name not in linux.CAPABILITIES:
            raise MinidockerError(f'invalid {field}: unknown capability: "{name}"',
                                  "see capabilities(7) for the names, or ALL")
        if name != ALL and name not in have:
            raise MinidockerError(f"invalid {field}: capability not supported by your kernel or not available "
                                  f'in the current environment: "{name}"', "this engine does not hold it itself")
        normalized.append(name)
    return normalized


def check(host_config: dict) -> None:
    """The create request's check, before anything is made (dockerd's validateCapabilities)."""
    normalize(host_config.get("CapAdd"), "CapAdd")
    normalize(host_config.get("CapDrop"), "CapDrop")


# --8<-- [start:tweak]
def tweak(cap_add: list[str] | None, cap_drop: list[str] | None, privileged: bool) -> list[str]:
    """The container's capabilities, by moby's rules: --privileged is all we have; ALL in
    --cap-add is all we have but the dropped ones; ALL in --cap-drop is only the added ones;
    else the defaults, minus the dropped, plus the added."""
    if privileged:
        return available()
    if not cap_add and not cap_drop:
        return list(DEFAULT_CAPABILITIES)
    adds, drops = normalize(cap_add, "CapAdd"), normalize(cap_drop, "CapDrop")
    if ALL in adds:  # checked first: "--cap-add ALL --cap-drop ALL" keeps everything
        return [name for name in available() if name not in drops]
    if ALL in drops:
        base = []
    else:
        base = [name for name in DEFAULT_CAPABILITIES if name not in drops]
    # An added one that is also dropped stays: the add comes last. Listed once, in order.
    return list(dict.fromkeys(base + adds))
# --8<-- [end:tweak]


def to_spec(spec: dict, host_config: dict) -> None:
    """HostConfig.CapAdd, CapDrop, Privileged -> process.capabilities."""
    names = tweak(host_config.get("CapAdd"), host_config.get("CapDrop"), bool(host_config.get("Privileged")))
    # Current moby (since 2023) gives the list to bounding, permitted and effective alike, even
    # for a non-root --user: execve itself then empties a non-root program's permitted and
    # effective sets (it has no file capabilities), unless that program is setcap'd. The
    # inheritable set stays empty (CVE-2022-24769: Docker up to 20.10.13 filled it, and a file
    # with inheritable file capabilities then gained them at exec, even as a non-root user).
    # The ambient set, too: Docker never fills it.
    spec["process"]["capabilities"] = {"bounding": list(names), "effective": list(names),
                                       "permitted": list(names)}


def mask(names: list[str] | None) -> int:
    """["CAP_CHOWN", "CAP_KILL"] -> 0b100001, the kernel's bits. A name this kernel does not know
    is left out, as runc does (it warns): the spec may come from a newer machine."""
    bits = 0
    for name in names or []:
        if name in linux.CAPABILITIES and linux.CAPABILITIES[name] <= last_capability():
            bits |= linux.CAPABILITY_BITS[name]
    return bits


def drop_bounding(capabilities: dict) -> None:
    """In the container's process, before the uid changes: drop from the bounding set every
    capability not in capabilities["bounding"], and keep the permitted set across setuid."""
    keep = set(capabilities.get("bounding") or [])
    # The bounding set caps what any later exec may gain, even from a setuid-root or a setcap'd
    # program. Dropping one takes CAP_SETPCAP, which we still hold; once dropped, it never comes
    # back, in this process or any it starts.
    # --8<-- [start:ex-08-bounding]
    # For each capability this kernel knows (linux.CAPABILITIES, up to last_capability()) that
    # `keep` lacks, drop it from the bounding set: linux.cap_prctl(linux.PR_CAPBSET_DROP, number).
    for name, number in linux.CAPABILITIES.items():
        if number > last_capability():
            break  # this kernel does not know it: PR_CAPBSET_DROP would answer EINVAL
        if name not in keep:
            linux.cap_prctl(linux.PR_CAPBSET_DROP, number)
    # --8<-- [end:ex-08-bounding]
    # setuid from 0 to another uid clears the permitted and effective sets; KEEPCAPS keeps the
    # permitted one, so that apply() can still give a non-root user what the spec lists.
    linux.cap_prctl(linux.PR_SET_KEEPCAPS, 1)


# --8<-- [start:apply]
def apply(capabilities: dict) -> None:
    """In the container's process, after the uid changes: set the effective, permitted,
    inheritable and ambient sets to the spec's."""
    linux.cap_prctl(linux.PR_SET_KEEPCAPS, 0)  # its job is done (an exec would clear it anyway)
    # One call for three sets: a permitted one can only shrink, an effective one must lie in it.
    linux.capset(effective=mask(capabilities.get("effective")), permitted=mask(capabilities.get("permitted")),
                 inheritable=mask(capabilities.get("inheritable")))
    # Ambient capabilities survive the exec of a program without file capabilities, even as a
    # non-root user. Start from none, then raise each listed one. The kernel refuses (EPERM) one
    # that is not both permitted and inheritable: runc skips it, and so do we (`runc spec`'s own
    # config lists three ambient ones and no inheritable one).
    linux.cap_prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    allowed = mask(capabilities.get("permitted")) & mask(capabilities.get("inheritable"))
    for name in capabilities.get("ambient") or []:
        if mask([name]) & allowed:
            linux.cap_prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, linux.CAPABILITIES[name])
# --8<-- [end:apply]
