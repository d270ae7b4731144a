"""`docker export`: a container's filesystem as one tar, as its graph driver mounts it.

Docker exports the container's root as the image's layers, the init layer and the container's
writable layer, merged, and nothing mounted on top of it: no volume, no /proc, no /etc/hosts bind.
We make that view with an overlay of the same directories, every one of them a read-only lower
layer (the writable layer on top, so its changes and whiteouts win, exactly as in the container),
mounted in a mount namespace of a child process of our own. Nothing is mounted on the host, so
nothing is left to unmount if the export is killed half-way: the namespace dies with the child.
See docs/07-daemon.md#export.
"""

import functools
import os
import tarfile
import tempfile
from collections.abc import Iterator

from minidocker import linux
from minidocker.container import lifecycle
from minidocker.errors import MinidockerError

CHUNK = 64 * 1024


def export(ref: str) -> Iterator[bytes]:
    """The container's filesystem as a tar stream, in chunks (running or stopped alike)."""
    c = lifecycle.find(ref)
    overlay = c.spec.get("minidocker", {}).get("overlay")
    # Top-most first, as overlayfs lists them; a --rootfs DIR container's root is DIR itself.
    layers = [overlay["upperdir"], *overlay["lowerdirs"]] if overlay else [c.spec["root"]["path"]]
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: its own mount namespace, the overlay, the tar into the pipe
        code = 1
        try:
            os.close(read_end)
            _write_tar(layers, write_end, c.spec)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        while chunk := os.read(read_end, CHUNK):
            yield chunk
    finally:
        os.close(read_end)  # a reader that stops early: the child gets EPIPE and ends
        _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise MinidockerError(f"cannot export container {c.name}", "see the engine's stderr")


# --8<-- [start:export]
def _write_tar(layers: list[str], fd: int, spec: dict) -> None:
    linux.unshare(linux.CLONE_NEWNS)
    # Private first, or the mount below would propagate to the host's namespace.
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    from minidocker.unionfs import overlay

    # Numbers only, as Docker writes them: the host's user names mean nothing in the image. A
    # remapped container's owners as it sees them: on disk 100000, in the tar 0.
    header = _numeric
    if spec.get("linux", {}).get("uidMappings"):
        from minidocker.security import userns

        header = functools.partial(userns.header_to_container, spec=spec)  # numbers only too
    root = tempfile.mkdtemp(prefix="md-export-")  # the mount point is on the host's disk: removed below
    try:
        # No upperdir: read-only, the layers untouched. For a running container the kernel logs
        # "lowerdir is in-use as upperdir" (its writable layer is one of our lower layers): a
        # file the container writes during the export may be seen old or new, never harmed.
        overlay.mount(layers, None, None, root)
        try:
            with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path, arcname in _walk(root):
                    tar.add(path, arcname=arcname, recursive=False, filter=header)
        finally:
            overlay.unmount(root)
    finally:
        os.rmdir(root)
# --8<-- [end:export]


def _walk(root: str) -> Iterator[tuple[str, str]]:
    """Every entry under root, a directory before what it holds, in name order (a stable tar)."""
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            yield path, os.path.relpath(path, root)


def _numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""
    return info
