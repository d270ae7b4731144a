"""pytest setup for every suite: the implementation under test, a private MINIDOCKER_ROOT, the
busybox rootfs fixture and the leak check. The machinery lives in harness.py."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import HealthCheck, settings

import harness

# Containers are slow next to pure functions: no per-example deadline, and no complaint when an
# example is slow because a container had to start.
settings.register_profile(
    "minidocker", deadline=None,
    # Fixtures such as `md` and `rootfs` are meant to be shared by the examples of one test.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("minidocker")


def pytest_addoption(parser):
    parser.addoption("--impl", metavar="DIR", default=os.environ.get("MINIDOCKER_IMPL"),
                     help="test the minidocker package found in DIR (a student's lab copy)")


def pytest_configure(config):
    impl = config.getoption("--impl")
    if impl:
        impl = os.path.abspath(impl)
        if not os.path.isdir(os.path.join(impl, "minidocker")):
            raise pytest.UsageError(f"--impl {impl}: no minidocker/ package there")
        harness.IMPL = impl
        sys.path.insert(0, impl)  # `import minidocker` in the tests now finds the student's copy
    # A private state root and cgroup parent for this session: never the real /var/lib/minidocker,
    # and never another session's cgroups (two test runs may share a machine).
    _remove_stale_session_cgroups()
    root = tempfile.mkdtemp(prefix="md-test-")
    os.environ["MINIDOCKER_ROOT"] = root
    # The runtime's state (runc keeps it in /run/runc) goes under the session's root too.
    os.environ["MINIDOCKER_RUNTIME_ROOT"] = os.path.join(root, "run")
    os.environ["MINIDOCKER_CGROUP_PARENT"] = f"minidocker/test-{os.getpid()}"
    # A network's name responder forwards the names it does not know to the host's resolvers.
    # No test may send a query out there: unless a test names its own fake upstream, the
    # forwards go to a closed port on loopback and fail at once.
    os.environ.setdefault("MINIDOCKER_DNS_UPSTREAM", "127.0.0.1:9")
    # Chapter 04's default bridge stays once made, as docker0 does: this session's own, on a slice
    # of the pool of its own (two sessions' stores cannot see each other's subnets), removed at
    # the session's end. A bridge of our slot that a killed session left goes first.
    slot = harness.claim_network_slot()
    harness.SESSION_BRIDGE = os.environ["MINIDOCKER_BRIDGE"] = f"md0-t{slot}"
    os.environ["MINIDOCKER_DEFAULT_ADDRESS_POOL"] = f"10.213.{128 + 16 * slot}.0/20"
    if os.geteuid() == 0:
        harness.remove_session_bridge()
    config._minidocker_root = root


def _remove_stale_session_cgroups():
    """Empty `minidocker/test-PID` parents of sessions that were killed before they could clean."""
    for hierarchy in harness.cgroup_roots():
        top = os.path.join(hierarchy, "minidocker")
        for name in os.listdir(top) if os.path.isdir(top) else ():
            pid = name.removeprefix("test-")
            if name.startswith("test-") and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                try:
                    os.rmdir(os.path.join(top, name))
                except OSError:
                    pass  # not empty: a real leak, for the leak check and a human to look at


def pytest_unconfigure(config):
    root = getattr(config, "_minidocker_root", None)
    if root and os.geteuid() == 0:
        harness.remove_session_bridge()
    if root:
        shutil.rmtree(root, ignore_errors=True)
    # The session's cgroup parent, and `minidocker/` itself once nothing else uses it.
    parent = os.environ.get("MINIDOCKER_CGROUP_PARENT", "")
    for hierarchy in harness.cgroup_roots() if parent else ():
        for path in (parent, os.path.dirname(parent)):
            try:
                os.rmdir(os.path.join(hierarchy, path))
            except OSError:
                pass


def pytest_report_header(config):
    return f"minidocker under test: {harness.IMPL}"


@pytest.fixture(scope="session")
def rootfs_area(tmp_path_factory):
    """Where the rootfs fixture builds: as root, a tmpfs of this session's own. A busybox rootfs
    is ~270 symlinks, and on a VM's ext4 each costs ~0.1 ms of journaling: 30-200 ms a tree, a
    second of every ten tests. On tmpfs a tree takes ~5 ms."""
    area = str(tmp_path_factory.mktemp("rootfs-area"))
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "mode=755", f"md-rootfs-{os.getpid()}", area]).returncode == 0
    yield area
    if mounted:
        subprocess.run(["umount", area], check=True)


@pytest.fixture
def rootfs(rootfs_area, request):
    """A fresh busybox root filesystem directory (the embedded default)."""
    from minidocker import rootfs as busybox

    return busybox.build(tempfile.mkdtemp(prefix="rootfs-", dir=rootfs_area))


@pytest.fixture
def md():
    """Run the CLI under test: md("run", "--rootfs", dir, "--", "true") -> CompletedProcess."""
    return harness.run_cli


@pytest.fixture(scope="module", autouse=True)
def no_bridge_before_chapter_04_no_locks_before_08(request):
    """A chapter's suite uses only what it and the chapters before it build. The default bridge is
    chapter 04's, so the suites before it (and the project's own tests) run the engine as
    `dockerd --bridge=none` does: a container that names no network gets `none`.

    Module-scoped (autouse runs first in its scope), so that a module's own fixtures that run
    containers (an image made with run + commit) get the same engine as its tests."""
    parts = request.path.parts
    chapter = parts[parts.index("chapters") + 1] if "chapters" in parts[:-1] else None
    with pytest.MonkeyPatch.context() as monkeypatch:
        if chapter is None or chapter < "04":
            monkeypatch.setenv("MINIDOCKER_BRIDGE", "none")
        if chapter is not None and chapter < "08":
            # Chapter 08's locks (minidocker/security/) likewise: before it, containers keep root's
            # powers, as they did when those chapters were written (chapter 07's daemon: its conftest).
            monkeypatch.setenv("MINIDOCKER_HARDENING", "off")
        yield


@pytest.fixture(autouse=True)
def leak_check(request):
    """Fail the test that leaves mounts, md* links, netns, cgroups, iptables rules or processes."""
    if os.geteuid() != 0 or "no_leak_check" in request.keywords:
        yield
        return
    root, parent = os.environ["MINIDOCKER_ROOT"], os.environ["MINIDOCKER_CGROUP_PARENT"]
    before = harness.snapshot(root, parent)
    yield
    leaks = harness.leaked(before, harness.snapshot(root, parent))
    for _ in range(5):  # the kernel removes a veth after its namespace in the background
        if not leaks:
            break
        time.sleep(0.1)
        leaks = harness.leaked(before, harness.snapshot(root, parent))
    if leaks:
        harness.clean(leaks)
        pytest.fail(f"this test left things behind on the host: {leaks}", pytrace=False)


# What a blanked exercise raises (lab.py's hint): "exercise 01 cgroup-join: Write ... — see URL".
BLANK_EXERCISE = re.compile(r"(exercise \d\d [-a-z0-9]+: .*? — see \S+)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test is a failed one: a skip there would hide a broken feature.

    A test that fails on a blank exercise says only that, in one line: the hint and where to
    read, not a traceback and the test's locals (a lab student would get 1,900 lines of them)."""
    outcome = yield
    report = outcome.get_result()
    if harness.IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {report.longrepr}"
    if report.failed and call.excinfo is not None and (blank := BLANK_EXERCISE.search(str(call.excinfo.value))):
        report.longrepr = f"blank exercise: {blank[1]}"
