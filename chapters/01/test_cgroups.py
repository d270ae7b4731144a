"""Chapter 01: cgroups, for real on this kernel, and the limits' files on paper.

In the order of docs/01-isolation.md#cgroups, which is the order the runtime needs them in:
1. join: a fresh cgroup per test, a child process moved into it (ex-01-cgroup-join);
2. the limits as files, for cgroup v1 *and* v2 on any host: pure functions, no kernel
   (ex-01-cgroup-limits);
3. the limits in the kernel: what it reads back, the process it OOM-kills, the fork it refuses;
4. freeze, kill, remove.

The kernel tests run for every driver this host has (drivers_for() below): V1 and V2 on a hybrid
host, V2 alone on a pure v2 host such as the lab VM, V1 alone on a legacy one. None is skipped for
want of the other version. Where V2 lacks a controller (a hybrid host binds them all to v1), the
test checks that set_limits refuses with an error that names it.
"""

import errno
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness
from minidocker import cgroups
from minidocker.errors import MinidockerError

DOCS = "docs/01-isolation.md"
MiB = 1024 * 1024

# A child that waits for a line on stdin before it does anything: the test moves it into the
# cgroup first, so that everything it then does is charged to (and limited by) that cgroup.
WAIT = "import sys; sys.stdin.readline()\n"
ALLOCATE = WAIT + "x = b'x' * (128 << 20)\nprint('survived')"  # touches 128 MiB of pages
FORK_UNTIL_REFUSED = WAIT + """
import os
r, w = os.pipe()
n, err = 0, 0
try:
    while n < 50:
        if os.fork() == 0:
            os.close(w); os.read(r, 1); os._exit(0)  # wait for the parent to exit, then go
        n += 1
except OSError as e:
    err = e.errno
print(n, err)
"""
SPIN = WAIT + "while True: pass"


def drivers_for(mountinfo: str = "/proc/self/mountinfo") -> list[type]:
    """The drivers whose kernel path this host can run: V1 where the memory controller has a v1
    hierarchy (legacy, hybrid), V2 where a cgroup2 filesystem is mounted (pure v2, and hybrid's
    unified hierarchy beside v1)."""
    mounts = cgroups.cgroup_mounts(mountinfo)
    found = []
    if any(fstype == "cgroup" and "memory" in opts for _, fstype, opts in mounts):
        found.append(cgroups.V1)
    if any(fstype == "cgroup2" for _, fstype, _ in mounts):
        found.append(cgroups.V2)
    return found


DRIVERS = drivers_for()


# ---------------------------------------------------------------------------------------------
# Fixtures: a fresh cgroup per test, and child processes, both cleaned up even when a test fails

@pytest.fixture
def spawn():
    """spawn(code) -> a python child running `code`, stdin a pipe; killed and reaped at the end."""
    children = []

    def start(code: str) -> subprocess.Popen:
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        try:
            child.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # still frozen? cg's teardown has thawed it by now
            child.kill()
            child.communicate()


# `cg` asks for `spawn` so that its teardown runs first: it thaws the cgroup and kills what is in
# it, and only then does `spawn` reap the children (a frozen child would never exit).
@pytest.fixture(params=DRIVERS, ids=lambda driver: f"v{driver.VERSION}")
def cg(request, spawn):
    harness.need_root()
    path = f"{os.environ['MINIDOCKER_CGROUP_PARENT']}/md-{uuid.uuid4().hex[:8]}"
    group = request.param(path)
    try:
        group.create()
        yield group
    finally:
        _force_remove(path)


def _force_remove(path: str) -> None:
    """Clean up with plain file operations, not with the code under test (it may be broken), and
    never raise: a teardown error would bury the test's own failure."""
    for root in harness.cgroup_roots():
        for dirpath, _, _ in os.walk(os.path.join(root, path), topdown=False):
            _thaw(dirpath)
            deadline = time.monotonic() + 5
            while os.path.isdir(dirpath) and time.monotonic() < deadline:
                for pid in _pids(dirpath):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(dirpath)  # EBUSY until the killed processes have left
                except OSError:
                    time.sleep(0.01)


def _thaw(directory: str) -> None:
    for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):  # frozen, SIGKILL waits
        try:
            with open(os.path.join(directory, name), "w") as f:
                f.write(value)
        except OSError:
            pass


def _pids(directory: str) -> list[int]:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def go(child: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    """Let a WAITing child run to its end: (exit code, stdout)."""
    out, _ = child.communicate("go\n", timeout=timeout)
    return child.returncode, out


def _needs(cg, controller: str) -> bool:
    """V1 must have the controller. V2 may lack it: then set_limits must refuse, naming it."""
    if controller in cg.controllers():
        return True
    assert cg.VERSION == 2, (f"the v1 {controller} hierarchy is not mounted; "
                             f"this chapter needs it (run minidocker doctor)")
    with pytest.raises(MinidockerError) as refused:
        cg.set_limits(RESOURCES[controller])
    assert controller in str(refused.value), (
        f"set_limits({RESOURCES[controller]}) without the {controller} controller should raise a "
        f"MinidockerError that names it, got: {refused.value} — see {DOCS}#cgroups")
    return False


# ---------------------------------------------------------------------------------------------
# 1. Create and join

def test_create_and_join(cg, spawn):
    assert cg.exists(), f"create() made no directory {cg.dirs()} — see {DOCS}#cgroups"
    child = spawn(WAIT)
    assert not cg.populated(), "a fresh cgroup should hold no process"
    cg.add(child.pid)
    assert child.pid in cg.procs(), (
        f"after add({child.pid}) the pid is not in cgroup.procs of {cg.dirs()}: add() must write "
        f"the pid into cgroup.procs of every directory of the cgroup — see {DOCS}#ex-01-cgroup-join")
    assert cg.populated(), "a cgroup with a process in it should report populated()"
    # /proc/PID/cgroup is the kernel's own answer: one line per hierarchy, "ID:CONTROLLERS:PATH".
    with open(f"/proc/{child.pid}/cgroup") as f:
        lines = f.read().splitlines()
    if cg.VERSION == 1:
        wanted = [line for line in lines if line.split(":")[1] in ("memory", "pids", "freezer")]
        assert len(wanted) == 3, f"expected memory, pids and freezer lines in /proc/PID/cgroup: {lines}"
    else:
        wanted = [line for line in lines if line.startswith("0::")]
    for line in wanted:
        assert line.endswith(f":/{cg.path}"), (
            f"/proc/{child.pid}/cgroup says {line!r}, not /{cg.path}: the process was not moved "
            f"in that hierarchy — see {DOCS}#ex-01-cgroup-join")
    go(child)


# ---------------------------------------------------------------------------------------------
# 2. The limits as files: cgroups.limit_writes(version, linux.resources), for both versions

# `-m 32m --pids-limit 10 --cpus 0.5` as the engine hands it to the runtime (linux.resources),
# and what each version's files then hold.
RESOURCES = {"memory": {"memory": {"limit": 32 * MiB, "swap": 64 * MiB}}, "pids": {"pids": {"limit": 10}},
             "cpu": {"cpu": {"quota": 50_000, "period": 100_000}}}
EXPECTED = {
    1: {"memory": {"memory.limit_in_bytes": "33554432", "memory.memsw.limit_in_bytes": "67108864"},
        "pids": {"pids.max": "10"},
        "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"}},
    2: {"memory": {"memory.max": "33554432", "memory.swap.max": "33554432"},  # v2: the swap alone
        "pids": {"pids.max": "10"},
        "cpu": {"cpu.max": "50000 100000"}},
}
LIMITS = f"{DOCS}#ex-01-cgroup-limits"


def files(version: int, resources: dict) -> dict[str, str]:
    """What the files hold after the writes (a file written twice keeps the last value)."""
    writes = cgroups.limit_writes(version, resources)
    for controller, name, _ in writes:
        assert name.startswith(f"{controller}."), f"{name} is not a file of the {controller} controller — see {LIMITS}"
    return {name: value for _, name, value in writes}


@pytest.mark.parametrize("version", [1, 2], ids=["v1", "v2"])
def test_dockers_flags_become_each_versions_files(version):
    for controller, resources in RESOURCES.items():
        got = files(version, resources)
        assert got == EXPECTED[version][controller], (
            f"limit_writes({version}, {resources}) leaves the files {got}, expected "
            f"{EXPECTED[version][controller]} — see {LIMITS}")


def test_nothing_asked_nothing_written():
    for resources in ({}, {"memory": {}}, {"pids": {"limit": 0}}, {"cpu": {}},
                      {"devices": [{"allow": False, "access": "rwm"}]}):  # not a limit of ours
        for version in (1, 2):
            writes = cgroups.limit_writes(version, resources)
            assert writes == [], (f"limit_writes({version}, {resources}) gives {writes}: an unset limit "
                                  f"stays as the kernel has it, nothing is written — see {LIMITS}")


@given(old_limit=st.integers(1, 1 << 40), old_swap=st.integers(0, 1 << 40), limit=st.integers(1, 1 << 40),
       swap=st.sampled_from(["unset", "unlimited", "at least the limit"]), extra=st.integers(0, 1 << 40))
def test_v1_memory_writes_keep_the_kernels_order(old_limit, old_swap, limit, swap, extra):
    """v1 refuses (EINVAL) any write that leaves memory.limit_in_bytes above
    memory.memsw.limit_in_bytes. From any valid old pair, each write must be accepted, and the
    files must end at the limit and at memory+swap."""
    oci_swap = {"unset": 0, "unlimited": -1, "at least the limit": limit + extra}[swap]
    state = {"memory.limit_in_bytes": old_limit, "memory.memsw.limit_in_bytes": old_limit + old_swap}
    for _, name, value in cgroups.limit_writes(1, {"memory": {"limit": limit, "swap": oci_swap}}):
        state[name] = float("inf") if value == "-1" else int(value)
        assert state["memory.limit_in_bytes"] <= state["memory.memsw.limit_in_bytes"], (
            f"from limit {old_limit}, memsw {old_limit + old_swap}: the kernel refuses {name} = {value} "
            f"— see {LIMITS}")
    assert state["memory.limit_in_bytes"] == limit, f"memory.limit_in_bytes ends at {state}, not {limit}"
    if swap == "at least the limit":
        assert state["memory.memsw.limit_in_bytes"] == oci_swap, f"memsw must end at memory.swap {oci_swap}: {state}"
    else:  # no swap limit asked for: unlimited, as in a new cgroup
        assert state["memory.memsw.limit_in_bytes"] == float("inf"), f"memsw must end unlimited (-1): {state}"


@given(limit=st.integers(1, 1 << 40), swap=st.sampled_from(["unset", "unlimited", "at least the limit"]),
       extra=st.integers(0, 1 << 40))
def test_v2_memory_counts_swap_on_its_own(limit, swap, extra):
    oci_swap = {"unset": 0, "unlimited": -1, "at least the limit": limit + extra}[swap]
    expected = {"memory.max": str(limit)}
    if swap != "unset":  # OCI's swap is memory+swap, as v1's memsw; v2's swap.max is the swap alone
        expected["memory.swap.max"] = "max" if swap == "unlimited" else str(extra)
    got = files(2, {"memory": {"limit": limit, "swap": oci_swap}})
    assert got == expected, f"memory {limit}, memory+swap {oci_swap}: got {got}, expected {expected} — see {LIMITS}"


@given(version=st.sampled_from([1, 2]), limit=st.integers(-1, 1 << 22).filter(bool))
def test_pids_max(version, limit):
    got = files(version, {"pids": {"limit": limit}})
    assert got == {"pids.max": str(limit) if limit > 0 else "max"}, (
        f"pids.limit {limit} gives {got}: a positive limit as it is, -1 is unlimited, \"max\" — see {LIMITS}")


@given(version=st.sampled_from([1, 2]), quota=st.sampled_from([None, -1]) | st.integers(1000, 1 << 30),
       period=st.none() | st.integers(1000, 1_000_000))
def test_cpu_quota_and_period(version, quota, period):
    cpu = {k: v for k, v in (("quota", quota), ("period", period)) if v is not None}
    got = files(version, {"cpu": cpu})
    if not cpu:
        expected = {}
    elif version == 1:
        expected = {"cpu.cfs_period_us": str(period or 100_000), "cpu.cfs_quota_us": str(quota if quota and quota > 0 else -1)}
    else:
        expected = {"cpu.max": f"{quota if quota and quota > 0 else 'max'} {period or 100_000}"}
    assert got == expected, (f"v{version}, cpu {cpu}: got {got}, expected {expected} (no period: "
                             f"Docker's 100000; no quota: unlimited) — see {LIMITS}")


# ---------------------------------------------------------------------------------------------
# 3. The limits in the kernel

@pytest.mark.parametrize("controller", ["memory", "pids", "cpu"])
def test_limits_written_and_read_back(cg, controller):
    if not _needs(cg, controller):
        return
    cg.set_limits(RESOURCES[controller])
    for name, value in EXPECTED[cg.VERSION][controller].items():
        path = cg.file(controller, name)
        if name in ("memory.memsw.limit_in_bytes", "memory.swap.max") and not os.path.exists(path):
            continue  # no swap accounting in this kernel: Docker limits memory alone
        with open(path) as f:
            got = f.read().strip()
        assert got == value, f"set_limits({RESOURCES[controller]}): {path} reads {got!r}, expected {value!r} — see {LIMITS}"


def test_memory_limit_kills_the_process(cg, spawn):
    if not _needs(cg, "memory"):
        return
    cg.set_limits({"memory": {"limit": 32 * MiB, "swap": 32 * MiB}})  # memory+swap = memory: no swap
    assert not cg.oom_killed(), "oom_killed() is True before anything ran"
    child = spawn(ALLOCATE)
    cg.add(child.pid)
    code, out = go(child)
    assert code == -signal.SIGKILL and "survived" not in out, (
        f"a process that touched 128 MiB under a 32 MiB limit exited with {code}, output {out!r}; "
        f"the kernel's OOM killer should have SIGKILLed it — is the memory limit written? see {LIMITS}")
    assert cg.oom_killed(), ("the process was OOM-killed but oom_killed() says False: read oom_kill "
                             "from memory.oom_control (v1) or memory.events (v2)")


def test_pids_limit_refuses_fork(cg, spawn):
    if not _needs(cg, "pids"):
        return
    cg.set_limits({"pids": {"limit": 4}})
    child = spawn(FORK_UNTIL_REFUSED)
    cg.add(child.pid)
    code, out = go(child)
    assert code == 0, f"the forking child failed (exit {code})"
    forks, err = map(int, out.split())
    assert (forks, err) == (3, errno.EAGAIN), (
        f"with pids.max 4 the process (1) should fork 3 children and then get EAGAIN; it forked "
        f"{forks} (errno {err}) — see {LIMITS}")


# ---------------------------------------------------------------------------------------------
# 4. Freeze, kill, remove

def _cpu_used(cg) -> int:
    used = cg.stats()["cpu_usage_ns"]
    assert used is not None, "stats()['cpu_usage_ns'] is None: read cpuacct.usage (v1) or cpu.stat (v2)"
    return used


def _runs(cg) -> bool:
    """Does the cgroup use CPU time? Waits for it, up to a deadline."""
    before, deadline = _cpu_used(cg), time.monotonic() + 30
    while time.monotonic() < deadline:
        if _cpu_used(cg) > before:
            return True
        time.sleep(0.01)
    return False


def _stands_still(cg) -> bool:
    """No CPU time over a window. A window, not a condition: "never runs" cannot be waited for,
    but a frozen cgroup gets no CPU time at all, so a short window cannot make this flaky."""
    before = _cpu_used(cg)
    time.sleep(0.1)
    return _cpu_used(cg) == before


def test_freeze_and_thaw(cg, spawn):
    child = spawn(SPIN)
    cg.add(child.pid)
    child.stdin.write("go\n")
    child.stdin.flush()
    assert _runs(cg), "a busy-looping process in the cgroup used no CPU time (stats()['cpu_usage_ns'])"
    cg.freeze()
    assert _stands_still(cg), f"after freeze() the process still runs — see {DOCS}#cgroups"
    cg.thaw()
    assert _runs(cg), "after thaw() the process does not run again"


def test_kill_then_remove(cg, spawn):
    # A child that forks a child that forks a grandchild: kill() must get the whole tree, not
    # just the pid we added (the descendants joined the cgroup by being forked inside it).
    child = spawn(WAIT + "import os, time\nos.fork() == 0 and os.fork()\ntime.sleep(60)")
    cg.add(child.pid)
    child.stdin.write("go\n")
    child.stdin.flush()
    deadline = time.monotonic() + 30
    while len(cg.procs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cg.procs()) == 3, f"expected the child and its 2 descendants in the cgroup: {cg.procs()}"
    cg.kill()
    assert not cg.populated() and cg.procs() == [], f"after kill() processes remain: {cg.procs()}"
    assert child.wait(30) == -signal.SIGKILL, "kill() should SIGKILL the processes"
    cg.remove()
    assert not cg.exists() and not any(os.path.exists(d) for d in cg.dirs()), (
        f"remove() left {[d for d in cg.dirs() if os.path.exists(d)]}")
    cg.remove()  # idempotent: removing again is no error
    parent = os.path.dirname(cg.dirs()[0])
    assert os.path.isdir(parent), f"remove() must never remove the parent {parent}"


def test_remove_refuses_while_processes_live(cg, spawn):
    child = spawn(WAIT)
    cg.add(child.pid)
    with pytest.raises(MinidockerError):
        cg.remove()  # rmdir answers EBUSY while a process is inside; remove() gives up with a hint
    assert cg.exists()


# ---------------------------------------------------------------------------------------------
# Which drivers the kernel tests above run: the host's mount table decides, never a skip

SYSTEM = "28 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
LAYOUTS = {
    "pure v2": ("26 22 0:23 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n", ["V2"]),
    "hybrid": ("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
               "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
               "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", ["V1", "V2"]),
    "legacy": ("27 24 0:25 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
               "29 24 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", ["V1"]),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_tests_the_drivers_it_has(layout, tmp_path):
    lines, expected = LAYOUTS[layout]
    (tmp_path / "mountinfo").write_text(SYSTEM + lines)
    assert [d.__name__ for d in drivers_for(str(tmp_path / "mountinfo"))] == expected, (
        f"on a {layout} host the cgroup tests must run {expected}")
