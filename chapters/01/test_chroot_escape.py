"""Why pivot_root and not chroot: the same escape code, against both (docs/01-isolation.md#chroot).

chroot only changes where "/" resolves for one process. A root process can chroot again into a
subdirectory while its working directory stays outside, then climb out with "..". After
pivot_root in a new mount namespace, the host's tree is not mounted anywhere the process can
reach, so the climb ends at the container's own root.
"""

import ctypes
import json
import os

CLONE_NEWNS = 0x00020000


def escape_and_look(jail: str, marker: str) -> bool:
    """The classic chroot breakout, from `jail`, a directory below our root; True if it
    reached the host's files."""
    if os.path.exists(marker):
        return True  # no need to climb: the host's files are in sight already
    os.chroot(jail)  # our cwd is now outside our root...
    for _ in range(64):
        os.chdir("..")  # ...so ".." is not stopped at the root
    os.chroot(".")
    return os.path.exists(marker)


def in_child(setup, jail, marker) -> bool:
    pid = os.fork()
    if pid == 0:
        try:
            setup()
            os._exit(0 if escape_and_look(jail, marker) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) in (0, 1), "the escape attempt itself crashed"
    return os.WEXITSTATUS(status) == 0


def test_chroot_can_be_escaped_but_pivot_root_cannot(md, rootfs, tmp_path, container):
    marker = tmp_path / "md-host-marker"
    marker.write_text("the host")
    # The breakout climbs out of a directory of the test's own: in the rootfs, which the chroot
    # and the container both have as "/" (no overlay: the container's root is this directory).
    jail = os.path.join(rootfs, "md-jail")
    os.mkdir(jail)
    try:
        breakout_from_chroot_and_from_container(md, rootfs, container, str(marker))
    finally:
        os.rmdir(jail)


def breakout_from_chroot_and_from_container(md, rootfs, container, marker):
    def chroot_only():
        os.chroot(rootfs)
        os.chdir("/")

    assert in_child(chroot_only, "/md-jail", marker), (
        "the chroot breakout should reach the host (it demonstrates why chroot is not enough)")

    pid = json.loads(md("inspect", container("sleep", "30")).stdout)[0]["State"]["Pid"]

    def enter_container():
        # Join the container's mount namespace: our root becomes the container's root.
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
        assert ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNS) == 0
        os.chdir("/")

    assert not in_child(enter_container, "/md-jail", marker), (
        "the same breakout escaped the container: its root must come from pivot_root in a new "
        "mount namespace, with the old root detached (docs/01-isolation.md#ex-01-pivot-root)")
