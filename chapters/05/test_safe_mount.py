"""Chapter 05: the safe mount. A mount's destination is resolved inside the container's root, never on
the host: an image whose /data is a symlink to /etc gets its volume on the container's /etc, and the
host's /etc is untouched (the class of runc's CVE-2021-30465). docs/05-volumes.md#the-safe-mount.

The image is made with chapter 03's commit, from a container that made /data a symlink to /etc.
The resolver itself (exercise ex-05-safe-target) is also tested at API level, on a tree of links.
"""

import os

import pytest

import harness
from minidocker.runtime import mounts

DOCS = "docs/05-volumes.md#the-safe-mount"
EXERCISE = "docs/05-volumes.md#ex-05-safe-target"
RUN = ("run", "--network", "none")


@pytest.fixture(autouse=True)
def _root():
    harness.need_root()


@pytest.fixture(scope="module")
def evil_image():
    """busybox, with /data a symlink to /etc and /up a relative one that climbs: ../../../../etc."""
    md = harness.run_cli
    out = md(*RUN, "--name", "md-mkevil", "busybox", "sh", "-c", "ln -s /etc /data && ln -s ../../../../etc /up")
    assert out.returncode == 0, harness.explain(out)
    out = md("commit", "md-mkevil", "md-evil-image:1")
    md("rm", "md-mkevil")
    assert out.returncode == 0, harness.explain(out)
    return "md-evil-image:1"


def host_etc() -> dict:
    return {name: os.lstat(os.path.join("/etc", name)).st_mtime_ns for name in os.listdir("/etc")}


@pytest.mark.parametrize("target", ["/data", "/up", "/data/md-sub"])
def test_a_symlinked_target_stays_inside_the_container(md, tmp_path, evil_image, target):
    source = tmp_path / "md-src"
    source.mkdir()
    (source / "md-planted").write_text("planted\n")
    before = host_etc()
    out = md(*RUN, "--rm", "-v", f"{source}:{target}", evil_image, "sh", "-c",
             "cat /etc/md-planted /etc/md-sub/md-planted 2>/dev/null; echo x > /etc/md-written; true")
    assert out.returncode == 0, f"{harness.explain(out)} ({EXERCISE})"
    assert out.stdout.startswith("planted\n"), \
        f"-v SRC:{target} where {target} leads to /etc: the bind belongs on the container's /etc: {out.stdout!r} ({DOCS})"
    assert host_etc() == before and not os.path.exists("/etc/md-planted") and not os.path.exists("/etc/md-sub"), \
        f"the host's /etc changed: the mount target was resolved on the host ({EXERCISE})"
    with open("/proc/self/mountinfo") as f:
        assert " /etc" not in "".join(line.split(" - ")[0] for line in f), "a mount on the host's /etc"


def test_a_volume_over_a_symlink_copies_up_inside_the_image(md, evil_image):
    before = host_etc()
    out = md(*RUN, "--rm", "-v", "md-evil-vol:/data", evil_image, "sh", "-c",
             "touch /etc/md-in-volume && grep -c ' /etc ' /proc/mounts")
    try:
        assert out.returncode == 0 and out.stdout == "1\n", \
            f"the volume is mounted on the container's own /etc: {harness.explain(out)} ({DOCS})"
        data = os.path.join(os.environ["MINIDOCKER_ROOT"], "volumes", "md-evil-vol", "_data")
        assert os.path.exists(os.path.join(data, "md-in-volume")) and os.path.exists(os.path.join(data, "passwd")), \
            f"the volume holds the image's /etc (copy-up) and the container's write ({DOCS})"
        assert host_etc() == before, f"the host's /etc changed ({EXERCISE})"
    finally:
        md("volume", "rm", "md-evil-vol")


def test_open_in_root_resolves_every_link_inside_the_root(tmp_path):
    """The exercise at API level: absolute links, links that climb with .., a missing path made."""
    root = tmp_path / "md-root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../../../etc", root / "climb")
    os.symlink("abs/nested", root / "chain")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for destination, lands in (("/abs/md-x", "etc/md-x"), ("/climb/md-y/z", "etc/md-y/z"),
                                   ("/chain/deep", "etc/nested/deep"), ("/new/dir", "new/dir")):
            fd = mounts.open_in_root(root_fd, destination, True)
            try:
                where = os.readlink(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            assert where == str(root / lands), \
                f"{destination} must resolve inside the root to {lands}, it opened {where} ({EXERCISE})"
        fd = mounts.open_in_root(root_fd, "/abs/md-file", False)
        os.close(fd)
        assert (root / "etc" / "md-file").is_file(), f"a file's bind gets an empty file to land on ({EXERCISE})"
    finally:
        os.close(root_fd)
    assert not os.path.exists("/etc/md-x") and not os.path.exists("/etc/md-file"), "made on the host's /etc"


def test_targets_over_proc_are_refused_and_the_trace_shows_the_safe_walk(md, tmp_path):
    out = md("create", "-v", f"{tmp_path}:/proc/self", "busybox", "true")
    assert out.returncode == 125 and "cannot be mounted because it is inside /proc" in out.stderr, \
        f"a bind inside /proc is refused, as runc refuses it: {harness.explain(out)} ({DOCS})"
    out = md("--trace", *RUN, "--rm", "-v", f"{tmp_path}:/md-t", "busybox", "true")
    assert out.returncode == 0, harness.explain(out)
    assert 'openat2(' in out.stderr and "RESOLVE_IN_ROOT" in out.stderr and '"/proc/self/fd/' in out.stderr, \
        f"--trace shows the target opened with openat2(RESOLVE_IN_ROOT) and mounted through /proc/self/fd ({DOCS})"
