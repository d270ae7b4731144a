"""The container's root filesystem: private mounts, the rootfs, /proc, /dev, /sys, pivot_root."""

import os
import stat

from minidocker import linux


def setup_rootfs(spec: dict) -> None:
    root = os.path.realpath(spec["root"]["path"])
    # --8<-- [start:ex-01-private-mounts]
    # Make every mount private (recursively), so that no mount event crosses to or from the host.
    #
    # Without it pivot_root answers EINVAL (it refuses to move a shared root: the host would see
    # the move), and our /proc and /dev mounts would appear in the host's mount table.
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    # --8<-- [end:ex-01-private-mounts]
    overlay = spec.get("minidocker", {}).get("overlay")
    if overlay:  # chapter 02: the rootfs is a union of read-only layers and a writable one
        from minidocker.unionfs import overlay as overlayfs

        overlayfs.mount(overlay["lowerdirs"], overlay["upperdir"], overlay["workdir"], root)
    else:
        # pivot_root needs the new root to be a mount point; binding a directory on itself makes
        # it one.
        linux.mount(root, root, None, linux.MS_BIND | linux.MS_REC)
    mount_proc(root)
    mount_dev(root)
    # /sys read-only: it shows the host's devices and kernel knobs; a container only reads it.
    _mountpoint(root, "sys")
    linux.mount("sysfs", f"{root}/sys", "sysfs", linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    pivot_into(root)
    if spec["root"].get("readonly"):
        # A bind remount changes only this mount's flags: / becomes read-only, /dev and /proc not.
        linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)


def _mountpoint(root: str, path: str) -> str:
    target = os.path.join(root, path)
    os.makedirs(target, exist_ok=True)
    return target


def mount_proc(root: str) -> None:
    # --8<-- [start:ex-01-proc]
    # Mount a new procfs (type "proc"; nosuid, nodev, noexec) on the rootfs's /proc.
    #
    # A fresh procfs shows the PID namespace of whoever mounts it: ours, where we are PID 1.
    linux.mount("proc", _mountpoint(root, "proc"), "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    # --8<-- [end:ex-01-proc]


# The device nodes every container gets: (name, major, minor). Only these, never the host's disks.
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]


def mount_dev(root: str) -> None:
    # --8<-- [start:mount-dev]
    dev = _mountpoint(root, "dev")
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_STRICTATIME, "mode=755,size=65536k")
    for name, major, minor in DEVICES:
        os.mknod(f"{dev}/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(f"{dev}/{name}", 0o666)  # mknod's mode is filtered by our umask
    # A private devpts instance: the container's ptys are numbered from 0 and invisible outside.
    linux.mount("devpts", _mountpoint(dev, "pts"), "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    linux.mount("shm", _mountpoint(dev, "shm"), "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                "mode=1777,size=65536k")
    for link, target in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")]:
        os.symlink(target, f"{dev}/{link}")
    # --8<-- [end:mount-dev]


def pivot_into(root: str) -> None:
    # --8<-- [start:ex-01-pivot-root]
    # chdir into `root`, pivot_root(".", "."), then unmount the old root with MNT_DETACH.
    #
    # pivot_root(".", ".") stacks the old root on top of the new one, at the same place, and the
    # detached unmount peels it off: no directory for the old root is needed, so this works on a
    # read-only rootfs too. (chroot would only change our view of "/", and root can climb out.)
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")
    # --8<-- [end:ex-01-pivot-root]
