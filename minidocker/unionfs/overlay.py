"""The kernel's union filesystem: mounting overlayfs over N read-only layers.

One mount(2) call does everything the model in unionfs.py does by hand:

    mount("overlay", target, "overlay", 0,
          "lowerdir=L1:L2:L3,upperdir=U,workdir=W")

- lowerdir lists the read-only layers, the top-most first, separated by ':';
- upperdir receives every change (copy-ups, new files, whiteouts, opaque markers);
- workdir is an empty directory on the same filesystem as upperdir, where the kernel prepares a
  copy-up before renaming it into place, so that a crash never leaves a half-copied file visible.

The catch: mount(2) copies its option string from user space into one page (4096 bytes on
x86-64), and an image with many layers, each a long path, does not fit. See mount() below and
docs/02-unionfs.md#ex-02-mount.
"""

import errno
import os

from minidocker import linux
from minidocker.errors import MinidockerError

PAGE_SIZE = os.sysconf("SC_PAGESIZE")

# Options that make the upper directory expressible as an OCI layer, whatever the host's defaults:
# - redirect_dir=off: renaming a merged directory fails with EXDEV (and `mv` falls back to a copy)
#   instead of recording a "redirect" xattr, which no layer tar could carry;
# - metacopy=off: a chmod copies the data up too, not only the metadata, so that the upper file
#   is the whole file;
# - index=off: a layer may sit under many overlays at once, as a shared image layer does.
OPTIONS = "redirect_dir=off,metacopy=off,index=off"


def _escape(path: str) -> str:
    """overlayfs splits its options at ',' and the layers at ':'; a backslash escapes them."""
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def options(lowerdirs: list[str], upperdir: str | None, workdir: str | None) -> str:
    """The mount data string. Without upperdir the overlay is read-only (an image, no container)."""
    data = "lowerdir=" + ":".join(_escape(d) for d in lowerdirs)
    if upperdir:
        data += f",upperdir={_escape(upperdir)},workdir={_escape(workdir)}"
    return f"{data},{OPTIONS}"


def mount(lowerdirs: list[str], upperdir: str | None, workdir: str | None, target: str) -> None:
    """Mount an overlay of `lowerdirs` (top-most first) under `upperdir` on `target`."""
    if not lowerdirs:
        raise MinidockerError("an overlay needs at least one lower layer", "give the image's layers")
    absolute = [os.path.abspath(d) for d in lowerdirs]
    if not upperdir and len(absolute) == 1:
        # overlayfs refuses a stack with nothing to merge ("at least 2 lowerdir are needed while
        # upperdir nonexistent"). One read-only layer is a read-only bind mount.
        linux.mount(absolute[0], target, None, linux.MS_BIND)
        linux.mount(None, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)
        return
    # --8<-- [start:ex-02-mount]
    # Build the options string and call mount(2) with filesystem type "overlay". If the string
    # does not fit in one page, mount from short relative names instead (see _mount_short).
    data = options(absolute, upperdir and os.path.abspath(upperdir), workdir and os.path.abspath(workdir))
    if len(data) < PAGE_SIZE:  # the kernel copies one page, and needs room for the final NUL
        linux.mount("overlay", target, "overlay", 0, data)
    else:
        _mount_short(absolute, upperdir, workdir, target)
    # --8<-- [end:ex-02-mount]


# --8<-- [start:short-links]
def _mount_short(lowerdirs: list[str], upperdir: str | None, workdir: str | None, target: str) -> None:
    """Docker's trick for images with many layers: give each layer a short name and let the kernel
    resolve relative names. Docker keeps a directory `l/` of 26-character symlinks, one per layer;
    here a temporary directory holds symlinks named 0, 1, ..., z, 10, ... (base 36), and mount(2)
    runs with that directory as the current directory, so "lowerdir=0:1:2:..." names the layers.
    The kernel resolves the names (following the symlinks) while mounting and keeps references to
    the real directories, so the symlinks can go away right after."""
    import tempfile  # here: only a long stack needs it, and every import slows a container's start

    target, upperdir = os.path.abspath(target), upperdir and os.path.abspath(upperdir)
    workdir = workdir and os.path.abspath(workdir)
    with tempfile.TemporaryDirectory(prefix="md-layers-") as links:
        names = []
        for i, layer in enumerate(lowerdirs):
            names.append(_base36(i))
            os.symlink(layer, os.path.join(links, names[-1]))
        data = options(names, upperdir, workdir)
        if len(data) >= PAGE_SIZE:
            raise MinidockerError(f"too many layers for one overlay ({len(lowerdirs)})",
                                  "the kernel stacks at most 500; squash the image")
        # The current directory belongs to the whole process. A multi-threaded program (Docker
        # is one) must do this in a child process; minidocker has one thread, so it changes
        # directory and changes back.
        here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.chdir(links)
            linux.mount("overlay", target, "overlay", 0, data)
        finally:
            os.fchdir(here)
            os.close(here)
# --8<-- [end:short-links]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return digits[n] if n < 36 else _base36(n // 36) + digits[n % 36]


def unmount(target: str) -> None:
    """umount(2) the overlay. The upper directory keeps every change; the work directory can go."""
    try:
        linux.umount2(target)
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise MinidockerError(f"{target} is still in use",
                                  "a process has its cwd or a file open there; stop it first") from e
        raise
