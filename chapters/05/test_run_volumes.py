"""Chapter 05: volumes in running containers, through the CLI, with Docker's semantics: binds (ro and
rw), named volumes that outlive their containers, the anonymous volumes of an image's VOLUME with
the image's content copied in, tmpfs, --volumes-from, a read-only rootfs with writable volumes, two
containers sharing one volume, and a SIGKILLed `run` (docs/05-volumes.md#volumes-in-containers).
"""

import json
import os
import re
import signal
import subprocess

import pytest

import harness

DOCS = "docs/05-volumes.md#volumes-in-containers"
RUN = ("run", "--network", "none")  # volumes need no network: no bridge, no iptables rule to wait for


@pytest.fixture(autouse=True)
def _root():
    harness.need_root()


@pytest.fixture
def made(md):
    """Containers and named volumes the test makes, removed afterwards: made.volume("md-x")."""
    class Made:
        containers, volumes = [], []

        def volume(self, name):
            self.volumes.append(name)
            return name

        def container(self, name):
            self.containers.append(name)
            return name
    yield Made()
    for name in Made.containers:
        md("rm", "-f", "-v", name)
    for name in Made.volumes:
        md("volume", "rm", "-f", name)


@pytest.fixture(scope="module")
def image_with_volume():
    """busybox with /data (holding a file and a link) declared a VOLUME, as `commit -c` makes it."""
    md = harness.run_cli
    out = md(*RUN, "--name", "md-mkvol", "busybox", "sh", "-c", "mkdir /data && echo from-image > /data/f && "
             "ln -s f /data/link && chmod 0750 /data")
    assert out.returncode == 0, harness.explain(out)
    out = md("commit", "-c", "VOLUME /data", "md-mkvol", "md-volume-image:1")
    md("rm", "md-mkvol")
    assert out.returncode == 0, harness.explain(out)
    return "md-volume-image:1"


def run(md, *args) -> str:
    out = md(*RUN, *args)
    assert out.returncode == 0, f"{harness.explain(out)} ({DOCS})"
    return out.stdout


def volumes(md) -> set[str]:
    return set(md("volume", "ls", "-q").stdout.split())


def host_mounts() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


def test_bind_mounts_read_write_and_read_only(md, tmp_path):
    host = tmp_path / "md-host"
    host.mkdir()
    (host / "in").write_text("from-host\n")
    assert run(md, "--rm", "-v", f"{host}:/h", "busybox", "sh", "-c", "cat /h/in; echo out > /h/out") == "from-host\n"
    assert (host / "out").read_text() == "out\n", f"a write in a bind mount lands in the host directory ({DOCS})"
    for flag in (["-v", f"{host}:/h:ro"], ["--mount", f"type=bind,src={host},dst=/h,readonly"]):
        out = md(*RUN, "--rm", *flag, "busybox", "sh", "-c", "cat /h/in; touch /h/no")
        assert out.stdout == "from-host\n" and out.returncode != 0 and "Read-only file system" in out.stderr, \
            f"{flag}: read-only bind readable, not writable: {harness.explain(out)} ({DOCS})"
    created = tmp_path / "md-made-by-v"
    run(md, "--rm", "-v", f"{created}:/new", "busybox", "true")
    assert created.is_dir(), f"-v makes a missing bind source directory, as Docker does ({DOCS})"


def test_named_volume_outlives_its_containers_and_rm_v_keeps_it(md, made):
    name = made.volume("md-keep")
    cid = made.container("md-writer")
    run(md, "--name", cid, "-v", f"{name}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert md("rm", "-v", cid).returncode == 0
    assert name in volumes(md), f"`rm -v` removes anonymous volumes only, never a named one ({DOCS})"
    assert run(md, "--rm", "-v", f"{name}:/data", "busybox", "cat", "/data/f") == "kept\n", \
        f"a named volume's data is there for the next container ({DOCS})"
    assert name in volumes(md), f"`run --rm` removes anonymous volumes only, never a named one ({DOCS})"


def test_image_volume_is_anonymous_filled_from_the_image_and_rm_v_removes_it(md, made, image_with_volume, tmp_path):
    before = volumes(md)
    cid = made.container("md-anon")
    out = run(md, "--name", cid, image_with_volume, "sh", "-c", "cat /data/f; readlink /data/link; stat -c %a /data;"
              "grep -c ' /data ' /proc/mounts")
    assert out == "from-image\nf\n750\n1\n", f"VOLUME /data: a volume at /data, filled with the image's files, " \
                                            f"links and modes (copy-up): {out!r} ({DOCS})"
    (anonymous,) = volumes(md) - before
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous), f"an anonymous volume is named by 64 hex digits: {anonymous}"
    mounts = json.loads(md("inspect", "-f", "{{json .Mounts}}", cid).stdout)
    assert mounts == [{"Type": "volume", "Name": anonymous, "Source": f"{os.environ['MINIDOCKER_ROOT']}/volumes/"
                       f"{anonymous}/_data", "Destination": "/data", "Driver": "local", "Mode": "", "RW": True,
                       "Propagation": ""}], f"inspect's Mounts, in Docker's MountPoint shape: {mounts} ({DOCS})"
    assert md("rm", "-v", cid).returncode == 0
    assert anonymous not in volumes(md), f"`rm -v` removes the container's anonymous volumes ({DOCS})"
    run(md, "--rm", image_with_volume, "true")
    assert volumes(md) == before, f"`run --rm` removes the anonymous volumes it made ({DOCS})"
    nocopy = made.volume("md-nocopy")
    out = run(md, "--rm", "--mount", f"type=volume,src={nocopy},dst=/data,volume-nocopy", image_with_volume, "ls", "/data")
    assert out == "", f"volume-nocopy: the image's /data is not copied in: {out!r} ({DOCS})"
    empty = tmp_path / "md-empty"
    empty.mkdir()
    out = run(md, "--rm", "-v", f"{empty}:/data", image_with_volume, "ls", "-A", "/data")
    assert out == "" and not os.listdir(empty), \
        f"a bind mount is never filled with the image's content: the host's directory is the user's ({DOCS})"


def test_tmpfs_and_read_only_rootfs_with_writable_volumes(md, made):
    name = made.volume("md-rw-on-ro")
    out = run(md, "--rm", "--read-only", "-v", f"{name}:/data", "--tmpfs", "/scratch:size=1m,mode=1770",
              "--mount", "type=tmpfs,dst=/t2,tmpfs-mode=0700", "busybox", "sh", "-c",
              "echo ok > /data/f && echo ok > /scratch/f && cat /data/f; touch /etc/no 2>/dev/null || echo ro;"
              "grep -E ' /(scratch|t2) ' /proc/mounts")
    lines = out.splitlines()
    assert lines[:2] == ["ok", "ro"], f"--read-only: / refuses writes, the volume and the tmpfs take them: {out!r} ({DOCS})"
    scratch = next(line for line in lines if " /scratch " in line)
    assert "size=1024k" in scratch and "noexec" in scratch and "mode=1770" in scratch, \
        f"--tmpfs /scratch:size=1m,mode=1770 with Docker's noexec default: {scratch} ({DOCS})"
    assert "mode=700" in next(line for line in lines if " /t2 " in line), f"tmpfs-mode=0700: {out!r} ({DOCS})"


def test_two_running_containers_share_a_volume_and_volumes_from(md, made, tmp_path):
    name = made.volume("md-shared")
    writer = made.container("md-share-w")
    run(md, "-d", "--name", writer, "-v", f"{name}:/v", "-v", f"{tmp_path}:/h", "busybox", "sh", "-c",
        "echo 1 > /v/f; while sleep 0.05; do [ -e /v/ack ] && echo 2 > /v/f && exec sleep 30; done")
    harness.wait_until(lambda: run(md, "--rm", "-v", f"{name}:/v", "busybox", "cat", "/v/f") == "1\n",
                       "the first container's write seen by a second one")
    run(md, "--rm", "-v", f"{name}:/v", "busybox", "touch", "/v/ack")  # the other way: the writer sees it
    harness.wait_until(lambda: run(md, "--rm", "-v", f"{name}:/v", "busybox", "cat", "/v/f") == "2\n",
                       "the running writer seeing the reader's file")
    out = md(*RUN, "--rm", "--volumes-from", f"{writer}:ro", "busybox", "sh", "-c", "cat /v/f; ls -d /h; touch /v/x")
    assert out.stdout == "2\n/h\n" and "Read-only file system" in out.stderr, \
        f"--volumes-from C:ro mounts C's volume and bind, read-only: {harness.explain(out)} ({DOCS})"


def test_sigkill_during_run_leaves_no_mount_and_keeps_the_data(md, made, tmp_path):
    name = made.volume("md-killed")
    cid = made.container("md-kill")
    data = os.path.join(os.environ["MINIDOCKER_ROOT"], "volumes", name, "_data")
    # A volume of the local driver with options is mounted on the host, on its _data, while used.
    driver = made.volume("md-killed-tmpfs")
    out = md("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", driver)
    assert out.returncode == 0, harness.explain(out)
    driver_data = os.path.join(os.environ["MINIDOCKER_ROOT"], "volumes", driver, "_data")
    proc = harness.popen_cli(*RUN, "--name", cid, "-v", f"{name}:/data", "-v", f"{tmp_path}:/h", "-v", f"{driver}:/t",
                             "busybox", "sh", "-c", "echo before > /data/f; touch /h/started; sleep 30",
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        harness.wait_until(lambda: (tmp_path / "started").exists(), "the container to start")
        # The mounts are made inside the container's mount namespace: the host never sees them.
        assert data not in host_mounts() and "/h " not in host_mounts(), \
            f"a volume is mounted in the container's namespace, never in the host's ({DOCS})"
        assert driver_data in host_mounts(), "-o type=tmpfs: the driver mounts the tmpfs on _data while it is used"
        proc.send_signal(signal.SIGKILL)  # `run` is the supervisor: the kernel kills the container with it
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    harness.wait_until(lambda: "Exited (137)" in md("ps", "-a", "--filter", f"name={cid}").stdout
                       or "Exited (137)" in md("ps", "-a").stdout, "the container to be seen exited")
    assert data not in host_mounts() and str(tmp_path) not in host_mounts(), \
        f"a SIGKILLed run leaves no mount on the host ({DOCS})"
    assert driver_data not in host_mounts(), \
        f"the next command that sees the killed run releases its volumes: the driver's tmpfs is unmounted ({DOCS})"
    with open(os.path.join(data, "f")) as f:
        assert f.read() == "before\n", f"a killed command never deletes a volume's data ({DOCS})"


def test_a_driver_mount_that_fails_is_one_error_and_keeps_the_volume(md, made):
    name = made.volume("md-no-device")
    out = md("volume", "create", "-o", "type=ext4", "-o", "device=/dev/md-missing", name)
    assert out.returncode == 0, f"the local driver mounts nothing at create: {harness.explain(out)}"
    out = md(*RUN, "--rm", "-v", f"{name}:/data", "busybox", "true")
    assert out.returncode == 125 and "failed to mount local volume: mount /dev/md-missing:" in out.stderr \
        and "Traceback" not in out.stderr, f"a driver mount that fails stops `run` with dockerd's words: " \
                                           f"{harness.explain(out)} (docs/05-volumes.md#driver-options)"
    assert name in volumes(md) and "md-no-device" not in host_mounts(), \
        f"the failed start keeps the volume and leaves nothing mounted ({DOCS})"
