"""Seccomp: a BPF filter the kernel runs on every system call the container makes.

Capabilities decide what root may do; seccomp ("secure computing") decides which system calls
the process may make at all, whatever its capabilities. A filter is a small BPF program (bpf.py)
that the kernel runs before each call, on its number, architecture and arguments, and whose
answer the kernel obeys: run the call, fail it with an errno, kill the caller... A filter can
never be removed, is inherited by every child and kept across exec, and more filters can only
add refusals: a container cannot undo it.

Two halves, as in Docker:
- to_spec (the engine): the profile (Docker's default, seccomp_profile.py, or the JSON of
  `--security-opt seccomp=FILE`) resolved for this container into OCI's linux.seccomp: only
  the rules whose capability, architecture and kernel conditions hold, as moby does.
- install (the runtime, in the container's process): linux.seccomp compiled to BPF, loaded with
  seccomp(2). runc asks libseccomp to compile; we write the BPF ourselves, which shows what a
  filter is: a list of comparisons and return values (docs/08-hardening.md#seccomp).
"""

import json
import os
import sys

from minidocker import linux
from minidocker.errors import MinidockerError
from minidocker.security import bpf, options, seccomp_profile
from minidocker.security.bpf import Label, goto, jump, load, ret
from minidocker.security.syscalls import SYSCALLS

# <linux/seccomp.h>: the filter's answers. The kernel acts on the highest-priority one of all the
# filters a process has, in this order (KILL_PROCESS first); the low 16 bits are the action's data.
SECCOMP_RET_KILL_PROCESS = 0x80000000  # kill the whole process, as by SIGSYS, with a core dump
SECCOMP_RET_KILL_THREAD = 0x00000000  # kill the calling thread only
SECCOMP_RET_TRAP = 0x00030000  # send SIGSYS, which the process may catch
SECCOMP_RET_ERRNO = 0x00050000  # the call is not made and returns -1 with errno = the data
SECCOMP_RET_TRACE = 0x7FF00000  # ask the ptrace tracer (none: the call fails with ENOSYS)
SECCOMP_RET_LOG = 0x7FFC0000  # allow, and log it
SECCOMP_RET_ALLOW = 0x7FFF0000
RETURNS = {value: name for name, value in globals().items() if name.startswith("SECCOMP_RET_")}

EPERM = 1
ENOSYS = 38  # "function not implemented": what a kernel too old for a call answers

# The OCI names (libseccomp's) of the actions.
ACTIONS = {"SCMP_ACT_KILL": SECCOMP_RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD": SECCOMP_RET_KILL_THREAD,
           "SCMP_ACT_KILL_PROCESS": SECCOMP_RET_KILL_PROCESS, "SCMP_ACT_TRAP": SECCOMP_RET_TRAP,
           "SCMP_ACT_ERRNO": SECCOMP_RET_ERRNO, "SCMP_ACT_TRACE": SECCOMP_RET_TRACE,
           "SCMP_ACT_LOG": SECCOMP_RET_LOG, "SCMP_ACT_ALLOW": SECCOMP_RET_ALLOW}

# seccomp's architecture names -> the AUDIT_ARCH_* value the kernel puts in seccomp_data.arch
# (<linux/audit.h>), and our table of its numbers. x32 shares x86_64's AUDIT_ARCH: its calls are
# told apart by their number, which carries the X32 bit.
ARCHITECTURES = {"SCMP_ARCH_X86_64": (0xC000003E, "x86_64"), "SCMP_ARCH_X32": (0xC000003E, "x32"),
                 "SCMP_ARCH_X86": (0x40000003, "x86"), "SCMP_ARCH_AARCH64": (0xC00000B7, "aarch64")}
X32_SYSCALL_BIT = 0x40000000
NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(os.uname().machine)
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)

# A call from an architecture the filter does not know could mean anything (its numbers are
# another table's): kill, as libseccomp does by default.
BAD_ARCH_ACTION = SECCOMP_RET_KILL_PROCESS


# ---------------------------------------------------------------------------------------------
# The engine's half: the profile, resolved for one container

def to_spec(spec: dict, host_config: dict) -> None:
    """HostConfig.SecurityOpt (seccomp=..., no-new-privileges), Privileged -> linux.seccomp
    and process.noNewPrivileges."""
    security = options.parse(host_config.get("SecurityOpt") or [])
    if security.no_new_privileges:
        spec["process"]["noNewPrivileges"] = True
    # --privileged turns the filter off, even one asked for by name, as Docker does.
    if security.seccomp == options.UNCONFINED or host_config.get("Privileged"):
        return
    profile = seccomp_profile.default_profile() if security.seccomp is None else security.seccomp
    capabilities = spec["process"].get("capabilities")
    held = capabilities["bounding"] if capabilities is not None else None  # None: the runtime keeps them all
    try:
        linux_seccomp = resolve(profile, held)
        program(linux_seccomp)  # a profile the compiler refuses is refused now, not at start
    except (KeyError, TypeError, AttributeError, ValueError) as e:  # a field missing, or of the wrong type
        raise MinidockerError(f"invalid seccomp profile: {type(e).__name__} {e}",
                              "see Docker's default.json for the format") from None
    spec["linux"]["seccomp"] = linux_seccomp


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(6, 1) for "6.1.0-18-amd64"."""
    major, minor = (release or os.uname().release).split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


# --8<-- [start:resolve-rule]
def _applies(rule: dict, held: list[str] | None, kernel: tuple[int, int]) -> bool:
    """Does a profile rule apply to this container? moby's test, in its order."""
    has = (lambda cap: True) if held is None else held.__contains__
    excludes, includes = rule.get("excludes") or {}, rule.get("includes") or {}
    if GO_ARCH in (excludes.get("arches") or []) or any(has(c) for c in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and kernel >= kernel_version(excludes["minKernel"]):
        return False
    if includes.get("arches") and GO_ARCH not in includes["arches"]:
        return False
    if not all(has(c) for c in includes.get("caps") or []):
        return False
    return not (includes.get("minKernel") and kernel < kernel_version(includes["minKernel"]))
# --8<-- [end:resolve-rule]


def resolve(profile: dict, held: list[str] | None, kernel: tuple[int, int] | None = None) -> dict:
    """A profile (the JSON of --security-opt seccomp=FILE) -> OCI linux.seccomp for a container
    whose bounding set is `held` (None: every capability)."""
    if profile.get("architectures") and profile.get("archMap"):
        raise MinidockerError("'architectures' and 'archMap' both in the seccomp profile", "use either one")
    kernel = kernel or kernel_version()
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == NATIVE:
            arches += [entry["architecture"], *(entry.get("subArchitectures") or [])]
    linux_seccomp = {"defaultAction": profile.get("defaultAction", ""), "architectures": arches, "syscalls": []}
    if profile.get("defaultErrnoRet") is not None:
        linux_seccomp["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for rule in profile.get("syscalls") or []:
        if rule.get("name") and rule.get("names"):
            raise MinidockerError("a seccomp rule with both 'name' and 'names'", "use 'names'")
        if not _applies(rule, held, kernel):
            continue
        call = {"names": rule.get("names") or [rule["name"]], "action": rule.get("action", "")}
        if rule.get("errnoRet") is not None:
            call["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            call["args"] = rule["args"]
        linux_seccomp["syscalls"].append(call)
    return linux_seccomp


# ---------------------------------------------------------------------------------------------
# The runtime's half: linux.seccomp -> BPF -> the kernel

def action_value(action: str, errno_ret: int | None = None) -> int:
    """An OCI action ("SCMP_ACT_ERRNO", errnoRet 38) -> the filter's return value (0x50026)."""
    if action not in ACTIONS:
        raise MinidockerError(f"seccomp action {action!r} is not supported", f"use one of {', '.join(ACTIONS)}")
    value = ACTIONS[action]
    if value in (SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE):
        value |= (EPERM if errno_ret is None else errno_ret) & 0xFFFF  # runc's default: EPERM
    return value


def action_name(value: int) -> str:
    """The inverse, for the disassembler: 0x50001 -> "ERRNO(1)"."""
    name = RETURNS.get(value & 0xFFFF0000, hex(value)).removeprefix("SECCOMP_RET_")
    return f"{name}({value & 0xFFFF})" if value & 0xFFFF0000 in (SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE) else name


def _halves(offset: int) -> tuple[int, int]:
    """Where the high and the low 32 bits of a 64-bit field are (BPF loads 32 bits at a time)."""
    return (offset + 4, offset) if sys.byteorder == "little" else (offset, offset + 4)


# --8<-- [start:compare-argument]
def compare_argument(condition: dict, fail: Label) -> list:
    """Instructions that go on when args[index] <op> value holds, and jump to `fail` when not.

    An argument is 64 bits and BPF's A is 32: compare the high halves, then the low ones.
    """
    index, op = condition["index"], condition["op"]
    if not 0 <= index < 6:
        raise MinidockerError(f"seccomp argument index {index} out of range", "a system call has args 0 to 5")
    high, low = _halves(bpf.SECCOMP_DATA_ARGS + 8 * index)
    value = condition["value"]
    if op == "SCMP_CMP_MASKED_EQ":  # (arg & value) == valueTwo
        mask, value = value, condition.get("valueTwo", 0)
        return [load(high), bpf.and_(mask >> 32), jump(bpf.BPF_JEQ, value >> 32, false=fail),
                load(low), bpf.and_(mask & 0xFFFFFFFF), jump(bpf.BPF_JEQ, value & 0xFFFFFFFF, false=fail)]
    hi, lo, ok = value >> 32, value & 0xFFFFFFFF, Label("ok")
    if op == "SCMP_CMP_EQ":
        return [load(high), jump(bpf.BPF_JEQ, hi, false=fail), load(low), jump(bpf.BPF_JEQ, lo, false=fail)]
    if op == "SCMP_CMP_NE":  # either half differs
        return [load(high), jump(bpf.BPF_JEQ, hi, false=ok), load(low), jump(bpf.BPF_JEQ, lo, true=fail), ok]
    # The orderings: the high halves decide, unless they are equal; then the low halves do.
    # GT and GE hold, LT and LE fail, when the high half is above: (test on low, and its sense)
    tests = {"SCMP_CMP_GT": (bpf.BPF_JGT, True), "SCMP_CMP_GE": (bpf.BPF_JGE, True),
             "SCMP_CMP_LE": (bpf.BPF_JGT, False), "SCMP_CMP_LT": (bpf.BPF_JGE, False)}
    if op not in tests:
        raise MinidockerError(f"seccomp operator {op!r} is not supported",
                              "use one of SCMP_CMP_EQ, NE, LT, LE, GT, GE, MASKED_EQ")
    low_test, above_holds = tests[op]
    above, below = (ok, fail) if above_holds else (fail, ok)
    return [load(high), jump(bpf.BPF_JGT, hi, true=above), jump(bpf.BPF_JEQ, hi, false=below),
            load(low), jump(low_test, lo, true=above, false=below), ok]
# --8<-- [end:compare-argument]


def rule_code(number: int, conditions: list[dict], action: int) -> list:
    """The instructions of one rule for one system call: if nr == number and every condition
    on its arguments holds, return `action`; else go on with the next rule."""
    # --8<-- [start:ex-08-seccomp-rule]
    # Jump to the next rule unless nr == number; check each condition (a failed one jumps there
    # too); return the action; at the next rule's label, load nr into A again.
    #
    # A holds nr when this code starts. The arguments' checks load their own words into A, and
    # the next rule expects nr there.
    next_rule = Label("next")
    code = [jump(bpf.BPF_JEQ, number, false=next_rule)]
    for condition in conditions:
        code += compare_argument(condition, fail=next_rule)
    code += [ret(action), next_rule]
    if conditions:
        code.append(load(bpf.SECCOMP_DATA_NR))
    return code
    # --8<-- [end:ex-08-seccomp-rule]


def _rules_code(syscalls: list[dict], table: dict[str, int], default: int, newer_enosys: bool = False) -> list:
    """Every rule, in order (the first that matches answers), then the default action; with
    `newer_enosys`, ENOSYS instead for a call newer than every one the profile names.

    Calls without argument conditions that share an action share one `return`: a run of
    "if nr == N goto allow" (a conditional jump reaches 255 ahead: runs of at most 200)."""
    code, run, run_action = [], [], None

    def flush():
        if run:
            answer, after = Label("return"), Label("after")
            code.extend(jump(bpf.BPF_JEQ, n, true=answer) for n in run[:-1])
            code.extend([jump(bpf.BPF_JEQ, run[-1], false=after), answer, ret(run_action), after])
            run.clear()

    for rule in syscalls:
        action = action_value(rule["action"], rule.get("errnoRet"))
        # A name this architecture does not have is skipped, as runc does (chown32 on x86_64).
        numbers = [table[name] for name in rule["names"] if name in table]
        if rule.get("args"):
            flush()
            for number in numbers:
                code += rule_code(number, rule["args"], action)
            continue
        if action != run_action:
            flush()
            run_action = action
        for number in numbers:
            if len(run) == 200:
                flush()
            run.append(number)
    flush()
    newest = max((table[name] for rule in syscalls for name in rule["names"] if name in table), default=None)
    if newer_enosys and newest is not None:
        # runc's -ENOSYS stub: a call the profile's authors could not know (newer than every call
        # it names) fails as on a kernel that lacks it, so that a program falls back to an older
        # call (glibc's clone3 -> clone) instead of taking EPERM for a refusal.
        newer = Label("newer")
        return code + [jump(bpf.BPF_JGT, newest, true=newer), ret(default), newer, ret(SECCOMP_RET_ERRNO | ENOSYS)]
    return code + [ret(default)]


def answers_enosys_for_newer(linux_seccomp: dict) -> bool:
    """runc's rule for its -ENOSYS stub: not when the default lets a call through (allow, log,
    trace), nor when the default is ENOSYS already."""
    return (linux_seccomp["defaultAction"] not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")
            and linux_seccomp.get("defaultErrnoRet") != ENOSYS)


# --8<-- [start:compile-filter]
def compile_filter(linux_seccomp: dict) -> list[bpf.Instruction]:
    """OCI linux.seccomp -> a classic BPF program for seccomp(2).

    First the architecture: each known one jumps to its own section, whose rules use its own
    numbers; any other is killed. x86_64's section sends numbers with the X32 bit to x32's
    rules, or kills them when the profile has no x32: else a filter that allows by default
    and refuses mkdir (83) would let x32's mkdir (0x40000053) through.
    """
    default = action_value(linux_seccomp["defaultAction"], linux_seccomp.get("defaultErrnoRet"))
    # No architectures: the native one only. One the compiler has no table for is left out,
    # and so killed (libseccomp would compile it; we know only these).
    names = [a for a in linux_seccomp.get("architectures") or [NATIVE] if a in ARCHITECTURES]
    sections: dict[int, dict[str, Label]] = {}
    for name in dict.fromkeys(names):
        audit, table = ARCHITECTURES[name]
        sections.setdefault(audit, {})[table] = Label(table)
    kill = Label("bad-arch")
    code = [load(bpf.SECCOMP_DATA_ARCH)]
    for audit, tables in sections.items():
        other = Label("other-arch")
        code.append(jump(bpf.BPF_JEQ, audit, false=other))
        if audit == ARCHITECTURES["SCMP_ARCH_X86_64"][0]:
            not_x32 = Label("not-x32")
            code += [load(bpf.SECCOMP_DATA_NR), jump(bpf.BPF_JGE, X32_SYSCALL_BIT, false=not_x32),
                     goto(tables.get("x32", kill)), not_x32, goto(tables.get("x86_64", kill))]
        else:
            code.append(goto(*tables.values()))
        code.append(other)
    code += [kill, ret(BAD_ARCH_ACTION)]
    for tables in sections.values():
        for table, label in tables.items():
            code += [label, load(bpf.SECCOMP_DATA_NR),
                     *_rules_code(linux_seccomp.get("syscalls") or [], SYSCALLS[table], default,
                                  answers_enosys_for_newer(linux_seccomp))]
    return bpf.assemble(code)
# --8<-- [end:compile-filter]


def disassemble(program: list[bpf.Instruction], table: str = "x86_64") -> str:
    """A compiled filter in words, with the syscalls and architectures named."""
    calls = {number: name for name, number in SYSCALLS[table].items()}
    arches = {}
    for name, (audit, _) in ARCHITECTURES.items():
        arches.setdefault(audit, name)  # x86_64's, not x32's: they share one

    def constants(field, k):
        if field == "nr":
            return calls.get(k)
        return arches.get(k) if field == "arch" else None
    return bpf.disassemble(program, action_name, constants)


_programs: dict[str, bytes] = {}  # linux.seccomp, as JSON -> its program


def program(linux_seccomp: dict) -> bytes:
    """linux.seccomp compiled to BPF and packed for seccomp(2). Once per process for each
    filter: `minidocker run` compiles it at create (a profile the compiler refuses is refused
    then), and its runtime needs the very same program."""
    key = json.dumps(linux_seccomp, sort_keys=True)
    if key not in _programs:
        _programs[key] = bpf.pack(compile_filter(linux_seccomp))
    return _programs[key]


def install(compiled: bytes) -> None:
    """In the container's process: load the filter (seccomp(2)).

    Without no_new_privs the kernel asks for CAP_SYS_ADMIN (a filter could otherwise fool a
    setuid program into a half-done privileged task): runtime/process.py calls this at the
    right moment for either case.
    """
    linux.seccomp_set_mode_filter(compiled)


def show(profile_path: str | None = None) -> str:
    """The filter a default container (Docker's 14 capabilities) gets from a profile file (Docker's
    default if none), in words: python3 -c 'from minidocker.security import seccomp; print(seccomp.show())'"""
    import json

    from minidocker.security import capabilities

    if profile_path:
        with open(profile_path) as file:
            profile = json.load(file)
    else:
        profile = seccomp_profile.default_profile()
    return disassemble(compile_filter(resolve(profile, capabilities.DEFAULT_CAPABILITIES)))
