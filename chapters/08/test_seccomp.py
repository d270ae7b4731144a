"""Chapter 08: seccomp. A default container runs under Docker's default profile, compiled to a
BPF filter: a call the profile refuses fails with EPERM before the kernel even looks at it
(`unshare -U`, which the kernel itself would allow); `--security-opt seccomp=unconfined` and
--privileged turn the filter off; a profile file of one's own is obeyed, errno and all; exec'd
processes are filtered too; no-new-privileges sets the kernel's flag (docs/08-hardening.md#seccomp).

The filter is also checked without a container: compiled from random profiles and run on a BPF
machine of the test's own (seccomp_machine.py) for random calls, it must give the answer a
direct reading of the profile gives.
"""

import importlib
import json
import re

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker.security import bpf, seccomp, seccomp_profile
from minidocker.security.syscalls import SYSCALLS

machine = importlib.import_module("chapters.08.seccomp_machine")

DOCS = "docs/08-hardening.md#seccomp"
EXERCISE = "docs/08-hardening.md#ex-08-seccomp-rule"
OPTS = "docs/08-hardening.md#security-opt"
RUN = ("run", "--rm", "--network", "none")
DOCKER_DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
# What the shell in the container reports, one line each: the kernel's view, then the attempts.
PROBE = ("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
         "unshare -U true 2>&1 && echo unshare=ok; mkdir /md-dir 2>&1 && echo mkdir=ok; rmdir /md-dir 2>&1 && echo rmdir=ok; true")


def status(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(Seccomp|NoNewPrivs):\s*(\d)", text, re.M))


def probe(md, *flags) -> str:
    out = md(*RUN, *flags, "busybox", "sh", "-c", PROBE)
    assert out.returncode == 0, f"{harness.explain(out)} ({EXERCISE})"
    return out.stdout


@pytest.fixture
def need_root():
    harness.need_root()


# ---------------------------------------------------------------------------------------------
# In a container, through the CLI

def test_a_default_container_is_filtered_and_a_refused_call_gets_eperm(md, need_root):
    out = probe(md)
    assert status(out) == {"Seccomp": "2", "NoNewPrivs": "0"}, (
        f"a default container's process should be in seccomp mode 2 (a filter), without no_new_privs "
        f"(/proc/self/status says {status(out)}) ({DOCS})")
    assert "unshare=ok" not in out and "Operation not permitted" in out, (
        f"Docker's profile refuses unshare to a container without CAP_SYS_ADMIN, with EPERM: {out!r} ({DOCS})")
    assert "mkdir=ok" in out and "rmdir=ok" in out, f"ordinary calls must still work: {out!r} ({EXERCISE})"


@pytest.mark.parametrize("flags", [("--security-opt", "seccomp=unconfined"), ("--privileged",)], ids=["unconfined", "privileged"])
def test_unconfined_and_privileged_have_no_filter(md, need_root, flags):
    out = probe(md, *flags)
    assert status(out)["Seccomp"] == "0", f"{' '.join(flags)} should install no filter: {out!r} ({DOCS})"
    assert "unshare=ok" in out, (
        f"without the filter, unshare(CLONE_NEWUSER) reaches the kernel, which allows it: {out!r} ({DOCS})")


def test_a_profile_file_is_obeyed_with_its_errno(md, need_root, tmp_path):
    # Allow everything but mkdir (EPERM, the default errno) and rmdir (errnoRet 38, ENOSYS).
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}
    path = tmp_path / "md-profile.json"
    path.write_text(json.dumps(profile, indent=2))
    out = probe(md, "--security-opt", f"seccomp={path}", "--security-opt", "no-new-privileges")
    assert status(out) == {"Seccomp": "2", "NoNewPrivs": "1"}, (
        f"the profile's filter, and no_new_privs from --security-opt no-new-privileges: {status(out)} ({OPTS})")
    assert "unshare=ok" in out, f"this profile allows unshare by default: {out!r} ({DOCS})"
    assert "mkdir=ok" not in out and "Operation not permitted" in out, f"mkdir should fail with EPERM: {out!r} ({DOCS})"
    # rmdir of a directory that does not exist: ENOSYS from the filter, not ENOENT from the kernel.
    assert "Function not implemented" in out, f"errnoRet 38 makes rmdir fail with ENOSYS: {out!r} ({EXERCISE})"


def test_exec_runs_under_the_containers_filter(md, need_root):
    name = "md-seccomp-exec"
    out = md("run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "30")
    assert out.returncode == 0, harness.explain(out)
    try:
        out = md("exec", name, "sh", "-c", PROBE)
    finally:
        md("rm", "-f", name)
    assert status(out.stdout)["Seccomp"] == "2" and "unshare=ok" not in out.stdout, (
        f"an exec'd process must get the container's filter (a filter is per process): {out.stdout!r} ({DOCS})")


def test_the_trace_shows_the_filter_loaded(md, need_root):
    out = md("--trace", *RUN, "busybox", "true")
    assert out.returncode == 0, harness.explain(out)
    loaded = re.search(r"^\[container [^]]*\] seccomp\(SECCOMP_SET_MODE_FILTER, 0, \{len=(\d+), filter=\.\.\.\}\) = 0$",
                       out.stderr, re.M)
    assert loaded, f"--trace should show the container's process loading its filter with seccomp(2) ({DOCS}):\n{out.stderr}"
    assert 0 < int(loaded[1]) <= bpf.MAX_INSTRUCTIONS, f"a filter of {loaded[1]} instructions ({DOCS})"


def test_bad_security_opts_are_refused_in_dockers_words(md, need_root, tmp_path):
    before = md("ps", "-a", "-q").stdout
    bad_json = tmp_path / "md-bad.json"
    bad_json.write_text("{not json")
    cases = {("foo",): 'Invalid --security-opt: "foo"', ("foo=bar",): 'invalid --security-opt 2: "foo=bar"',
             ("no-new-privileges=maybe",): 'invalid --security-opt 2: "no-new-privileges=maybe"',
             (f"seccomp={tmp_path}/md-missing.json",): "opening seccomp profile",
             (f"seccomp={bad_json}",): "compacting json for seccomp profile"}
    for options, words in cases.items():
        out = md(*RUN, *(f"--security-opt={o}" for o in options), "busybox", "true")
        assert out.returncode == 125 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1, (
            f"--security-opt {options[0]} should fail with exit 125 and one line saying {words!r}: "
            f"{harness.explain(out)} ({OPTS})")
    assert md("ps", "-a", "-q").stdout == before, f"a refused option must leave no container behind ({OPTS})"


# ---------------------------------------------------------------------------------------------
# The compiler, without a container

def default_filter(caps=DOCKER_DEFAULT_CAPS):
    linux_seccomp = seccomp.resolve(seccomp_profile.default_profile(), caps, kernel=(6, 1))
    return linux_seccomp, seccomp.compile_filter(linux_seccomp)


def newest(linux_seccomp: dict, table: dict) -> int:
    return max(table[name] for rule in linux_seccomp["syscalls"] for name in rule["names"] if name in table)


def test_the_default_filter_fits_and_says_what_docker_says():
    linux_seccomp, program = default_filter()
    assert len(program) <= bpf.MAX_INSTRUCTIONS, f"{len(program)} instructions: the kernel takes 4096 at most ({DOCS})"
    x86_64, x32 = SYSCALLS["x86_64"], SYSCALLS["x32"]
    eperm, allow = machine.ERRNO | 1, machine.ALLOW
    checks = {  # (arch, nr, args) -> the answer
        ("x86_64", x86_64["read"], (0,) * 6): allow,
        ("x86_64", x86_64["mount"], (0,) * 6): eperm,  # no CAP_SYS_ADMIN
        ("x86_64", x86_64["clone"], (0x11,) + (0,) * 5): allow,  # a plain fork: SIGCHLD
        ("x86_64", x86_64["clone"], (0x10000011,) + (0,) * 5): eperm,  # CLONE_NEWUSER
        ("x86_64", x86_64["clone3"], (0,) * 6): machine.ERRNO | 38,  # ENOSYS: the C library falls back to clone
        ("x86_64", x86_64["personality"], (0xFFFFFFFF,) + (0,) * 5): allow,
        ("x86_64", x86_64["personality"], (0x0040000,) + (0,) * 5): eperm,  # ADDR_NO_RANDOMIZE
        ("x86_64", x86_64["socket"], (40,) + (0,) * 5): eperm,  # AF_VSOCK
        ("x86_64", x86_64["socket"], (38,) + (0,) * 5): eperm,  # AF_ALG
        ("x86_64", x86_64["io_uring_setup"], (0,) * 6): eperm,  # I/O that no filter would see
        ("x86_64", x86_64["socket"], (2,) + (0,) * 5): allow,
        ("x86_64", x32["mkdir"], (0,) * 6): allow,  # x32 is in the archMap: its own numbers
        ("aarch64", 34, (0,) * 6): machine.KILL_PROCESS,  # not this machine's architecture
        # A call newer than every one the profile names: ENOSYS, as from a kernel without it (runc's
        # stub); one it leaves out among older ones: EPERM, the default.
        ("x86_64", newest(linux_seccomp, x86_64) + 1, (0,) * 6): machine.ERRNO | 38,
        ("x86_64", x86_64["nfsservctl"], (0,) * 6): eperm,
    }
    for (arch, nr, args), want in checks.items():
        got = machine.run(program, machine.seccomp_data(nr, machine.AUDIT[arch], args))
        assert got == want, (f"the default filter answers {got:#x} for {arch} call {nr} with args {args}, "
                             f"not {want:#x} ({EXERCISE})")


def test_capabilities_open_their_calls():
    _, program = default_filter(DOCKER_DEFAULT_CAPS + ["CAP_SYS_ADMIN", "CAP_SYS_TIME"])
    for name in ("mount", "unshare", "clock_settime", "clone3"):
        got = machine.run(program, machine.seccomp_data(SYSCALLS["x86_64"][name], machine.AUDIT["x86_64"]))
        assert got == machine.ALLOW, f"with its capability, {name} is allowed by Docker's profile ({DOCS})"


NAMES = ["read", "write", "mkdir", "mkdirat", "rmdir", "clone", "personality", "socket", "kill", "mount"]
OPS = ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"]
# Values near the edges of both 32-bit halves, where a comparison written wrong shows.
VALUES = st.sampled_from([0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**32, 2**32 + 1, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1)
conditions = st.builds(lambda index, value, op, two: {"index": index, "value": value, "op": op, "valueTwo": two},
                       st.integers(0, 2), VALUES, st.sampled_from(OPS), VALUES)
actions = st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG"])
rules = st.builds(lambda names, action, errno, args: {"names": names, "action": action, "errnoRet": errno, "args": args},
                  st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True), actions,
                  st.none() | st.integers(0, 0xFFFF), st.lists(conditions, max_size=2))
profiles = st.builds(lambda default, rules, arches: {"defaultAction": default, "architectures": arches, "syscalls": rules},
                     actions, st.lists(rules, max_size=4),
                     st.sampled_from([["SCMP_ARCH_X86_64"], ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"], ["SCMP_ARCH_X86"]]))


def near(conditions: list[dict], index: int) -> list[int]:
    """Values of args[index] where a comparison written wrong shows: each condition's value, one
    below, one above, the value with its other half changed, and what a masked comparison wants."""
    found = set()
    for c in conditions:
        if c["index"] == index:
            found |= {c["value"] - 1, c["value"], c["value"] + 1, c["value"] ^ 2**32}
            # For MASKED_EQ: an exact match, the same with the mask's high bits flipped, bits outside the mask.
            match = c["valueTwo"] & c["value"]
            found |= {match, match ^ (c["value"] & ~0xFFFFFFFF), c["valueTwo"] | ~c["value"]}
    return sorted(v & (2**64 - 1) for v in found) or [0]


@settings(max_examples=200)
@given(profiles, st.data())
def test_a_compiled_profile_answers_as_its_rules_say(profile, data):
    program = seccomp.compile_filter(profile)
    own = {"SCMP_ARCH_X86": "x86"}.get(profile["architectures"][0], "x86_64")
    calls = []
    for rule in profile["syscalls"]:
        # Aimed at each rule: one of its calls, each argument it looks at set to each value at the
        # edges of its conditions (the others anything).
        table = SYSCALLS["x32" if "SCMP_ARCH_X32" in profile["architectures"] and data.draw(st.booleans()) else own]
        nr = table.get(data.draw(st.sampled_from(rule["names"])), 0)
        anything = list(data.draw(st.tuples(VALUES, VALUES, VALUES)))
        for index in {c["index"] for c in rule["args"]} or {0}:
            calls += [(own, nr, tuple(anything[:index] + [value] + anything[index + 1:]))
                      for value in near(rule["args"], index)]
    for _ in range(4):  # anything: another architecture, any number, any arguments
        calls.append((data.draw(st.sampled_from(["x86_64", "x86", "aarch64"])), data.draw(st.integers(0, 2**32 - 1)),
                      data.draw(st.tuples(VALUES, VALUES, VALUES))))
    for arch, nr, args in calls:
        args += (0, 0, 0)
        got = machine.run(program, machine.seccomp_data(nr, machine.AUDIT[arch], args))
        want = machine.expected(profile, SYSCALLS, arch, nr, args)
        assert got == want, (f"for {arch} call {nr} with args {args} the filter answers {got:#x}, the profile "
                             f"says {want:#x}; profile {json.dumps(profile)} ({EXERCISE})")
