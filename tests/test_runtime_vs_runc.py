"""The proof that `minidocker runtime` is an OCI runtime: the same bundle, run by runc and by us,
must look the same from inside and from outside.

The bundle is what `runc spec` generates, with two changes only: root.path points at the busybox
rootfs, and process.terminal is false (a test has no terminal to give). From inside, the two
runtimes must agree on the hostname, the user (`id`), the mount table (normalised, see
`mount_table`) and exit codes; from outside, on the state JSON through create -> start -> kill ->
delete. Each test drives both command lines with the same arguments: `runc --root R ...` and
`minidocker runtime --root R ...` (through harness.run_cli, so a student's copy is what runs).

runc makes a cgroup for each container: without linux.cgroupsPath in the spec (as `runc spec`
leaves it), it is named after the container id. `delete` removes it; `cleanup()` checks that no
cgroup named after a test's id is left, by either runtime, since the session's leak check only
watches minidocker's own cgroup parent.
"""

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest
from hypothesis import example, given, settings, strategies as st

import harness
from minidocker import cgroups

RUNC = shutil.which("runc")


@pytest.fixture(autouse=True)
def _needs():
    harness.need_root()
    harness.need(RUNC is not None, "runc: apt-get install runc (scripts/setup.sh does)")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """The busybox rootfs, the `runc spec` template, and one --root directory per runtime."""
    from minidocker import rootfs as busybox

    top = tmp_path_factory.mktemp("vs-runc")
    rootfs = busybox.build(str(top / "rootfs"))
    template = top / "template"
    template.mkdir()
    subprocess.run([RUNC or "runc", "spec", "--bundle", str(template)], check=True, timeout=30)
    config = json.loads((template / "config.json").read_text())
    config["root"]["path"] = rootfs  # an absolute path; runc spec says "rootfs", in the bundle
    config["process"]["terminal"] = False
    return {"top": top, "config": config, "runc": str(top / "runc-root"), "md": str(top / "md-root")}


def bundle(kit, args: list[str]) -> str:
    """A fresh bundle directory whose config.json is the runc spec with process.args = args."""
    path = kit["top"] / f"bundle-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    config = json.loads(json.dumps(kit["config"]))
    config["process"]["args"] = args
    (path / "config.json").write_text(json.dumps(config, indent=2))
    return str(path)


def new_id() -> str:
    return f"md{uuid.uuid4().hex[:10]}"


# The two command lines, with the same arguments. Each returns a CompletedProcess.
def runc(kit, *args, timeout=30):
    return subprocess.run([RUNC, "--root", kit["runc"], *map(str, args)], capture_output=True, text=True, timeout=timeout)


def ours(kit, *args, timeout=30):
    return harness.run_cli("runtime", "--root", kit["md"], *args, timeout=timeout)


RUNTIMES = {"runc": runc, "minidocker": ours}


def popen(kit, name: str, *args, **kwargs) -> subprocess.Popen:
    if name == "runc":
        return subprocess.Popen([RUNC, "--root", kit["runc"], *args], **kwargs)
    return harness.popen_cli("runtime", "--root", kit["md"], *args, **kwargs)


def cgroups_named(container_id: str) -> list[str]:
    found = []
    for hierarchy in harness.cgroup_roots():
        for dirpath, dirnames, _ in os.walk(hierarchy):
            found += [os.path.join(dirpath, d) for d in dirnames if d == container_id]
    return found


def cleanup(kit, container_id: str) -> None:
    """Delete the container from both runtimes whatever state it is in; then nothing named after
    it may be left: no cgroup in any hierarchy (runc's delete removes its own as well)."""
    runc(kit, "delete", "--force", container_id)
    ours(kit, "delete", "--force", container_id)
    for _ in range(50):  # a killed process leaves its cgroup a moment after it is reaped
        left = cgroups_named(container_id)
        if not left:
            return
        time.sleep(0.02)
    for path in sorted(left, key=len, reverse=True):
        try:
            os.rmdir(path)
        except OSError:
            pass
    pytest.fail(f"cgroups of container {container_id} left behind: {left}")


# ---------------------------------------------------------------------------------------------
# From inside: hostname, id, mount table

INSIDE = "hostname; echo --; id; echo --; cat /proc/self/cgroup; echo --; cat /proc/self/mountinfo"


def mount_table(mountinfo: str, cgroup: str) -> list[tuple]:
    """/proc/self/mountinfo without what differs by nature between two runs of the same bundle.

    A line: `ID PARENT MAJ:MIN ROOT POINT PER-MOUNT-OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTS`.
    Kept: the mount point, the root inside the filesystem (/null for a masked file, /bus for a
    read-only /proc/bus), the per-mount options (ro, nosuid, nodev, noexec, relatime: what the
    spec's options ask for), the filesystem type, the source and the superblock options
    (mode=755, size=65536k, gid=5...). Dropped: mount ids, device numbers and the propagation
    tags, which are numbers the kernel picks. A cgroup mount's root is the container's own cgroup,
    which has a different path under each runtime: it becomes "<own cgroup>" when it is the
    path /proc/self/cgroup shows for that hierarchy, i.e. the container sees its own cgroup and
    not its parent's, and is kept as it is otherwise (so that a leak of the host's tree fails).
    Sorted by mount point (stable, so mounts stacked on one point keep their order).
    """
    own = {}
    for line in cgroup.splitlines():  # "4:memory:/path", "1:name=systemd:/", "0::/"
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    table = []
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields = before.split(" ")
        root, point, options = fields[3], fields[4], fields[5]
        fstype, source, super_options = after.split(" ")
        if fstype in ("cgroup", "cgroup2"):
            # cgroup2 is "0::" in /proc/self/cgroup; a v1 hierarchy goes by its controllers
            controllers = "" if fstype == "cgroup2" else ",".join(
                o for o in super_options.split(",") if o not in ("rw", "ro"))
            if own.get(controllers) == root:
                root = "<own cgroup>"
        table.append((point, root, options, fstype, source, super_options))
    return sorted(table, key=lambda entry: entry[0])


def under_cgroup(entry: tuple) -> bool:
    return entry[0] == "/sys/fs/cgroup" or entry[0].startswith("/sys/fs/cgroup/")


def tolerated(table: list[tuple]) -> list[tuple]:
    """The container's /sys/fs/cgroup, less what we accept to differ from runc 1.1.5, and why.

    Only on a host with cgroup v1 hierarchies (v1 alone, or hybrid: v1 controllers and cgroup2 at
    /sys/fs/cgroup/unified, as this VM). There the spec's single `cgroup` mount becomes a tmpfs
    with one mount per v1 hierarchy in it (neither runc 1.1 nor we mount the hybrid's `unified`), and:
    - runc puts the container in every v1 hierarchy; we use memory, pids, cpu, cpuacct,
      freezer and devices (chapter 08) only, and show only those (in the others the container
      would see the host's cgroup and the whole tree below it). runc's cpuset, blkio and
      name=systemd are dropped here; on our side the chapter-01 suite checks that nothing else is mounted.
    - runc applies the entry's "ro" to the hierarchies but leaves the tmpfs that holds them
      read-write; we make it read-only too, as the entry asks. Nothing lives in that tmpfs but
      the mount points, so ro/rw of the tmpfs itself is dropped here; the hierarchies' ro is not.
    The roots are not tolerated: each hierarchy must show the container its own cgroup, as
    runc's bind mounts do, never the host's whole tree. On a pure v2 host (one cgroup2 mount)
    nothing is tolerated.
    """
    ours = {os.path.dirname(d) for d in cgroups.V1("md").dirs()} if cgroups.detect().VERSION == 1 else set()
    kept = []
    for point, root, options, fstype, source, super_options in filter(under_cgroup, table):
        if fstype == "cgroup" and point not in ours:
            continue
        if point == "/sys/fs/cgroup" and fstype == "tmpfs":
            options = ",".join(o for o in options.split(",") if o not in ("ro", "rw"))
            super_options = ",".join(o for o in super_options.split(",") if o not in ("ro", "rw"))
        kept.append((point, root, options, fstype, source, super_options))
    return kept


def view_inside(kit, name: str) -> dict:
    container_id = new_id()
    try:
        proc = RUNTIMES[name](kit, "run", "--bundle", bundle(kit, ["sh", "-c", INSIDE]), container_id)
    finally:
        cleanup(kit, container_id)
    assert proc.returncode == 0, f"{name} run exited {proc.returncode}: {proc.stderr}"
    hostname, user, cgroup, mountinfo = proc.stdout.split("--\n")
    table = mount_table(mountinfo, cgroup)
    return {"hostname": hostname.strip(), "id": user.strip(),
            "mounts": [m for m in table if not under_cgroup(m)], "cgroup mounts": tolerated(table)}


@pytest.fixture(scope="module")
def views(kit):
    """What each runtime's container sees, from one run each (shared by the three tests below)."""
    return {name: view_inside(kit, name) for name in RUNTIMES}


def differ(theirs: list, mine: list) -> str:
    missing = [m for m in theirs if m not in mine]
    extra = [m for m in mine if m not in theirs]
    return (f"  runc has, we lack: {missing}\n  we have, runc lacks: {extra}\n"
            "  (point, root, per-mount options, type, source, super options); "
            "see docs/01-isolation.md#the-runtime-on-its-own")


def test_hostname_and_user_agree(views, kit):
    theirs, mine = views["runc"], views["minidocker"]
    assert mine["hostname"] == theirs["hostname"] == kit["config"]["hostname"], "hostname: the spec's `hostname`"
    assert mine["id"] == theirs["id"], "uid/gid/groups: process.user, and no supplementary groups but those asked"


def test_mount_tables_agree(views):
    """Every mount but /sys/fs/cgroup's: the spec's mounts, the rootfs, masked and read-only paths."""
    theirs, mine = views["runc"]["mounts"], views["minidocker"]["mounts"]
    assert mine == theirs, "the mount tables differ:\n" + differ(theirs, mine)


def test_cgroup_mounts_agree(views):
    """/sys/fs/cgroup: the container's own cgroups, read-only (see `tolerated`)."""
    theirs, mine = views["runc"]["cgroup mounts"], views["minidocker"]["cgroup mounts"]
    assert mine == theirs, (
        "/sys/fs/cgroup differs:\n" + differ(theirs, mine) + "\n  A hierarchy whose root is not "
        "'<own cgroup>' shows the container the host's whole tree: without a cgroup namespace in the "
        "spec, a fresh cgroup mount starts at the hierarchy's root; runc bind-mounts the container's "
        "own cgroup directory instead.")


# ---------------------------------------------------------------------------------------------
# Exit codes


@settings(max_examples=12)
@given(code=st.integers(0, 255))
@example(code=0)
@example(code=1)
@example(code=126)
@example(code=127)
@example(code=255)
def test_exit_codes_agree(kit, code):
    path = bundle(kit, ["sh", "-c", f"exit {code}"])
    codes = {}
    for name, cli in RUNTIMES.items():
        container_id = new_id()
        try:
            codes[name] = cli(kit, "run", "--bundle", path, container_id).returncode
        finally:
            cleanup(kit, container_id)
    assert codes == {"runc": code, "minidocker": code}


# How a container can end by a signal, and the code each runtime's `run` must exit with.
# - "kill": `kill ID KILL` from outside: PID 1 dies of SIGKILL, so 128+9.
# - "forwarded": SIGTERM sent to the `run` command itself is passed on to PID 1 (runc forwards
#   every signal it can catch); sh, PID 1 here, has a trap for it and exits 7.
ENDINGS = {"kill": 128 + signal.SIGKILL, "forwarded": 7}


@pytest.mark.parametrize("ending", ENDINGS)
def test_signals_agree(kit, ending):
    path = bundle(kit, ["sh", "-c", "trap 'exit 7' TERM; echo ready; sleep 30 & wait"])
    codes = {}
    for name in RUNTIMES:
        container_id = new_id()
        proc = popen(kit, name, "run", "--bundle", path, container_id,
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout.readline() == b"ready\n", f"{name}: {proc.stderr.read1().decode()}"  # the trap is set
            if ending == "kill":
                assert RUNTIMES[name](kit, "kill", container_id, "KILL").returncode == 0
            else:
                proc.send_signal(signal.SIGTERM)
            codes[name] = proc.wait(timeout=10)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
            cleanup(kit, container_id)
    assert codes == {"runc": ENDINGS[ending], "minidocker": ENDINGS[ending]}


# ---------------------------------------------------------------------------------------------
# From outside: the state through the lifecycle


@contextlib.contextmanager
def subreaper():
    """Be what containerd-shim is to runc: the process that adopts and reaps the container.

    `create` returns while the container's process waits; that process outlives the command,
    and the kernel gives it to the nearest ancestor marked as a "child subreaper", else to the
    host's PID 1. As a subreaper, this test gets it and can wait() for it, so that it leaves no
    zombie behind once killed. (prctl directly, through ctypes: the harness does not rely on
    the code under test.)
    """
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())
    adopted = []
    try:
        yield adopted
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        for pid in adopted:  # killed and deleted by now: each wait returns at once
            for _ in range(250):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break  # not ours after all (reaped by someone else)
                time.sleep(0.02)


PR_SET_CHILD_SUBREAPER = 36


def lifecycle(kit, name: str, path: str) -> list[dict]:
    """create -> start -> kill -> delete, with `state` after each step; and `list` while created."""
    with subreaper() as adopted:
        return _lifecycle(kit, name, path, adopted)


def _lifecycle(kit, name: str, path: str, adopted: list[int]) -> list[dict]:
    cli, container_id, states = RUNTIMES[name], new_id(), []

    def state(step):
        proc = cli(kit, "state", container_id)
        states.append({"step": step, "code": proc.returncode,
                       "state": json.loads(proc.stdout) if proc.returncode == 0 else None})
        return states[-1]["state"]

    try:
        # The waiting process inherits create's stdio and outlives it: give it no pipe that
        # this test would wait on for EOF (runc's init does the same).
        with open(kit["top"] / f"{container_id}.err", "w+") as err:
            create = popen(kit, name, "create", "--bundle", path, container_id,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
            if create.wait(timeout=15) != 0:
                err.seek(0)
                pytest.fail(f"{name} create exited {create.returncode}: {err.read()}")
        adopted.append(state("created")["pid"])
        listed = cli(kit, "list", "--format", "json")
        assert container_id in [c["id"] for c in json.loads(listed.stdout)], f"{name} list: {listed.stdout}"
        table = cli(kit, "list").stdout.splitlines()
        states.append({"step": "list header", "header": table[0].split()})
        assert cli(kit, "start", container_id).returncode == 0
        state("started")
        assert cli(kit, "kill", container_id, "KILL").returncode == 0
        for _ in range(250):  # SIGKILL is asynchronous: the state says stopped once PID 1 is gone
            if state("killed")["status"] == "stopped":
                break
            states.pop()
            time.sleep(0.02)
        assert cli(kit, "delete", container_id).returncode == 0
        state("deleted")
    finally:
        cleanup(kit, container_id)
    return states


def shape(states: list[dict], path: str) -> list[dict]:
    """What must agree: each step's key set, status, whether there is a pid, the bundle."""
    out = []
    for s in states:
        if "header" in s:
            out.append(s)
            continue
        st_ = s["state"]
        out.append({"step": s["step"], "ok": s["code"] == 0} if st_ is None else {
            "step": s["step"], "keys": sorted(st_), "status": st_["status"], "has pid": st_["pid"] > 0,
            "bundle is ours": st_["bundle"] == path, "pid alive": st_["pid"] > 0 and os.path.exists(f"/proc/{st_['pid']}")})
    return out


def test_state_through_the_lifecycle(kit):
    path = bundle(kit, ["sleep", "30"])
    theirs, mine = shape(lifecycle(kit, "runc", path), path), shape(lifecycle(kit, "minidocker", path), path)
    assert [s.get("status") for s in theirs if "status" in s] == ["created", "running", "stopped"]
    assert mine == theirs


# ---------------------------------------------------------------------------------------------
# The command line's answers: what each runtime accepts and what it refuses

ASKS = [  # on a running container whose PID 1 is `sleep` (it ignores what it has no handler for)
    ("kill", "{id}"), ("kill", "{id}", "TERM"), ("kill", "{id}", "SIGTERM"), ("kill", "{id}", "term"),
    ("kill", "{id}", "15"), ("kill", "{id}", "USR1"), ("kill", "--all", "{id}", "USR1"),
    ("kill", "{id}", "NOPE"), ("kill", "{id}", "SIGNOPE"),
    ("start", "{id}"),  # already running
    ("delete", "{id}"),  # running: only with --force
    ("create", "--bundle", "{bundle}", "{id}"),  # the id is taken
    ("state", "md-nobody"), ("kill", "md-nobody"), ("start", "md-nobody"), ("delete", "md-nobody"),
    ("state", "../{id}"),  # not an id
    ("delete", "--force", "{id}"), ("state", "{id}"),  # gone
]


def answers(kit, name: str, path: str) -> list[tuple]:
    cli, container_id, out = RUNTIMES[name], new_id(), []
    with subreaper() as adopted:
        try:
            run = popen(kit, name, "run", "--detach", "--bundle", path, container_id,
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert run.wait(timeout=15) == 0, f"{name} run --detach exited {run.returncode}"
            adopted.append(json.loads(cli(kit, "state", container_id).stdout)["pid"])
            for ask in ASKS:
                argv = [a.format(id=container_id, bundle=path) for a in ask]
                out.append((" ".join(ask), "ok" if cli(kit, *argv).returncode == 0 else "refused"))
        finally:
            cleanup(kit, container_id)
    return out


def test_command_line_answers_agree(kit):
    path = bundle(kit, ["sleep", "30"])
    assert answers(kit, "minidocker", path) == answers(kit, "runc", path)
