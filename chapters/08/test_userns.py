"""Chapter 08: user namespaces. With the engine remapping (MINIDOCKER_USERNS_REMAP, as `dockerd
--userns-remap`), root in a container is uid 0 inside and an unprivileged range of the host
outside: what it makes belongs to that range, and the host's root-only files stay closed to it.
`--userns=host` opts a container out; --privileged and --network host need that opt-out.
(docs/08-hardening.md#user-namespaces)
"""

import http.client
import io
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness
from minidocker.errors import MinidockerError
from minidocker.security import userns

DOCS = "docs/08-hardening.md#user-namespaces"
RUN = ("run", "--rm", "--network", "none")


@pytest.fixture(autouse=True)
def _root():
    harness.need_root()


@pytest.fixture(scope="module")
def remap():
    """The engine's switch on (`default`: the user mdremap and its ranges, made by the engine if
    missing) for this module's CLI runs; a user and ranges the engine made are taken away after."""
    existed = _user_exists(userns.DEFAULT_USER)
    env = {userns.ENV: "default"}
    yield env
    if not existed and _user_exists(userns.DEFAULT_USER):
        for _ in range(20):  # shadow's tools lock /etc/passwd: another useradd may hold it a moment
            done = subprocess.run(["userdel", userns.DEFAULT_USER], capture_output=True, text=True)
            if done.returncode == 0:
                break
            time.sleep(0.1)
        assert done.returncode == 0, f"could not remove the user the engine made: {done.stderr}"
        for path in (userns.SUBUID, userns.SUBGID):  # userdel keeps them on some versions of shadow
            with open(path) as f:
                kept = [line for line in f if not line.startswith(f"{userns.DEFAULT_USER}:")]
            with open(path, "w") as f:
                f.writelines(kept)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _host_root() -> tuple[int, int]:
    """Where the engine maps container root: the first id of mdremap's ranges."""
    entry = pwd.getpwnam(userns.DEFAULT_USER)
    return (userns.ranges_of(userns.SUBUID, entry.pw_name, entry.pw_uid)[0][0],
            userns.ranges_of(userns.SUBGID, entry.pw_name, entry.pw_gid)[0][0])


@pytest.fixture
def shared_dir():
    """A host directory to bind in: anyone may write it (1777), and it holds root's 0600 secret."""
    directory = tempfile.mkdtemp(prefix="md-userns-")
    os.chmod(directory, 0o1777)
    with open(os.path.join(directory, "secret"), "w") as f:
        f.write("host root only\n")
    os.chmod(os.path.join(directory, "secret"), 0o600)
    yield directory
    shutil.rmtree(directory)


def test_root_inside_is_nobody_outside(md, remap, shared_dir):
    script = ("id -u; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox /etc/hosts; touch /data/made && echo made; "
              "cat /data/secret 2>/dev/null && echo READ-THE-SECRET; touch /vol/x && echo volume-ok; "
              "echo /etc is ours > /etc/motd && cat /etc/motd")
    try:
        out = md(*RUN, "-v", f"{shared_dir}:/data", "-v", "md-userns-vol:/vol", "busybox", "sh", "-c", script, env=remap)
    finally:
        md("volume", "rm", "-f", "md-userns-vol")
    assert out.returncode == 0, harness.explain(out)
    lines = out.stdout.splitlines()
    uid, gid = _host_root()
    assert lines[0] == "0", f"root in the container should be uid 0 inside, got {lines[0]!r}: see {DOCS}"
    assert lines[1].split() == ["0", str(uid), "65536"], \
        f"uid_map should map 0 to {uid} for 65536 ids (mdremap's range), got {lines[1]!r}: see {DOCS}"
    assert lines[2:4] == ["0:0", "0:0"], \
        f"the image's files and /etc/hosts should be root's inside (the layers chowned by the range), got {lines[2:4]}: " \
        f"see {DOCS}#ex-08-shift-ownership"
    made = os.stat(os.path.join(shared_dir, "made"))
    assert "made" in lines and (made.st_uid, made.st_gid) == (uid, gid), \
        f"a file the container's root made should be {uid}:{gid} on the host, is {made.st_uid}:{made.st_gid}: see {DOCS}"
    assert "READ-THE-SECRET" not in out.stdout, \
        f"root in a remapped container read the host root's 0600 file through a bind mount: see {DOCS}"
    assert "volume-ok" in lines, f"root inside could not write a new named volume: {out.stderr!r}: see {DOCS}"
    assert lines[-1] == "/etc is ours", f"root inside could not write its own /etc: {out.stdout!r} {out.stderr!r}"


def test_exec_and_order_of_namespaces(md, remap):
    """exec joins the container's user namespace; the trace shows runc's order: the user (and
    PID) namespace first, then the maps, written by the runtime, then the container's process."""
    out = md("--trace", *RUN, "busybox", "true", env=remap)
    assert out.returncode == 0, harness.explain(out)
    lines = out.stderr.splitlines()

    def first(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, f"the trace has no line like {pattern!r}: see {DOCS}\n{out.stderr[-3000:]}"
        return found[0]

    order = [first(r"unshare\(CLONE_NEWUSER\|CLONE_NEWPID\) = 0"), first(r'write\("/proc/\d+/uid_map", "0 \d+ 65536"\)'),
             first(r'write\("/proc/\d+/gid_map"'), first(r"clone\(CLONE_PARENT\|SIGCHLD\) = 0"),
             first(r'mount\("proc", .*"proc"')]
    assert order == sorted(order), \
        f"expected: unshare(USER|PID), uid_map, gid_map, the process forked, proc mounted, in that order: see {DOCS}"
    name = "md-userns-exec"
    try:
        assert md("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "30", env=remap).returncode == 0
        out = md("exec", name, "sh", "-c", "id -u; cat /proc/self/uid_map", env=remap)
        assert out.returncode == 0, harness.explain(out)
        assert out.stdout.split()[:2] == ["0", "0"] and out.stdout.split()[2] == str(_host_root()[0]), \
            f"an exec'd process should join the container's user namespace, got {out.stdout!r}: see {DOCS}"
    finally:
        md("rm", "-f", name)


def test_userns_host_and_conflicts(md, remap):
    out = md(*RUN, "--userns=host", "busybox", "cat", "/proc/self/uid_map", env=remap)
    assert out.returncode == 0, harness.explain(out)
    assert out.stdout.split() == ["0", "0", "4294967295"], \
        f"--userns=host should leave the container in the host's user namespace, got {out.stdout!r}: see {DOCS}"
    before = md("ps", "-a", "-q", "--no-trunc").stdout
    refused = {("--privileged",): "privileged mode is incompatible with user namespaces",
               ("--network", "host"): "cannot share the host's network namespace when user namespaces are enabled",
               ("--userns", "private-please"): "invalid UsernsMode: private-please"}
    for flags, words in refused.items():
        out = md("run", "--rm", *flags, "busybox", "true", env=remap)
        assert out.returncode == 125 and words in out.stderr, \
            f"{' '.join(flags)} under a remapping engine: expected exit 125 and Docker's {words!r}, got " \
            f"{out.returncode}: {out.stderr!r}: see {DOCS}"
    after = md("ps", "-a", "-q", "--no-trunc").stdout
    assert after == before, f"a refused create left a container behind: {after!r}"


def test_off_by_default(md):
    out = md(*RUN, "busybox", "cat", "/proc/self/uid_map", env={userns.ENV: ""})
    assert out.returncode == 0, harness.explain(out)
    assert out.stdout.split() == ["0", "0", "4294967295"], \
        f"without --userns-remap (MINIDOCKER_USERNS_REMAP) there should be no remapping, as in Docker: see {DOCS}"


# ---------------------------------------------------------------------------------------------
# The arithmetic, as properties

ranges = st.lists(st.tuples(st.integers(1, 2**31), st.integers(1, 70000)), min_size=1, max_size=4)


@given(ranges)
def test_mappings_cover_the_ranges_in_order(found):
    maps = userns.mappings(found)
    total = sum(size for _, size in found)
    inside = 0
    for (start, size), m in zip(found, maps):
        assert m == {"containerID": inside, "hostID": start, "size": size}, \
            f"container ids should follow one another from 0 across the ranges: {maps}: see {DOCS}"
        assert userns.to_host(inside, maps) == start and userns.to_host(inside + size - 1, maps) == start + size - 1
        inside += size
    with pytest.raises(MinidockerError):
        userns.to_host(total, maps)  # past the last range: nothing on the host to map it to


@given(st.lists(st.tuples(st.integers(0, 400000), st.integers(1, 100000)), max_size=6))
def test_a_new_range_overlaps_nobody(taken):
    with tempfile.NamedTemporaryFile("w", suffix="subuid") as f:
        f.writelines(f"user{i}:{start}:{size}\n" for i, (start, size) in enumerate(taken))
        f.flush()
        start = userns.free_range(f.name)
    assert start >= userns.RANGE_START
    for begin, size in taken:
        assert start + userns.RANGE_SIZE <= begin or begin + size <= start, \
            f"the new range {start}+{userns.RANGE_SIZE} overlaps {begin}+{size}: see {DOCS}"


# ---------------------------------------------------------------------------------------------
# What leaves a remapped container: commit, build, export and cp shift the ids back to the
# container's view (host 100000 -> 0), as Docker does; rmi takes the layers' remapped copies.

CONTAINER = "md-userns-files"
MADE = "echo made > /made; mkdir /dir; echo f > /dir/f; chown 1:2 /dir/f"


@pytest.fixture(scope="module")
def remapped(remap):
    """A running remapped container that made /made (its root's) and /dir/f (1:2, inside)."""
    out = harness.run_cli("run", "-d", "--name", CONTAINER, "--network", "none", "busybox", "sleep", "60", env=remap)
    assert out.returncode == 0, harness.explain(out)
    try:
        out = harness.run_cli("exec", CONTAINER, "sh", "-c", MADE, env=remap)
        assert out.returncode == 0, harness.explain(out)
        yield CONTAINER
    finally:
        harness.run_cli("rm", "-f", CONTAINER)


def _owners_without_remap(md, image: str) -> list[str]:
    out = md(*RUN, image, "stat", "-c", "%u:%g", "/made", "/dir/f", env={userns.ENV: ""})
    assert out.returncode == 0, harness.explain(out)
    return out.stdout.split()


def test_commit_and_build_shift_owners_back(md, remap, remapped, tmp_path):
    image = "md-userns-committed"
    try:
        out = md("commit", remapped, image, env=remap)
        assert out.returncode == 0, harness.explain(out)
        owners = _owners_without_remap(md, image)
        assert owners == ["0:0", "1:2"], \
            f"an image committed from a remapped container should hold the container's ids (root's 0:0, and 1:2), " \
            f"not the host's 100000...: got {owners}: see {DOCS}"
        (tmp_path / "Dockerfile").write_text(f"FROM busybox\nRUN {MADE}\n")
        out = md("build", "-q", "-t", f"{image}-built", str(tmp_path), env=remap)
        assert out.returncode == 0, harness.explain(out)
        owners = _owners_without_remap(md, f"{image}-built")
        assert owners == ["0:0", "1:2"], \
            f"a RUN step built by a remapping engine should commit the container's ids, got {owners}: " \
            f"see {DOCS}"
    finally:
        md("rmi", "-f", image, f"{image}-built")


def test_export_says_container_ids(md, remap, remapped):
    out = md("export", remapped, env=remap, binary=True)
    assert out.returncode == 0, harness.explain(out)
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        owners = {name: f"{tar.getmember(name).uid}:{tar.getmember(name).gid}" for name in ("made", "dir/f", "bin/busybox")}
    assert owners == {"made": "0:0", "dir/f": "1:2", "bin/busybox": "0:0"}, \
        f"export of a remapped container should write the container's ids in the tar, got {owners}: " \
        f"see {DOCS}"


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


@pytest.fixture
def remapping_daemon(remap, tmp_path):
    """`minidocker daemon --userns-remap=default` on the session's store: `docker cp` is its API."""
    sock = str(tmp_path / "d.sock")
    log = open(tmp_path / "daemon.log", "wb")
    daemon = subprocess.Popen([sys.executable, "-m", "minidocker", "daemon", "-H", f"unix://{sock}",
                               "--userns-remap=default"], env=harness.cli_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        harness.wait_until(lambda: os.path.exists(sock) or daemon.poll() is not None, "the daemon's socket", timeout=15)
        assert daemon.poll() is None, f"the daemon did not start: {(tmp_path / 'daemon.log').read_text()}"
        yield sock
    finally:
        daemon.terminate()
        daemon.wait(10)
        log.close()


def _api(sock: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = _UnixHTTP(sock)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/x-tar"} if body else {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_cp_out_and_in(md, remap, remapped, remapping_daemon):
    status, body = _api(remapping_daemon, "GET", f"/containers/{remapped}/archive?path=/dir")
    assert status == 200, body
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        owners = {m.name: f"{m.uid}:{m.gid}" for m in tar}
    assert owners == {"dir": "0:0", "dir/f": "1:2"}, \
        f"docker cp out of a remapped container should give the container's ids, got {owners}: " \
        f"see {DOCS}"
    sent = io.BytesIO()
    with tarfile.open(fileobj=sent, mode="w") as tar:
        info = tarfile.TarInfo("copied-in")  # root's file, as `docker cp` of a root-owned file sends it
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(b""))
    status, body = _api(remapping_daemon, "PUT", f"/containers/{remapped}/archive?path=/tmp", sent.getvalue())
    assert status == 200, body
    out = md("exec", remapped, "stat", "-c", "%u:%g", "/tmp/copied-in", env=remap)
    assert out.stdout.split() == ["0:0"], \
        f"docker cp into a remapped container should give the file to the container's root, got {out.stdout!r}: " \
        f"see {DOCS}"


def test_rmi_takes_the_remapped_copies(md, remap):
    image, root = "md-userns-rmi", os.environ["MINIDOCKER_ROOT"]
    remapped_layers = os.path.join(root, "%d.%d" % _host_root(), "layers")
    try:
        out = md("run", "--name", image, "--network", "none", "busybox", "sh", "-c", f"echo {time.time()} > /new",
                 env=remap)  # a layer no other image has
        assert out.returncode == 0, harness.explain(out)
        out = md("commit", image, image, env=remap)
        assert out.returncode == 0, harness.explain(out)
    finally:
        md("rm", "-f", image)
    before = set(os.listdir(remapped_layers))
    try:
        out = md(*RUN, image, "true", env=remap)  # the remapped copy of its new layer is made
        assert out.returncode == 0, harness.explain(out)
        made = set(os.listdir(remapped_layers)) - before
    finally:
        out = md("rmi", image)
    assert out.returncode == 0, harness.explain(out)
    assert len(made) == 1 and not made & set(os.listdir(os.path.join(root, "layers"))), \
        f"the run should have copied one layer, {made}, which rmi deletes"
    left = made & set(os.listdir(remapped_layers))
    assert not left, f"rmi left the remapped copy of a layer it deleted: {sorted(left)}: see {DOCS}"


def _disjoint(pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(gap, size) pairs -> host ranges that do not overlap, as the kernel requires of a map."""
    found, end = [], 0
    for gap, size in pieces:
        found.append((end + gap, size))
        end += gap + size
    return found


host_ranges = st.lists(st.tuples(st.integers(0, 2**28), st.integers(1, 70000)), min_size=1, max_size=4).map(_disjoint)


@given(host_ranges.flatmap(st.permutations).map(userns.mappings), st.data())
def test_to_container_undoes_to_host(found, data):
    total = sum(m["size"] for m in found)
    inside = data.draw(st.integers(0, total - 1))
    assert userns.to_container(userns.to_host(inside, found), found) == inside, \
        f"to_container should undo to_host for {inside} under {found}: see {DOCS}"
    outside = data.draw(st.integers(0, 2**32 - 2))
    if not any(m["hostID"] <= outside < m["hostID"] + m["size"] for m in found):
        assert userns.to_container(outside, found) == 65534, \
            f"a host id outside the maps ({outside}) should be nobody (65534) inside: see {DOCS}"
