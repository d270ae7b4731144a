"""The OCI runtime's API (minidocker.runtime), on the real kernel: lifecycle, config.json fields."""

import json
import os
import secrets
import signal
import subprocess

import pytest
from hypothesis import given, strategies as st

import harness
from minidocker import cgroups, linux
from minidocker.container import oci_defaults
from minidocker.errors import MinidockerError
from minidocker.runtime import mounts, resources


@pytest.fixture
def bundle(rootfs, tmp_path):
    """A bundle dir and a function that writes its config.json from keyword overrides."""
    harness.need_root()
    path = str(tmp_path / "bundle")
    os.makedirs(path)
    # The rootfs stays where the fixture built it (another filesystem: see conftest.py's
    # rootfs_area); the bundle's relative "rootfs" reaches it through a link, which the runtime
    # resolves, as it would a rootfs that is itself a mount.
    os.symlink(rootfs, os.path.join(path, "rootfs"))

    def write(args, **changes):
        spec = {"ociVersion": "1.0.2",
                "process": {"args": args, "env": ["PATH=/bin:/sbin:/usr/bin"], "cwd": "/",
                            "user": {"uid": 0, "gid": 0}, "terminal": False},
                "root": {"path": "rootfs"}, "hostname": "mdrt", "mounts": oci_defaults.default_mounts(),
                "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]}}
        for key, value in changes.items():
            if key in ("process", "linux"):
                spec[key].update(value)
            else:
                spec[key] = value
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(spec, f)
        return path

    return write


def new_id() -> str:
    return f"mdrt-{secrets.token_hex(4)}"


def output_of(bundle_dir: str, cid: str | None = None) -> tuple[int, str]:
    """runtime.run the bundle; its exit code and its stdout+stderr."""
    from minidocker import runtime

    cid = cid or new_id()
    read, write = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        pid = runtime.run(cid, bundle_dir, stdio=(null, write, write))
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
        os.close(null)
    with os.fdopen(read) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    runtime.delete(cid, force=True)
    return runtime.exit_code(status), text


def cgroup_of(cid: str) -> cgroups.Cgroup:
    return resources.cgroup_for(cid, "")


def test_create_start_kill_delete(bundle):
    from minidocker import runtime

    cid, path = new_id(), bundle(["sleep", "30"])
    pid = runtime.create(cid, path)
    try:
        st = runtime.state(cid)
        assert st["status"] == "created" and st["pid"] == pid and st["bundle"] == path and st["id"] == cid
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"python" in f.read(), "after create the process must not have exec'd yet"
        assert cgroup_of(cid).exists()
        runtime.start(cid)
        assert runtime.state(cid)["status"] == "running"
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == b"sleep"
        runtime.kill(cid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert runtime.state(cid) | {"status": "stopped", "pid": 0} == runtime.state(cid)
        assert cid in [c["id"] for c in runtime.list_containers()]
    finally:
        runtime.delete(cid, force=True)
    assert not os.path.exists(os.path.join(runtime.default_root(), cid)) and not cgroup_of(cid).exists()
    with pytest.raises(MinidockerError):
        runtime.state(cid)


def test_delete_refuses_a_running_container_and_force_kills_it(bundle):
    from minidocker import runtime

    cid = new_id()
    pid = runtime.run(cid, bundle(["sleep", "30"]))
    with pytest.raises(MinidockerError, match="not stopped"):
        runtime.delete(cid)
    runtime.delete(cid, force=True)  # kills, and reaps: we are the parent
    assert not os.path.exists(f"/proc/{pid}")


def test_delete_without_state_still_removes_the_cgroup(bundle):
    from minidocker import runtime

    cid = new_id()
    runtime.run(cid, bundle(["sleep", "30"]))
    import shutil
    shutil.rmtree(os.path.join(runtime.default_root(), cid))  # as after a crash of the engine
    runtime.delete(cid, force=True)
    assert not cgroup_of(cid).exists()


def test_a_missing_command_fails_create_and_a_failed_exec_fails_start(bundle, tmp_path):
    from minidocker import runtime

    cid = new_id()
    with pytest.raises(MinidockerError) as e:
        runtime.create(cid, bundle(["nope"]))  # runc looks the command up before it waits
    assert e.value.exit_code == 127 and 'exec: "nope": executable file not found in $PATH' in str(e.value)
    assert not os.path.exists(os.path.join(runtime.default_root(), cid)) and not cgroup_of(cid).exists()
    # Executable, but no program and no #! line: only the exec itself (the stub's) can tell.
    not_a_program = tmp_path / "not-a-program"
    not_a_program.write_text("just text\n")
    not_a_program.chmod(0o755)
    runtime.create(cid, bundle(["/md-x"], mounts=[{"destination": "/md-x", "type": "bind", "source": str(not_a_program),
                                                    "options": ["bind", "ro"]}]))
    try:
        with pytest.raises(MinidockerError) as e:
            runtime.start(cid)
        assert e.value.exit_code == 126 and 'exec: "/md-x": Exec format error' in str(e.value), str(e.value)
    finally:
        runtime.delete(cid, force=True)
    with pytest.raises(MinidockerError) as e:
        runtime.run(new_id(), bundle(["/etc/passwd"]))
    assert e.value.exit_code == 126


def test_a_failed_create_leaves_nothing(bundle):
    from minidocker import runtime

    cid = new_id()
    path = bundle(["true"], mounts=[{"destination": "/x", "type": "no-such-fs", "source": "x"}])
    with pytest.raises(MinidockerError) as e:
        runtime.create(cid, path)
    assert e.value.exit_code == 125 and "no-such-fs" in str(e.value)
    assert not os.path.exists(os.path.join(runtime.default_root(), cid)) and not cgroup_of(cid).exists()


def test_a_namespace_path_is_joined(bundle):
    name = f"mdrt-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        netns = f"/run/netns/{name}"
        namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")] + [{"type": "network", "path": netns}]
        code, out = output_of(bundle(["readlink", "/proc/self/ns/net"], linux={"namespaces": namespaces}))
        assert code == 0 and out.strip() == f"net:[{os.stat(netns).st_ino}]"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def test_resources_land_in_the_cgroup(bundle):
    from minidocker import runtime

    cid = new_id()
    limits = {"memory": {"limit": 64 << 20}, "pids": {"limit": 42}, "cpu": {"quota": 50000, "period": 100000}}
    runtime.create(cid, bundle(["true"], linux={"resources": limits}))
    try:
        cg = cgroup_of(cid)
        read = lambda c, n: open(cg.file(c, n)).read().strip()  # noqa: E731
        assert read("pids", "pids.max") == "42"
        if cg.VERSION == 1:
            assert read("memory", "memory.limit_in_bytes") == str(64 << 20)
            assert (read("cpu", "cpu.cfs_quota_us"), read("cpu", "cpu.cfs_period_us")) == ("50000", "100000")
        else:
            assert read("memory", "memory.max") == str(64 << 20)
            assert read("cpu", "cpu.max") == "50000 100000"
        assert runtime.stats(cid)["oom_kills"] == 0
    finally:
        runtime.delete(cid, force=True)


def test_mounts_in_order_with_their_flags_and_a_readonly_bind(bundle, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "file").write_text("from the host")
    extra = [{"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "noexec", "size=1m"]},
             {"destination": "/mnt/b", "type": "bind", "source": str(shared), "options": ["rbind", "ro"]}]
    spec_mounts = oci_defaults.default_mounts() + extra
    code, out = output_of(bundle(["sh", "-c", "cat /proc/self/mountinfo; cat /mnt/b/file; touch /mnt/b/x || echo RO"],
                                 mounts=spec_mounts))
    assert code == 0, out
    lines = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    points = [fields[4] for fields in lines]
    wanted = [m["destination"] for m in spec_mounts]
    assert [p for p in points if p in wanted] == wanted, "the spec's mounts, in the spec's order"
    options = {fields[4]: fields[5].split(",") for fields in lines}
    assert {"nosuid", "noexec"} <= set(options["/mnt/t"]) and "ro" in options["/mnt/b"]
    assert "ro" in options["/sys"] and "ro" in options["/sys/fs/cgroup"]
    assert "from the host" in out and "RO" in out


def test_masked_and_readonly_paths(bundle):
    path = bundle(["true"])
    with open(os.path.join(path, "rootfs/etc/secret"), "w") as f:
        f.write("s3cret")
    code, out = output_of(bundle(
        ["sh", "-c", "echo [$(cat /etc/secret)]; touch /etc/x 2>/dev/null || echo etc-ro; touch /tmp/x && echo tmp-rw"],
        linux={"maskedPaths": ["/etc/secret", "/no/such"], "readonlyPaths": ["/etc"]},
        root={"path": "rootfs"}))
    assert code == 0 and "[]" in out and "etc-ro" in out and "tmp-rw" in out, out


def test_rlimits_groups_and_no_new_privs(bundle):
    process = {"user": {"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000]},
               "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}], "noNewPrivileges": True}
    code, out = output_of(bundle(["cat", "/proc/self/status", "/proc/self/limits"], process=process))
    assert code == 0, out
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert fields["Uid"].split()[0] == "1000" and fields["Gid"].split()[0] == "1000"
    assert set(fields["Groups"].split()) == {"2000", "3000"}
    assert fields["NoNewPrivs"].strip() == "1"
    assert [line.split()[3:5] for line in out.splitlines() if line.startswith("Max open files")] == [["123", "456"]]


def test_the_process_starts_with_no_signal_ignored(bundle):
    # A shell's background job ignores SIGINT and SIGQUIT, and an ignored signal survives exec:
    # the container's process must get the default actions back, or `kill -s INT` does nothing.
    ignored = {signal.SIGINT: signal.SIG_IGN, signal.SIGQUIT: signal.SIG_IGN}
    saved = {sig: signal.signal(sig, how) for sig, how in ignored.items()}
    try:
        code, out = output_of(bundle(["grep", "SigIgn", "/proc/self/status"]))
    finally:
        for sig, how in saved.items():
            signal.signal(sig, how)
    # Of the mask, the signals a program may set (signal.valid_signals()); 32 and 33 belong to the
    # C library, which takes them over in every program it starts (and refuses to let us touch them).
    ours = sum(1 << (sig - 1) for sig in signal.valid_signals())
    assert code == 0 and out.split()[0] == "SigIgn:" and int(out.split()[1], 16) & ours == 0, out


def test_the_hostname(bundle):
    code, out = output_of(bundle(["hostname"]))
    assert (code, out.strip()) == (0, "mdrt")


# ---------------------------------------------------------------------------------------------
# Mount options: (flags, data) <-> the words of `options`


NAMES = {bit: name for name, (clear, bit) in mounts.FLAGS.items() if not clear and bit}


@given(st.sets(st.sampled_from(sorted(NAMES))), st.lists(st.from_regex(r"[a-z]{1,6}=[0-9a-z]{1,4}", fullmatch=True),
                                                          max_size=3))
def test_mount_options_round_trip(bits, data):
    words = [NAMES[b] for b in sorted(bits)] + data
    flags, propagation, text = mounts.parse_options(words)
    assert flags == _or(bits)
    assert text == ",".join(data) and propagation == []
    again = mounts.parse_options([NAMES[b] for b in sorted(bits)] + text.split(",") * bool(text))
    assert again == (flags, propagation, text)


def _or(bits) -> int:
    value = 0
    for bit in bits:
        value |= bit
    return value


@given(st.lists(st.sampled_from(["ro", "rw", "nosuid", "suid", "rprivate", "shared"]), max_size=8))
def test_later_words_win(words):
    flags, propagation, _ = mounts.parse_options(words)
    last_ro = max((i for i, w in enumerate(words) if w in ("ro", "rw")), default=None)
    assert bool(flags & linux.MS_RDONLY) == (last_ro is not None and words[last_ro] == "ro")
    assert len(propagation) == sum(w in ("rprivate", "shared") for w in words)


# The OCI state through random sequences of lifecycle operations.
OPS = st.lists(st.sampled_from(["start", "kill", "delete", "state"]), max_size=5)


@given(OPS)
def test_state_follows_the_lifecycle(bundle_for_hypothesis, ops):
    from minidocker import runtime

    cid = new_id()
    pid = runtime.create(cid, bundle_for_hypothesis)
    status, exists = "created", True
    try:
        for op in ops:
            if not exists:
                with pytest.raises(MinidockerError):
                    if op == "kill":
                        runtime.kill(cid, signal.SIGKILL)
                    else:
                        getattr(runtime, op)(cid)
                continue
            if op == "start":
                if status == "created":
                    runtime.start(cid)
                    status = "running"
                else:
                    with pytest.raises(MinidockerError):
                        runtime.start(cid)
            elif op == "kill":
                if status == "stopped":
                    with pytest.raises(MinidockerError):
                        runtime.kill(cid, signal.SIGKILL)
                else:
                    runtime.kill(cid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    status = "stopped"
            elif op == "delete":
                if status == "running":
                    with pytest.raises(MinidockerError):
                        runtime.delete(cid)
                else:
                    runtime.delete(cid)
                    exists = False
                    status = None
            if exists:
                assert runtime.state(cid)["status"] == status
    finally:
        if exists:
            runtime.delete(cid, force=True)
    assert not cgroup_of(cid).exists() and not os.path.exists(os.path.join(runtime.default_root(), cid))


@pytest.fixture
def bundle_for_hypothesis(bundle):
    return bundle(["sleep", "30"])
