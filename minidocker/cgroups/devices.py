"""The device cgroup: which device nodes the processes of a cgroup may open or create.

A container's /dev is a tmpfs of its own, with only the nodes the runtime makes there. That is not
a lock: root inside can `mknod /dev/sda b 8 0` and read the host's disk through it. The device
cgroup is the lock. The kernel asks it on every open(2) and mknod(2) of a device node:
"block/char, major, minor, for read/write/mknod?" (see docs/08-hardening.md#the-device-cgroup).

The OCI spec's `linux.resources.devices` is a list of rules, applied in order, as cgroup v1 takes
them in its files devices.deny and devices.allow:

    {"allow": false, "access": "rwm"}                                  # deny everything ("a")
    {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}   # then /dev/null

After the writes, v1 keeps a *default* (allow or deny) and a list of *exceptions* to it.
normalize() computes that state the way the kernel does, so that it can be written to v1 (v1_writes)
or compiled into cgroup v2's BPF program (devices_bpf.py), and allows() answers a question from it.
A major or minor of None is the wildcard "*".
"""

from collections import namedtuple

# The rules runc adds after the spec's own, whatever the spec says (and youki does the same):
# mknod of any node (a container may make /dev/sda; the lock is on opening it), the nodes every
# container gets (null, zero, full, random, urandom, tty), the console, /dev/ptmx and the ptys of
# its devpts (major 136). Docker's own list (container/oci_defaults.py) comes first.
RUNTIME_RULES = [
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, None))),
]


# One exception to the default: a type ("c" or "b"), major, minor (None: any), access ("rwm").
# collections' namedtuple, not typing's NamedTuple: importing typing would cost ~2 ms of every
# container's create (this module is on its path; nothing else there needs typing).
DeviceException = namedtuple("DeviceException", ["type", "major", "minor", "access"])


def _letters(text) -> str:
    """"wr" -> "rw": the letters in the kernel's order, each once."""
    return "".join(letter for letter in "rwm" if letter in text)


# --8<-- [start:normalize]
def normalize(rules: list[dict]) -> tuple[bool, list[DeviceException]]:
    """The OCI rules, applied in order, as cgroup v1 would hold them: (default_allow, exceptions).

    runc starts from "deny everything", so a list without a reset still denies what it does not
    allow. Then, as the kernel's devices cgroup does with each write:
    - type "a" (or none) resets: the default becomes the rule's verdict, the exceptions are gone;
    - a rule against the default adds an exception (or more access to an identical one);
    - a rule that agrees with the default takes its access away from an *identical* exception
      only: "deny c 1:3 w" does not narrow an earlier "allow c 1:* rw" (v1's own quirk).
    """
    default_allow, exceptions = False, {}
    for rule in rules:
        kind, access = rule.get("type") or "a", _letters(rule.get("access") or "rwm")
        if kind == "a":
            default_allow, exceptions = bool(rule.get("allow")), {}
            continue
        key = (kind, rule.get("major"), rule.get("minor"))
        if bool(rule.get("allow")) != default_allow:
            exceptions[key] = _letters(exceptions.get(key, "") + access)
        elif key in exceptions:
            left = _letters(set(exceptions[key]) - set(access))
            if left:
                exceptions[key] = left
            else:
                del exceptions[key]
    return default_allow, [DeviceException(*key, access) for key, access in exceptions.items()]
# --8<-- [end:normalize]


def allows(rules: list[dict], kind: str, major: int, minor: int, access: str) -> bool:
    """Whether a process may do `access` ("r", "w", "rw" for an open; "m" for mknod) on the device
    `kind` ("c" or "b") major:minor, under these rules: the kernel's answer, in Python."""
    default_allow, exceptions = normalize(rules)
    for ex in exceptions:
        if ex.type == kind and ex.major in (None, major) and ex.minor in (None, minor):
            # Under "deny": an exception must grant every letter asked. Under "allow": one
            # denied letter is enough to refuse.
            if default_allow and set(access) & set(ex.access):
                return False
            if not default_allow and set(access) <= set(ex.access):
                return True
    return default_allow


def v1_line(ex: DeviceException) -> str:
    """An exception as cgroup v1 writes and lists it: "c 1:3 rwm", "c 136:* rwm"."""
    star = lambda number: "*" if number is None else str(number)  # noqa: E731
    return f"{ex.type} {star(ex.major)}:{star(ex.minor)} {ex.access}"


def v1_writes(rules: list[dict]) -> list[tuple[str, str]]:
    """The writes that give a v1 cgroup these rules: (file, line). The reset first ("a" into
    devices.deny: deny all and forget the exceptions), then one exception per write, into the
    other file: devices.allow under "deny", devices.deny under "allow"."""
    default_allow, exceptions = normalize(rules)
    verdict, against = ("devices.allow", "devices.deny") if default_allow else ("devices.deny", "devices.allow")
    return [(verdict, "a")] + [(against, v1_line(ex)) for ex in exceptions]
