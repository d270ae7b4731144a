"""Chapter 01: cgroups, for real on this kernel.

Each test makes its own cgroup under $MINIDOCKER_CGROUP_PARENT, puts a child process in it and
checks what the kernel does: the limits it reads back, the process it OOM-kills, the fork it
refuses, the process it freezes. Read docs/01-isolation.md#cgroups when one fails.

Every test runs for both drivers. V1 is required (the memory, pids, cpu, cpuacct and freezer
hierarchies); V2 runs on whatever the unified hierarchy offers: where it lacks a controller, the
test checks that set_limits refuses with an error that names the controller.
"""

import errno
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

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


def _mounted(version: int) -> bool:
    mounts = cgroups.cgroup_mounts()
    if version == 2:
        return any(fstype == "cgroup2" for _, fstype, _ in mounts)
    return any(fstype == "cgroup" and "memory" in opts for _, fstype, opts in mounts)


# ---------------------------------------------------------------------------------------------
# Fixtures: a fresh cgroup per test, and child processes, both cleaned up even when a test fails

@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def cg(request):
    harness.need_root()
    harness.need(_mounted(request.param), f"cgroup v{request.param} mounted (minidocker doctor)")
    driver = {1: cgroups.V1, 2: cgroups.V2}[request.param]
    path = f"{os.environ['MINIDOCKER_CGROUP_PARENT']}/md-{uuid.uuid4().hex[:8]}"
    group = driver(path)
    group.create()
    yield group
    _force_remove(path)


def _force_remove(path: str) -> None:
    """Clean up with plain file operations, not with the code under test (it may be broken)."""
    tops = [os.path.join(root, path) for root in _hierarchy_roots()]
    for top in tops:
        for dirpath, _, _ in os.walk(top, topdown=False):
            for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                if os.path.exists(os.path.join(dirpath, name)):  # a frozen process ignores SIGKILL
                    with open(os.path.join(dirpath, name), "w") as f:
                        f.write(value)
            for _ in range(100):
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    pids = [int(p) for p in f.read().split()]
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(dirpath)
                    break
                except OSError:
                    time.sleep(0.01)


def _hierarchy_roots() -> list[str]:
    return [point for point, _, _ in cgroups.cgroup_mounts()]


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
        child.communicate()


def go(child: subprocess.Popen, timeout: float = 10) -> tuple[int, str]:
    """Let a WAITing child run to its end: (exit code, stdout)."""
    out, _ = child.communicate("go\n", timeout=timeout)
    return child.returncode, out


def _needs(cg, controller: str) -> bool:
    """V1 must have the controller. V2 may lack it: then set_limits must refuse, naming it."""
    if controller in cg.controllers():
        return True
    assert cg.VERSION == 2, (f"the v1 {controller} hierarchy is not mounted; "
                             f"this chapter needs it (run minidocker doctor)")
    flag = {"memory": {"memory": 32 * MiB}, "pids": {"pids": 10}, "cpu": {"cpus": 0.5}}[controller]
    with pytest.raises(MinidockerError) as refused:
        cg.set_limits(**flag)
    assert controller in str(refused.value), (
        f"set_limits({flag}) without the {controller} controller should raise a MinidockerError "
        f"that names it, got: {refused.value} — see {DOCS}#cgroups")
    return False


# ---------------------------------------------------------------------------------------------
# Create and join

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
# Limits

EXPECTED = {  # what the kernel reads back after set_limits(memory=32 MiB, pids=10, cpus=0.5)
    1: {"memory": {"memory.limit_in_bytes": "33554432", "memory.memsw.limit_in_bytes": "67108864"},
        "pids": {"pids.max": "10"},
        "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"}},
    2: {"memory": {"memory.max": "33554432", "memory.swap.max": "33554432"},
        "pids": {"pids.max": "10"},
        "cpu": {"cpu.max": "50000 100000"}},
}
FLAG = {"memory": {"memory": 32 * MiB}, "pids": {"pids": 10}, "cpu": {"cpus": 0.5}}


@pytest.mark.parametrize("controller", ["memory", "pids", "cpu"])
def test_limits_written_and_read_back(cg, controller):
    if not _needs(cg, controller):
        return
    cg.set_limits(**FLAG[controller])
    for name, value in EXPECTED[cg.VERSION][controller].items():
        path = cg.file(controller, name)
        if name in ("memory.memsw.limit_in_bytes", "memory.swap.max") and not os.path.exists(path):
            continue  # no swap accounting in this kernel: Docker limits memory alone
        with open(path) as f:
            got = f.read().strip()
        assert got == value, (
            f"set_limits({FLAG[controller]}): {path} reads {got!r}, expected {value!r} — "
            f"see {DOCS}#ex-01-cgroup-limits")


def test_memory_limit_kills_the_process(cg, spawn):
    if not _needs(cg, "memory"):
        return
    cg.set_limits(memory=32 * MiB)
    assert not cg.oom_killed(), "oom_killed() is True before anything ran"
    child = spawn(ALLOCATE)
    cg.add(child.pid)
    code, out = go(child)
    assert code == -signal.SIGKILL and "survived" not in out, (
        f"a process that touched 128 MiB under a 32 MiB limit exited with {code}, output {out!r}; "
        f"the kernel's OOM killer should have SIGKILLed it — is memory.limit_in_bytes written? "
        f"see {DOCS}#ex-01-cgroup-limits")
    assert cg.oom_killed(), ("the process was OOM-killed but oom_killed() says False: read oom_kill "
                             "from memory.oom_control (v1) or memory.events (v2)")


def test_pids_limit_refuses_fork(cg, spawn):
    if not _needs(cg, "pids"):
        return
    cg.set_limits(pids=4)
    child = spawn(FORK_UNTIL_REFUSED)
    cg.add(child.pid)
    code, out = go(child)
    forks, err = map(int, out.split())
    assert (forks, err) == (3, errno.EAGAIN), (
        f"with pids.max 4 the process (1) should fork 3 children and then get EAGAIN; it forked "
        f"{forks} (errno {err}) — see {DOCS}#ex-01-cgroup-limits")


# ---------------------------------------------------------------------------------------------
# Freeze, kill, remove

def _cpu_used(cg) -> int:
    used = cg.stats()["cpu_usage_ns"]
    assert used is not None, "stats()['cpu_usage_ns'] is None: read cpuacct.usage (v1) or cpu.stat (v2)"
    return used


def _runs(cg, seconds: float = 0.05) -> bool:
    before = _cpu_used(cg)
    time.sleep(seconds)
    return _cpu_used(cg) > before


def test_freeze_and_thaw(cg, spawn):
    child = spawn(SPIN)
    cg.add(child.pid)
    child.stdin.write("go\n")
    child.stdin.flush()
    assert _runs(cg), "a busy-looping process in the cgroup used no CPU time (stats()['cpu_usage_ns'])"
    cg.freeze()
    assert not _runs(cg), f"after freeze() the process still runs — see {DOCS}#cgroups"
    cg.thaw()
    assert _runs(cg), "after thaw() the process does not run again"


def test_kill_then_remove(cg, spawn):
    # A child that forks a child that forks a grandchild: kill() must get the whole tree, not
    # just the pid we added (the descendants joined the cgroup by being forked inside it).
    child = spawn(WAIT + "import os, time\nos.fork() == 0 and os.fork()\ntime.sleep(60)")
    cg.add(child.pid)
    child.stdin.write("go\n")
    child.stdin.flush()
    deadline = time.monotonic() + 5
    while len(cg.procs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cg.procs()) == 3, f"expected the child and its 2 descendants in the cgroup: {cg.procs()}"
    cg.kill()
    assert not cg.populated() and cg.procs() == [], f"after kill() processes remain: {cg.procs()}"
    assert child.wait(5) == -signal.SIGKILL, "kill() should SIGKILL the processes"
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
