"""Chapter 05: the volume commands as Docker has them: volume create, ls, inspect, rm, prune, and the
local driver's -o options (docs/05-volumes.md#volume-commands, #driver-options).

Black-box through the CLI; the driver's mount, which a container's start triggers, API-level.
Each test has a store of its own inside the session's MINIDOCKER_ROOT, where the leak check sees
every mount it leaves."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

import harness

DOCS = "docs/05-volumes.md#volume-commands"
DRIVER = "docs/05-volumes.md#driver-options"
VOLUME_KEYS = {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}


@pytest.fixture
def vol(monkeypatch):
    """The CLI in a store of its own (also for API calls in this process); its containers and
    volumes removed after, never across a mount that is still there (the leak check's to report)."""
    harness.need_root()
    root = os.path.join(os.environ["MINIDOCKER_ROOT"], f"md-vol-{os.urandom(4).hex()}")
    os.makedirs(root)
    monkeypatch.setenv("MINIDOCKER_ROOT", root)

    def run(*args, **kwargs):
        return harness.run_cli(*args, env={"MINIDOCKER_ROOT": root}, **kwargs)

    run.root = root
    yield run
    with open("/proc/self/mountinfo") as f:
        if any(line.split()[4].startswith(root) for line in f):
            return  # a leaked mount: rmtree would go into it (a bind of a host directory!)
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def ok(out, what: str, docs: str = DOCS) -> str:
    assert out.returncode == 0, f"{what}: {harness.explain(out)} ({docs})"
    return out.stdout


def inspect(vol, name: str) -> dict:
    return json.loads(ok(vol("volume", "inspect", name), f"volume inspect {name}"))[0]


def names(vol, *flags) -> list[str]:
    return ok(vol("volume", "ls", "-q", *flags), "volume ls -q").split()


def container_using(vol, volume: str) -> str:
    """A created (never started) container whose HostConfig names `volume`, as `-v NAME:/data` does."""
    from minidocker import rootfs
    from minidocker.container import lifecycle

    tree = rootfs.build(os.path.join(vol.root, f"rootfs-{os.urandom(3).hex()}"))
    return lifecycle.create({"Image": tree, "Cmd": ["true"]}, {"Binds": [f"{volume}:/data"], "NetworkMode": "none"})["Id"]


def test_create_and_inspect_have_dockers_shape(vol):
    assert ok(vol("volume", "create", "--label", "team=db", "md-data"), "volume create") == "md-data\n", (
        f"volume create prints the volume's name ({DOCS})")
    v = inspect(vol, "md-data")
    assert set(v) == VOLUME_KEYS, f"volume inspect shows Docker's Volume object, keys {sorted(VOLUME_KEYS)}: {v} ({DOCS})"
    assert (v["Name"], v["Driver"], v["Scope"], v["Labels"], v["Options"]) == ("md-data", "local", "local", {"team": "db"}, {}), v
    assert v["Mountpoint"] == os.path.join(vol.root, "volumes", "md-data", "_data") and os.path.isdir(v["Mountpoint"]), (
        f"the data lives in $MINIDOCKER_ROOT/volumes/NAME/_data, as Docker keeps it: {v['Mountpoint']} ({DOCS})")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", v["CreatedAt"]), f"CreatedAt is RFC 3339: {v}"
    assert ok(vol("volume", "inspect", "-f", "{{.Driver}} {{.Labels.team}}", "md-data"), "inspect -f") == "local db\n"
    out = ok(vol("volume", "ls"), "volume ls")
    assert out.splitlines() == ["DRIVER    VOLUME NAME", "local     md-data"], f"volume ls is Docker's table: {out!r} ({DOCS})"

    # Created again: the same volume, its data untouched (Docker's create of a name that exists).
    with open(os.path.join(v["Mountpoint"], "keep"), "w") as f:
        f.write("x")
    ok(vol("volume", "create", "md-data"), "volume create of an existing name")
    assert inspect(vol, "md-data") == v and os.path.exists(os.path.join(v["Mountpoint"], "keep")), (
        f"creating an existing volume returns it as it was, data and all ({DOCS})")

    anonymous = ok(vol("volume", "create"), "volume create without a name").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous), f"a volume without a name gets 64 hex digits: {anonymous}"
    missing = vol("volume", "inspect", "md-nope")
    assert missing.returncode == 1 and "no such volume" in missing.stderr and missing.stderr.count("\n") == 1, missing


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "x", ".hidden", "md data", "-o"])
def test_a_bad_name_is_one_error_and_nothing_is_made(vol, name):
    out = vol("volume", "create", "--", name)
    assert out.returncode == 1 and out.stderr.startswith("minidocker: ") and out.stderr.count("\n") == 1, (
        f"a bad volume name is one line of error, exit 1: {harness.explain(out)} ({DOCS})")
    store = os.path.join(vol.root, "volumes")
    leftovers = [e for e in os.listdir(store) if e != ".lock"] if os.path.exists(store) else []
    assert leftovers == [] and not os.path.exists(os.path.join(vol.root, "x")), (
        f"nothing is created for a refused name: {leftovers} ({DOCS})")


@settings(max_examples=40)
@given(name=st.text(st.sampled_from("ab9_.-/ "), min_size=1, max_size=5))
def test_names_follow_dockers_rule(vol, name):
    from minidocker.errors import MinidockerError
    from minidocker.volume import volumes

    valid = re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name) is not None
    try:
        volumes.create(name)
        made = True
    except MinidockerError:
        made = False
    assert made == valid, f"{name!r}: a name is valid exactly by [a-zA-Z0-9][a-zA-Z0-9_.-]+ ({DOCS})"
    for v in volumes.list_volumes():
        volumes.remove(v["Name"])


def test_ls_filters_and_formats(vol):
    ok(vol("volume", "create", "--label", "tier=db", "md-vol2"), "create")
    ok(vol("volume", "create", "--label", "tier", "md-vol10"), "create")
    ok(vol("volume", "create", "md-other"), "create")
    assert names(vol) == ["md-other", "md-vol2", "md-vol10"], f"volume ls sorts names naturally (vol2 before vol10) ({DOCS})"
    assert names(vol, "--filter", "name=vol") == ["md-vol2", "md-vol10"], f"name= matches a part of the name ({DOCS})"
    assert names(vol, "--filter", "label=tier") == ["md-vol2", "md-vol10"], f"label=KEY matches any value ({DOCS})"
    assert names(vol, "--filter", "label=tier=db") == ["md-vol2"], f"label=KEY=VALUE matches that value ({DOCS})"
    container_using(vol, "md-vol2")
    assert names(vol, "--filter", "dangling=true") == ["md-other", "md-vol10"], (
        f"dangling=true: the volumes no container (even a stopped one) uses ({DOCS})")
    assert names(vol, "--filter", "dangling=false") == ["md-vol2"]
    out = ok(vol("volume", "ls", "--format", "{{.Name}}:{{.Labels}}", "--filter", "name=md-vol2"), "ls --format")
    assert out == "md-vol2:tier=db\n", f"--format is a Go template over Name, Driver, Labels, Mountpoint... {out!r}"
    bad = vol("volume", "ls", "--filter", "colour=red")
    assert bad.returncode != 0 and "invalid filter 'colour'" in bad.stderr, bad


def test_rm_is_refused_while_a_container_uses_the_volume(vol):
    ok(vol("volume", "create", "md-data"), "create")
    data = inspect(vol, "md-data")["Mountpoint"]
    with open(os.path.join(data, "precious"), "w") as f:
        f.write("x")
    cid = container_using(vol, "md-data")
    out = vol("volume", "rm", "md-data")
    assert out.returncode == 1 and f"remove md-data: volume is in use - [{cid}]" in out.stderr, (
        f"Docker refuses to remove a volume a container uses, naming the containers: {harness.explain(out)} ({DOCS})")
    assert vol("volume", "rm", "-f", "md-data").returncode == 1, "-f does not remove a volume in use either"
    assert os.path.exists(os.path.join(data, "precious")), f"a refused rm never touches the data ({DOCS})"
    ok(vol("rm", cid), "rm the container")
    assert ok(vol("volume", "rm", "md-data"), "volume rm") == "md-data\n"
    assert names(vol) == [] and not os.path.exists(os.path.dirname(data)), "rm deletes the volume's directory"
    missing = vol("volume", "rm", "md-data")
    assert missing.returncode == 1 and "no such volume" in missing.stderr, missing
    ok(vol("volume", "rm", "-f", "md-data"), "volume rm -f of a missing volume is no error")


def test_prune_takes_anonymous_volumes_unless_all(vol):
    from minidocker.volume import volumes

    anonymous = volumes.create(anonymous=True)["Name"]
    with open(os.path.join(volumes.data_dir(anonymous), "f"), "w") as f:
        f.write("12345")
    used = volumes.create(anonymous=True)["Name"]
    container_using(vol, used)
    ok(vol("volume", "create", "md-named"), "create")
    out = ok(vol("volume", "prune", "-f"), "volume prune -f")
    assert out == f"Deleted Volumes:\n{anonymous}\n\nTotal reclaimed space: 5B\n", (
        f"prune removes only unused anonymous volumes (Docker 23+), and says what it reclaimed: {out!r} ({DOCS})")
    assert sorted(names(vol)) == sorted([used, "md-named"])
    out = ok(vol("volume", "prune", "-a", "-f"), "volume prune -a -f")
    assert out == "Deleted Volumes:\nmd-named\n\nTotal reclaimed space: 0B\n", f"-a takes named ones too, never one in use: {out!r}"
    out = vol("volume", "prune", input="n\n")
    assert out.stdout.startswith("WARNING! This will remove anonymous local volumes") and names(vol) == [used], out


@settings(max_examples=4)
@given(delay=st.floats(0, 0.25))
def test_a_killed_volume_rm_leaves_the_volume_whole_or_gone(vol, delay):
    from minidocker.volume import volumes

    volumes.create("md-big")
    data = volumes.data_dir("md-big")
    for i in range(300):
        with open(os.path.join(data, f"f{i}"), "w") as f:
            f.write(str(i))
    proc = subprocess.Popen([sys.executable, "-m", "minidocker", "volume", "rm", "md-big"], env=dict(
        harness.cli_env(), MINIDOCKER_ROOT=vol.root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if "md-big" in names(vol):
        assert sorted(os.listdir(data)) == sorted(f"f{i}" for i in range(300)), (
            f"a volume still listed after a killed rm has all its data ({DOCS})")
        volumes.remove("md-big")
    assert "md-big" not in names(vol)


def test_concurrent_creates_of_one_name_make_one_volume(vol):
    env = dict(harness.cli_env(), MINIDOCKER_ROOT=vol.root)
    procs = [subprocess.Popen([sys.executable, "-m", "minidocker", "volume", "create", "md-same"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 and out == "md-same\n" for p, (out, _) in zip(procs, outs)), (
        f"concurrent creates of one name all succeed with that volume: {outs} ({DOCS})")
    assert names(vol) == ["md-same"] and sorted(os.listdir(os.path.join(vol.root, "volumes"))) == [".lock", "md-same"]


def _mount_type(path: str) -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                return line.split(" - ")[1].split()[0]
    return None


def test_a_tmpfs_volume_is_mounted_while_it_has_users(vol):
    from minidocker.volume import volumes

    ok(vol("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m,mode=0700", "md-tmp"), "create")
    assert inspect(vol, "md-tmp")["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0700"}
    data = volumes.data_dir("md-tmp")
    assert _mount_type(data) is None, f"the driver mounts nothing until a container uses the volume ({DRIVER})"
    try:
        assert volumes.mount_for("md-tmp", "c1") == data and _mount_type(data) == "tmpfs", (
            f"the first user gets the tmpfs mounted on _data ({DRIVER})")
        volumes.mount_for("md-tmp", "c2")
        volumes.release("md-tmp", "c1")
        volumes.release("md-tmp", "c1")  # twice: no harm
        assert _mount_type(data) == "tmpfs", f"still mounted while c2 uses it ({DRIVER})"
        volumes.release("md-tmp", "c2")
        assert _mount_type(data) is None, f"the last user out unmounts it ({DRIVER})"
    finally:
        if _mount_type(data):
            volumes.release("md-tmp", "c2")
    bad = vol("volume", "create", "-o", "type=tmpfs", "md-half")
    assert bad.returncode == 1 and 'missing required option: "device"' in bad.stderr, bad


def test_removing_a_bind_volume_never_deletes_the_host_directory(vol, tmp_path):
    from minidocker.volume import volumes

    host = tmp_path / "md-host"
    host.mkdir()
    (host / "file").write_text("host data")
    ok(vol("volume", "create", "-o", "type=none", "-o", "o=bind", "-o", f"device={host}", "md-bind"), "create")
    data = volumes.mount_for("md-bind", "c1")
    assert os.listdir(data) == ["file"], f"-o type=none -o o=bind binds the device directory on _data ({DRIVER})"
    # The container "died" without release(): rm must unmount, and never delete through the mount.
    ok(vol("volume", "rm", "md-bind"), "volume rm")
    assert (host / "file").read_text() == "host data", f"the host's directory is never deleted by volume rm ({DRIVER})"
    assert _mount_type(data) is None and names(vol) == []
