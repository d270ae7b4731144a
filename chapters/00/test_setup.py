"""Chapter 00: is this machine ready? Each test is one check of `minidocker doctor`, and its
failure says how to fix the machine (docs/00-setup.md)."""

import ctypes
import os

import pytest
from hypothesis import given, strategies as st

import harness
from minidocker import doctor


@pytest.mark.parametrize("check", doctor.checks(), ids=lambda c: c.name)
def test_machine_is_ready(check):
    assert check.ok, f"{check.name}: {check.detail}. Fix: {check.fix} (docs/00-setup.md#doctor)"


def test_doctor_prints_every_check(md):
    out = md("doctor")
    assert out.returncode == 0, f"`minidocker doctor` found a problem:\n{out.stdout}"
    for check in doctor.checks():
        assert check.name in out.stdout, f"doctor's table misses the {check.name!r} check"


@given(st.integers(2, 9), st.integers(0, 99), st.text("0123456789-abcdef.", max_size=12))
def test_kernel_version_parsing(major, minor, suffix):
    # uname -r looks like "6.1.0-18-amd64" or "5.15.0-91-generic": only major.minor matter.
    assert doctor.kernel_version(f"{major}.{minor}.{suffix}") == (major, minor)


@pytest.mark.parametrize("module", ["overlay.ko", "overlay.ko.xz", "overlay.ko.zst"])
def test_an_overlay_module_not_loaded_yet_is_usable(tmp_path, module):
    # Debian's overlayfs is a module that the kernel loads at the first overlay mount: a fresh
    # machine does not list it in /proc/filesystems, yet overlay mounts work.
    filesystems = tmp_path / "filesystems"
    filesystems.write_text("nodev\tsysfs\nnodev\ttmpfs\n\text4\n")
    modules = tmp_path / "modules"
    (modules / "kernel/fs/overlayfs").mkdir(parents=True)
    (modules / "modules.dep").write_text(f"kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko\nkernel/fs/overlayfs/{module}:\n")
    (modules / "kernel/fs/overlayfs" / module).write_bytes(b"")
    assert doctor.check_overlayfs(str(filesystems), str(modules)).ok, "a loadable overlay module is a usable overlayfs"
    (modules / "kernel/fs/overlayfs" / module).unlink()
    missing = doctor.check_overlayfs(str(filesystems), str(modules))
    assert not missing.ok and missing.fix, "no overlay in the kernel and no module file: overlayfs is missing"


def overlay_mounts(tmp_path) -> bool:
    """Does a real overlay mount work? Tried in a child, in a mount namespace of its own: the
    mount goes away with the child. (On Debian this loads the module, as Docker's first start does.)"""
    dirs = {name: tmp_path / name for name in ("lower", "upper", "work", "merged")}
    for d in dirs.values():
        d.mkdir()
    options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}".encode()
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x20000, 0x4000, 0x40000
        ok = (libc.unshare(CLONE_NEWNS) == 0 and libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0
              and libc.mount(b"overlay", str(dirs["merged"]).encode(), b"overlay", 0, options) == 0)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def test_the_overlayfs_check_agrees_with_the_kernel(tmp_path):
    harness.need_root()  # to mount
    check = doctor.check_overlayfs()
    assert check.ok == overlay_mounts(tmp_path), (
        f"doctor says overlayfs is {'usable' if check.ok else 'missing'} ({check.detail}), "
        "but a real overlay mount says otherwise")
