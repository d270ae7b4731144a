"""The container's root filesystem, in runc's order: propagation, the rootfs, the spec's mounts,
/dev's nodes, pivot_root, then masked and read-only paths and a read-only root."""

import os

from minidocker import linux
from minidocker.errors import EXIT_ENGINE
from minidocker.runtime import mounts
from minidocker.runtime.process import StartError


def mount_namespace() -> tuple[int, int]:
    """Which mount namespace this process is in: /proc/self/ns/mnt's (device, inode) names it."""
    st = os.stat("/proc/self/ns/mnt")
    return st.st_dev, st.st_ino


def setup_rootfs(spec: dict, bundle: str, runtime_mount_ns: tuple[int, int], cgroup=None, before_pivot=None) -> None:
    """Build the root. `runtime_mount_ns`: the runtime's own mount namespace, which we left;
    `cgroup`: the container's, which its /sys/fs/cgroup shows; `before_pivot()`: the runtime's
    hooks, run with every mount made and the host's files still in sight."""
    root = os.path.realpath(os.path.join(bundle, spec["root"]["path"]))  # relative: the bundle's
    linux_spec = spec.get("linux", {})
    # Everything below changes the mount table of the namespace we are in. Still in the runtime's
    # own (an unshare without CLONE_NEWNS), it would make the host's "/" private and pivot the
    # host's root, and every later mount would be the host's. Refuse before the first mount.
    if mount_namespace() == runtime_mount_ns:
        raise StartError(EXIT_ENGINE, "refusing to change mounts in the runtime's own mount namespace "
                                      "(unshare CLONE_NEWNS first: see docs/01-isolation.md#ex-01-namespaces)")
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
    # Every entry of `mounts`, in the spec's order: /dev before /dev/pts, a volume after /proc.
    for entry in spec.get("mounts", ()):
        mounts.mount_entry(root, entry, bundle, cgroup)
    mounts.make_devices(root, linux_spec.get("devices"))
    if before_pivot:
        before_pivot()
    pivot_into(root)
    # After the pivot the paths are the container's own, so no symlink can lead out.
    mounts.readonly_paths(linux_spec.get("readonlyPaths"))
    mounts.mask_paths(linux_spec.get("maskedPaths"))
    propagation = linux_spec.get("rootfsPropagation")
    if propagation:  # runc's default would be rslave; we keep the private of above unless asked
        linux.mount(None, "/", None, mounts.PROPAGATION[propagation])
    if spec["root"].get("readonly"):
        # A bind remount changes only this mount's flags: / becomes read-only, /dev and /proc not.
        linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)


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
