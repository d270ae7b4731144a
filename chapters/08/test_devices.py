"""Chapter 08: the device cgroup. Root in a default container may mknod any node (Docker allows
it) but open only Docker's harmless devices; --device adds a host node with its permissions;
--privileged allows every device; a bad --device is one line, 125, nothing made
(docs/08-hardening.md#the-device-cgroup).

Then the rules themselves: a reading of cgroup v1's semantics written here, as the kernel's
documentation states them, must agree with minidocker's v1 writes and with its BPF program, run
in a small eBPF machine below, for random rule lists; and the real kernel must agree with both,
through this host's driver and through a BPF program on a cgroup v2 directory.
"""

import json
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker import cgroups, linux
from minidocker.cgroups import devices, devices_bpf

DOCS = "docs/08-hardening.md#the-device-cgroup"
FLAG_DOCS = "docs/08-hardening.md#device"
EXERCISE = "docs/08-hardening.md#ex-08-device-rule"
BPF_DOCS = "docs/08-hardening.md#cgroup-v2-a-bpf-program"
RUN = ("run", "--rm", "--network", "none")

# Harmless host devices that a default container may not open: /dev/fuse (moby denies 10:229 by
# name), the tun device (10:200) and loop-control (10:237). Opening one and closing it changes nothing.
SPARE_DEVICES = ("/dev/fuse", "/dev/net/tun", "/dev/loop-control")


@pytest.fixture(autouse=True)
def _root():
    harness.need_root()


def spare_device() -> str:
    found = [path for path in SPARE_DEVICES if os.path.exists(path)]
    assert found, f"this host has none of {SPARE_DEVICES}: the --device tests need one"
    return found[0]


def lines_of(out) -> list[str]:
    assert out.returncode == 0, f"the container failed {harness.explain(out)}"
    return (out.stdout + out.stderr).splitlines()


# ---------------------------------------------------------------------------------------------
# Through the CLI

def test_a_default_container_may_mknod_but_not_open(md):
    """`mknod` of a disk works (Docker allows "b *:* m" and keeps CAP_MKNOD); opening it is the lock."""
    script = ("test -e /dev/mdsda || echo absent; mknod /dev/mdsda b 8 0 && echo mknod-ok; "
              "head -c1 /dev/mdsda >/dev/null; "
              "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; "
              "echo x > /dev/full; head -c 8 /dev/urandom | wc -c")
    lines = lines_of(md(*RUN, "busybox", "sh", "-c", script))
    assert "absent" in lines and "mknod-ok" in lines, (
        f"a container's /dev has no disk, and root in it may make one (mknod is allowed): {lines} — see {DOCS}")
    assert any("/dev/mdsda" in line and "Operation not permitted" in line for line in lines), (
        f"opening a block device the container made itself must fail with EPERM, from the device "
        f"cgroup (v1 devices.deny \"a\"; v2 the BPF program): {lines} — see {DOCS}")
    assert lines.count("4") == 1 and "null-ok" in lines and lines.count("8") == 1, (
        f"/dev/zero, /dev/null and /dev/urandom must work in a default container: {lines} — see {DOCS}")
    assert any("No space left on device" in line for line in lines), (
        f"/dev/full opens (and says ENOSPC on write, as it should): runc allows c 1:7: {lines} — see {DOCS}")


def test_device_flag_adds_the_node_with_its_permissions(md):
    device = spare_device()
    major, minor = os.major(os.stat(device).st_rdev), os.minor(os.stat(device).st_rdev)
    # In a subshell: a failed redirection of `exec` ends the shell that runs it.
    probe = "ls -l /dev/mdspare; (exec 3</dev/mdspare) && echo read-ok; (exec 4>/dev/mdspare) && echo write-ok; true"
    without = lines_of(md(*RUN, "busybox", "sh", "-c", f"mknod /dev/mdspare c {major} {minor}; {probe}"))
    assert "read-ok" not in without and any("Operation not permitted" in line for line in without), (
        f"{device} ({major}:{minor}) must not open in a default container: {without} — see {DOCS}")
    read_only = lines_of(md(*RUN, "--device", f"{device}:/dev/mdspare:r", "busybox", "sh", "-c", probe))
    assert read_only[0].startswith("c") and f"{major}, {minor:3d}" in read_only[0], (
        f"--device {device}:/dev/mdspare:r makes the host's node at /dev/mdspare: {read_only} — see {FLAG_DOCS}")
    assert "read-ok" in read_only and "write-ok" not in read_only, (
        f"--device ...:r allows reading only (the rule c {major}:{minor} r): {read_only} — see {FLAG_DOCS}")
    full = lines_of(md(*RUN, "--device", f"{device}:/dev/mdspare", "busybox", "sh", "-c", probe))
    assert "read-ok" in full and "write-ok" in full, (
        f"--device without permissions gives rwm, as the docker CLI does: {full} — see {FLAG_DOCS}")


def test_exec_is_in_the_device_cgroup_and_privileged_opens_all(md):
    device = spare_device()
    name = "md-devices-exec"
    started = md("run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "30")
    try:
        assert started.returncode == 0, f"run -d failed {harness.explain(started)}"
        out = md("exec", name, "sh", "-c", "mknod /dev/mdsda b 8 0; head -c1 /dev/mdsda")
        assert "Operation not permitted" in out.stderr, (
            f"an exec'd process joins the container's cgroup, devices included: {harness.explain(out)} — see {DOCS}")
    finally:
        md("rm", "-f", name)
    lines = lines_of(md(*RUN, "--privileged", "busybox", "sh", "-c", f"exec 3<>{device} && echo opened"))
    assert "opened" in lines, f"--privileged has every host node and the rule \"a *:* rwm\": {lines} — see {DOCS}"


@pytest.mark.parametrize("kind", ["missing", "not a device"])
def test_a_bad_device_is_one_line_and_nothing_is_made(md, tmp_path, kind):
    path, reason = {"missing": ("/dev/md-nope", "no such file or directory"),
                    "not a device": (str(tmp_path), "not a device node")}[kind]
    out = md("run", "--name", "md-bad-device", "--device", path, "busybox", "true")
    made = md("ps", "-a", "-q", "--filter", "name=md-bad-device").stdout
    assert out.returncode == 125 and len(out.stderr.splitlines()) == 1, (
        f"a bad --device is a one-line engine error (125) {harness.explain(out)} — see {FLAG_DOCS}")
    assert out.stderr.startswith(
        f'minidocker: error gathering device information while adding custom device "{path}": {reason}'), (
        f"dockerd's words for --device {path}: {out.stderr!r} — see {FLAG_DOCS}")
    assert not made.strip(), f"a refused --device must leave no container behind: {made!r} — see {FLAG_DOCS}"


# ---------------------------------------------------------------------------------------------
# The rules: the test's reading of cgroup v1, against minidocker's v1 writes and BPF program

def kernel_v1(writes: list[tuple[str, str]], start_allow: bool = True):
    """A cgroup v1 devices controller (Documentation/admin-guide/cgroup-v1/devices.rst), fed
    (file, line) writes. Returns a function (type, major, minor, access) -> allowed."""
    allow_all, exceptions = start_allow, {}
    for name, line in writes:
        allow = name == "devices.allow"
        if line == "a" or line.startswith("a "):
            allow_all, exceptions = allow, {}
            continue
        kind, numbers, access = line.split()
        major, minor = (None if n == "*" else int(n) for n in numbers.split(":"))
        key = (kind, major, minor)
        if allow != allow_all:  # an exception to the default: added, or its access widened
            exceptions[key] = exceptions.get(key, set()) | set(access)
        elif key in exceptions:  # agrees with the default: an identical exception loses access
            exceptions[key] -= set(access)
            if not exceptions[key]:
                del exceptions[key]

    def allowed(kind, major, minor, access):
        hits = [grant for (k, ma, mi), grant in exceptions.items()
                if k == kind and ma in (None, major) and mi in (None, minor)]
        if allow_all:  # denied if any exception takes away any of the access asked for
            return not any(set(access) & grant for grant in hits)
        return any(set(access) <= grant for grant in hits)  # one exception must grant it all
    return allowed


def oci_as_writes(rules: list[dict]) -> list[tuple[str, str]]:
    """The OCI rules written to v1 one by one, in order, after runc's "deny all" start."""
    writes = [("devices.deny", "a")]
    for rule in rules:
        star = lambda n: "*" if n is None else str(n)  # noqa: E731
        kind = rule.get("type") or "a"
        line = "a" if kind == "a" else f"{kind} {star(rule.get('major'))}:{star(rule.get('minor'))} {rule['access']}"
        writes.append(("devices.allow" if rule["allow"] else "devices.deny", line))
    return writes


def run_bpf(program: list[tuple], kind: str, major: int, minor: int, access: str) -> int:
    """An eBPF machine for the instructions a device program may use; it refuses any other, a
    read of a register never written, and a jump out of the program, as the verifier would."""
    ctx = struct.pack("<III", sum(devices_bpf.ACCESS[a] for a in access) << 16 | devices_bpf.DEV_TYPE[kind],
                      major, minor)
    regs, pc, mask = {1: "ctx"}, 0, (1 << 64) - 1

    def reg(n):
        assert n in regs, f"instruction {pc - 1} reads r{n} before it is written"
        return regs[n]
    for _ in range(4096):
        assert 0 <= pc < len(program), f"the program jumps out of itself, to {pc}"
        code, dst, src, off, imm = program[pc]
        pc += 1
        if code == 0x61:  # ldx w: a u32 of the context
            assert reg(src) == "ctx" and off in (0, 4, 8), f"instruction {pc - 1} reads outside the context"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0xbf:
            regs[dst] = reg(src)
        elif code == 0xb7:
            regs[dst] = imm & mask
        elif code == 0x57:
            regs[dst] = reg(dst) & (imm & mask)  # imm is sign-extended to 64 bits
        elif code == 0x77:
            regs[dst] = reg(dst) >> imm
        elif code in (0x15, 0x55):  # jeq, jne with an immediate
            if (reg(dst) == imm & mask) == (code == 0x15):
                pc += off
        elif code == 0x95:
            return reg(0)
        else:
            raise AssertionError(f"instruction {pc - 1}: opcode {code:#x} is not one a device program needs")
    raise AssertionError("the program did not end")


KINDS, ACCESSES = st.sampled_from(["c", "b"]), st.sampled_from(["r", "w", "m", "rw", "rwm", "wm"])
NUMBERS = st.one_of(st.none(), st.integers(0, 3))
RULES = st.lists(st.one_of(
    st.builds(lambda allow, access: {"allow": allow, "access": access}, st.booleans(), st.just("rwm")),
    st.builds(lambda allow, kind, major, minor, access: {"allow": allow, "type": kind, "major": major,
                                                        "minor": minor, "access": access},
              st.booleans(), KINDS, NUMBERS, NUMBERS, ACCESSES)), max_size=8)
REQUESTS = st.tuples(KINDS, st.integers(0, 3), st.integers(0, 3), st.sampled_from(["r", "w", "rw", "m"]))


@settings(max_examples=300)
@given(rules=RULES, requests=st.lists(REQUESTS, min_size=1, max_size=8))
def test_v1_writes_and_the_bpf_program_agree_with_the_kernels_rules(rules, requests):
    truth = kernel_v1(oci_as_writes(rules))
    ours = kernel_v1(devices.v1_writes(rules), start_allow=False)
    program = devices_bpf.assemble(rules)
    for kind, major, minor, access in requests:
        expected = truth(kind, major, minor, access)
        asked = f"{access} on {kind} {major}:{minor} under {rules}"
        assert devices.allows(rules, kind, major, minor, access) == expected, (
            f"devices.allows says {not expected} for {asked}: the kernel says {expected} — see {DOCS}")
        assert ours(kind, major, minor, access) == expected, (
            f"the v1 writes {devices.v1_writes(rules)} decide {not expected} for {asked} — see {DOCS}")
        assert run_bpf(program, kind, major, minor, access) == int(expected), (
            f"the BPF program answers {int(not expected)} for {asked} — see {EXERCISE}")


def test_dockers_rules_as_a_program():
    rules = devices.RUNTIME_RULES  # mknod anything; null, zero, full, random, urandom, tty, console, ptmx, ptys
    program = devices_bpf.assemble([{"allow": False, "access": "rwm"}] + rules)
    cases = {("c", 1, 3, "rw"): 1, ("c", 136, 7, "rw"): 1, ("b", 8, 0, "m"): 1, ("b", 8, 0, "r"): 0,
             ("c", 10, 229, "r"): 0, ("c", 1, 1, "r"): 0}  # 1:1 is /dev/mem
    for (kind, major, minor, access), verdict in cases.items():
        assert run_bpf(program, kind, major, minor, access) == verdict, (
            f"runc's default rules as a program answer wrongly for {access} on {kind} {major}:{minor} "
            f"(expected {verdict}) — see {EXERCISE}")
    assert len(devices_bpf.encode(program)) == 8 * len(program), f"an instruction is 8 bytes — see {BPF_DOCS}"
    listing = devices_bpf.disassemble(program)
    assert len(listing) == len(program) and listing[-2:] == [f"{len(program) - 2:3}: r0 = 0", f"{len(program) - 1:3}: exit"], (
        f"the program ends with the default, deny: {listing[-2:]} — see {BPF_DOCS}")


# ---------------------------------------------------------------------------------------------
# The real kernel: a process in a cgroup with the rules, trying each device

def unused_majors(count: int = 2) -> list[int]:
    """Majors no driver has here (/proc/devices): a node with one passes the device cgroup, then
    fails with ENXIO, so an open can be tried without waking any real device."""
    with open("/proc/devices") as f:
        taken = {int(line.split()[0]) for line in f if line.split() and line.split()[0].isdigit()}
    free = [major for major in (60, 61, 62, 63, 120, 121, 122, 123, 124, 125, 126) if major not in taken]
    assert len(free) >= count, f"no unused experimental majors on this host: {sorted(taken)}"
    return free[:count]


def kernel_verdicts(cgroup, rules: list[dict], requests: list[tuple], scratch: str) -> dict:
    """Put `rules` on `cgroup`, then in a child in that cgroup try each request; {request: allowed}.

    The child makes the nodes on a tmpfs of its own mount namespace (nothing to unmount after)
    before it joins the cgroup; then opens them (EPERM means the cgroup said no) and, for "m",
    makes a second node."""
    cgroup.create()
    try:
        cgroup.set_devices(rules)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report and _exit, whatever happens
            try:
                os.close(read_end)
                linux.unshare(linux.CLONE_NEWNS)
                linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
                linux.mount("tmpfs", scratch, "tmpfs", 0, "mode=700")
                nodes = {}
                for kind, major, minor, _ in requests:
                    path = os.path.join(scratch, f"{kind}{major}-{minor}")
                    if path not in nodes.values():
                        os.mknod(path, (0o20000 if kind == "c" else 0o60000) | 0o600, os.makedev(major, minor))
                    nodes[kind, major, minor] = path
                cgroup.add(0)
                answers = []
                for kind, major, minor, access in requests:
                    try:
                        if access == "m":
                            os.mknod(f"{nodes[kind, major, minor]}-m{len(answers)}",
                                     (0o20000 if kind == "c" else 0o60000) | 0o600, os.makedev(major, minor))
                        else:
                            flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[access]
                            os.close(os.open(nodes[kind, major, minor], flags | os.O_NONBLOCK))
                        answers.append(True)
                    except OSError as e:
                        answers.append(e.errno != 1)  # EPERM is the cgroup's no; ENXIO came after a yes
                os.write(write_end, json.dumps(answers).encode())
                os._exit(0)
            except BaseException as e:  # noqa: BLE001 - the parent reads what went wrong
                os.write(write_end, json.dumps(repr(e)).encode())
                os._exit(1)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            answers = json.loads(pipe.read() or "null")
        os.waitpid(pid, 0)
        assert isinstance(answers, list), f"the probing child failed: {answers}"
        return dict(zip(requests, answers))
    finally:
        cgroup.remove()  # with a BPF program attached too: the program goes with the cgroup


def probe_rules(majors: list[int]) -> tuple[list[dict], list[tuple]]:
    a, b = majors
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": a, "minor": None, "access": "rw"},
             {"allow": True, "type": "c", "major": b, "minor": 1, "access": "r"},
             {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    requests = [(kind, major, minor, access) for kind in "cb" for major in (a, b) for minor in (0, 1)
                for access in ("r", "w", "rw", "m")] + [("c", 1, 3, "rw"), ("c", 1, 5, "r")]
    return rules, requests


@pytest.mark.parametrize("driver", ["this host's", "cgroup v2 (BPF)"])
def test_the_kernel_agrees(tmp_path, driver):
    rules, requests = probe_rules(unused_majors())
    path = f"{cgroups.default_path('md-devices-probe')}"
    cgroup = cgroups.detect()(path) if driver == "this host's" else cgroups.V2(path)
    got = kernel_verdicts(cgroup, rules, requests, str(tmp_path))
    wrong = {request: allowed for request, allowed in got.items() if allowed != devices.allows(rules, *request)}
    assert not wrong, (f"the kernel, through {type(cgroup).__name__}, decides otherwise than the rules "
                       f"{rules} for (request: kernel's answer) {wrong} — see {DOCS}")
    assert not cgroup.exists(), f"the cgroup {cgroup.path} must rmdir with its device rules — see {BPF_DOCS}"
