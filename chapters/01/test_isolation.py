"""Chapter 01: each namespace isolates one thing. Every test runs a real container and looks at
the world from inside it (docs/01-isolation.md)."""

import ctypes
import json
import os
import socket
import uuid

from hypothesis import given, settings, strategies as st

import harness
from minidocker import cgroups


def inside(md, rootfs, script, *flags):
    out = md("run", "--rm", *flags, "--rootfs", rootfs, "--", "sh", "-c", script)
    assert out.returncode == 0, f"the container failed {harness.explain(out)}"
    return out.stdout


def test_hostname_is_the_short_id(md, rootfs):
    out = md("run", "--name", "md-uts", "--rootfs", rootfs, "--", "hostname")
    inspect = md("inspect", "md-uts")
    md("rm", "md-uts")
    assert out.returncode == 0, f"the container failed before its hostname could be checked {harness.explain(out)}"
    short_id = json.loads(inspect.stdout)[0]["Id"][:12]
    assert out.stdout.strip() == short_id, (
        f"a container's hostname defaults to its short id ({short_id}), as in Docker, got {out.stdout.strip()!r}: "
        "the UTS namespace gives it its own (docs/01-isolation.md#ex-01-namespaces)")


@settings(max_examples=3)
@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True))
def test_hostname_set_inside_stays_inside(md, rootfs, name):
    host = socket.gethostname()
    assert inside(md, rootfs, "hostname; hostname md-changed; hostname", "-h", name).split() == [name, "md-changed"]
    assert socket.gethostname() == host, "changing the hostname in a container changed the host's: no UTS namespace?"


def test_the_command_is_pid_1_and_sees_only_its_processes(md, rootfs):
    out = inside(md, rootfs, "echo $$; ls /proc | grep '^[0-9]'")
    pids = out.split()
    assert pids[0] == "1", f"the command should be PID 1 of its own PID namespace, got {pids[0]} (docs/01-isolation.md#ex-01-pid-namespace)"
    assert len(pids[1:]) <= 3 and "1" in pids[1:], (
        f"the container should see only itself, ls and grep in /proc, saw {pids[1:]} (/proc must be "
        "mounted from inside the new PID namespace: docs/01-isolation.md#ex-01-proc)")


def test_a_host_file_is_invisible_and_the_old_root_is_gone(md, rootfs, tmp_path):
    secret = tmp_path / "md-host-secret"
    secret.write_text("host only")
    assert "host only" not in inside(md, rootfs, f"cat {secret} 2>&1 || true"), (
        "a host file is visible in the container: the root is not pivoted")
    mount_points = {line.split()[4] for line in inside(md, rootfs, "cat /proc/self/mountinfo").splitlines()}
    # Docker's default mounts, and on a cgroup v1 or hybrid host one cgroup mount per v1 hierarchy
    # the container has a cgroup in (on pure v2, /sys/fs/cgroup is the one cgroup2 mount).
    driver = cgroups.detect()
    hierarchies = {os.path.dirname(d) for d in driver("md").dirs()} if driver.VERSION == 1 else set()
    # Docker hides kernel files by mounting over them (OCI maskedPaths and readonlyPaths):
    # /proc/kcore, /proc/sys, /sys/firmware... Those mounts are the container's own too.
    masks = {p for p in mount_points if p.startswith("/proc/") or p == "/sys/firmware"}
    # And the three files Docker binds into every container, its own copies (chapter 04).
    masks |= {"/etc/hosts", "/etc/resolv.conf", "/etc/hostname"}
    assert mount_points - masks == {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                            "/sys/fs/cgroup", *hierarchies}, (
        f"the container should see only its own mounts, saw {sorted(mount_points)}: detach the old "
        "root after pivot_root (docs/01-isolation.md#ex-01-pivot-root)")
    assert sorted(inside(md, rootfs, "ls /").split()) == sorted(os.listdir(rootfs)), "`ls /` should list the rootfs"


def mount_sources(mountinfo: str) -> list[str]:
    """The source field of each mount (after " - " come the type and the source): whole fields,
    so that a name cannot match inside another (systemd's own mounts include "systemd-tmpfiles")."""
    return [line.split(" - ", 1)[1].split()[1] for line in mountinfo.splitlines()]


def test_mounts_made_inside_do_not_reach_the_host(md, rootfs):
    source = f"md-test-{uuid.uuid4().hex[:12]}"  # a tmpfs source no booted system has
    out = inside(md, rootfs, f"mkdir -p /mnt/md && mount -t tmpfs {source} /mnt/md && cat /proc/self/mountinfo")
    assert mount_sources(out).count(source) == 1, "the mount should exist inside the container"
    with open("/proc/self/mountinfo") as f:
        assert source not in mount_sources(f.read()), (
            "a container's mount appeared on the host: make mounts private (docs/01-isolation.md#ex-01-private-mounts)")


def test_ipc_objects_of_the_host_are_invisible(md, rootfs):
    libc = ctypes.CDLL(None, use_errno=True)
    key, IPC_CREAT, IPC_RMID = 0x4D440001, 0o1000, 0
    shmid = libc.shmget(key, 4096, IPC_CREAT | 0o600)
    assert shmid >= 0, "could not make a System V shared memory segment on the host"
    try:
        with open("/proc/sysvipc/shm") as f:
            assert str(key) in f.read(), "the host should list its own segment"
        out = inside(md, rootfs, "cat /proc/sysvipc/shm")
        assert str(key) not in out, "the host's shared memory is visible inside: no IPC namespace?"
    finally:
        libc.shmctl(shmid, IPC_RMID, None)


def test_only_loopback_and_it_is_up(md, rootfs):
    out = inside(md, rootfs, "ls /sys/class/net; ip -o link")
    names, links = out.split("\n", 1)
    assert names.split() == ["lo"], f"a new network namespace has only lo, saw {names}"
    assert "UP" in links, "lo should be up, so that 127.0.0.1 works inside (docs/01-isolation.md#loopback)"
    assert "127.0.0.1" in inside(md, rootfs, "ip -o addr show lo")


def test_the_cgroup_namespace_hides_the_host_hierarchy(md, rootfs):
    out = inside(md, rootfs, "cat /proc/self/cgroup")
    paths = {line.split(":", 2)[2] for line in out.split()}
    assert paths == {"/"}, f"inside its cgroup namespace a container's cgroup is '/', saw {paths}"


def test_dev_has_only_the_safe_devices_and_sys_is_read_only(md, rootfs):
    out = inside(md, rootfs, "ls /dev; echo x > /dev/null && echo null-ok; touch /sys/md 2>&1 || echo sys-ro")
    names = set(out.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "stdin", "stdout", "stderr", "fd"} <= names
    assert not any(n.startswith(("sd", "vd", "nvme", "mem", "kmsg")) for n in names), f"host devices leaked in: {names}"
    assert "null-ok" in names and "sys-ro" in names, "/dev/null must work and /sys must be read-only"
