"""The test's own truth for seccomp filters: a classic BPF machine, and a direct reading of a
profile's rules. A compiled filter run on the machine must give the answer the reading gives.

The machine knows what a seccomp filter may use (ld of a 32-bit word of seccomp_data; and; ja,
jeq, jgt, jge, jset; ret), and refuses anything else: the kernel would too.
"""

import struct

X32_BIT = 0x40000000
AUDIT = {"x86_64": 0xC000003E, "x86": 0x40000003, "aarch64": 0xC00000B7}
KILL_PROCESS, KILL_THREAD, TRAP, ERRNO, TRACE, LOG, ALLOW = (
    0x80000000, 0, 0x30000, 0x50000, 0x7FF00000, 0x7FFC0000, 0x7FFF0000)
ENOSYS = 38
ACTIONS = {"SCMP_ACT_KILL": KILL_THREAD, "SCMP_ACT_KILL_THREAD": KILL_THREAD, "SCMP_ACT_KILL_PROCESS": KILL_PROCESS,
           "SCMP_ACT_TRAP": TRAP, "SCMP_ACT_ERRNO": ERRNO, "SCMP_ACT_TRACE": TRACE, "SCMP_ACT_LOG": LOG,
           "SCMP_ACT_ALLOW": ALLOW}


def seccomp_data(nr: int, arch: int, args=(0,) * 6, ip: int = 0) -> bytes:
    """struct seccomp_data, little-endian as on x86_64 and aarch64."""
    return struct.pack("<IIQ6Q", nr & 0xFFFFFFFF, arch, ip, *args)


def run(program, data: bytes) -> int:
    """Run a filter (a list of (code, jt, jf, k)) on `data`; its return value."""
    a, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            assert k % 4 == 0 and k + 4 <= len(data), f"a load outside seccomp_data at {pc - 1}"
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            holds = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: a & k != 0}[code]
            pc += jt if holds else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"instruction {pc - 1} has code {code:#x}, which a seccomp filter may not use")


def holds(condition: dict, args) -> bool:
    value, op = args[condition["index"]], condition["op"]
    k = condition["value"]
    return {"SCMP_CMP_EQ": value == k, "SCMP_CMP_NE": value != k, "SCMP_CMP_LT": value < k,
            "SCMP_CMP_LE": value <= k, "SCMP_CMP_GT": value > k, "SCMP_CMP_GE": value >= k,
            "SCMP_CMP_MASKED_EQ": value & k == condition.get("valueTwo", 0)}[op]


def answer(action: str, errno_ret) -> int:
    value = ACTIONS[action]
    if value in (ERRNO, TRACE):
        value |= 1 if errno_ret is None else errno_ret
    return value


def expected(linux_seccomp: dict, tables: dict, arch: str, nr: int, args) -> int:
    """What linux.seccomp says about a call, read directly: the first rule that names the call
    and whose conditions all hold, else the default; an architecture it does not list is killed."""
    arches = {a.removeprefix("SCMP_ARCH_").lower() for a in linux_seccomp.get("architectures") or ["x86_64"]}
    if arch == "x86_64" and nr >= X32_BIT:
        arch = "x32"
    if arch not in arches:
        return KILL_PROCESS
    named = set()
    for rule in linux_seccomp.get("syscalls") or []:
        numbers = {tables[arch][name] for name in rule["names"] if name in tables[arch]}
        named |= numbers
        if nr in numbers and all(holds(c, args) for c in rule.get("args") or []):
            return answer(rule["action"], rule.get("errnoRet"))
    default = answer(linux_seccomp["defaultAction"], linux_seccomp.get("defaultErrnoRet"))
    # runc's: a call newer than every one named fails ENOSYS, unless the default lets calls
    # through (allow, log, trace) or is ENOSYS already.
    if named and nr > max(named) and default & 0xFFFF0000 not in (ALLOW, LOG, TRACE) and default != ERRNO | ENOSYS:
        return ERRNO | ENOSYS
    return default
