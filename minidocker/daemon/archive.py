"""`docker cp`: the archive endpoints, a tar stream in or out of a running container's filesystem.

    HEAD /containers/{id}/archive?path=P   the stat of P, base64 JSON in X-Docker-Container-Path-Stat
    GET  /containers/{id}/archive?path=P   P (a file or a tree) as a tar
    PUT  /containers/{id}/archive?path=D   a tar extracted into the directory D

The container's files are reached through /proc/PID/root, its root as the kernel sees it. A path
comes from the client and may cross the container's symlinks: each one is resolved with
openat2(RESOLVE_IN_ROOT), as if the container's root were "/", and must name the same file the
plain path names; a link that leads out of the container is refused (docs/07-daemon.md#archive).

The owners in the tar are the container's, as Docker writes them: a remapped container's files
are 100000's on the host and 0's in the tar, both ways (docs/08-hardening.md#user-namespaces).
"""

import base64
import functools
import io
import json
import os
import stat
import tarfile

from minidocker import linux
from minidocker.container import lifecycle
from minidocker.daemon.http import ApiError, Response
from minidocker.daemon.router import route
from minidocker.errors import MinidockerError


def _running(id: str):
    c = lifecycle.find(id)
    if not c.state["Running"]:
        raise MinidockerError(f"container {c.name} is not running", "docker cp works on a running container here")
    return c


def _root(id: str) -> str:
    return f"/proc/{_running(id).state['Pid']}/root"


def _remapped(c) -> bool:
    return bool(c.spec.get("linux", {}).get("uidMappings"))


def _inside(root: str, path: str) -> str:
    """The host path of `path` in the container, once it is sure to stay inside the container."""
    if not path.startswith("/"):
        raise ApiError(400, f"path must be absolute: {path}")
    naive = os.path.join(root, os.path.normpath(path).lstrip("/"))
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = linux.openat2(root_fd, path, os.O_PATH | os.O_NOFOLLOW, 0, linux.RESOLVE_IN_ROOT)
    except FileNotFoundError:
        raise MinidockerError(f"Could not find the file {path} in container", "check the path") from None
    finally:
        os.close(root_fd)
    try:
        safe, plain = os.fstat(fd), os.lstat(naive)
    except FileNotFoundError:
        raise MinidockerError(f"Could not find the file {path} in container", "check the path") from None
    finally:
        os.close(fd)
    if (safe.st_dev, safe.st_ino) != (plain.st_dev, plain.st_ino):
        raise ApiError(400, f"path {path} leads out of the container's root")
    return naive


def _stat_header(path: str, host: str) -> dict:
    st = os.lstat(host)
    mode = stat.S_IMODE(st.st_mode) | (0x80000000 if stat.S_ISDIR(st.st_mode) else 0) | (
        0x8000000 if stat.S_ISLNK(st.st_mode) else 0)  # Go's os.ModeDir and os.ModeSymlink bits
    info = {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size, "mode": mode,
            "mtime": "1970-01-01T00:00:00Z", "linkTarget": os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""}
    return {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(info).encode()).decode()}


@route("HEAD", "/containers/{id}/archive")
def archive_head(req, id):
    path = req.arg("path") or ""
    return Response(200, b"", _stat_header(path, _inside(_root(id), path)))


@route("GET", "/containers/{id}/archive")
def archive_get(req, id):
    path = req.arg("path") or ""
    c = _running(id)
    host = _inside(f"/proc/{c.state['Pid']}/root", path)
    header = None
    if _remapped(c):  # on disk 100000, in the tar 0
        from minidocker.security import userns

        header = functools.partial(userns.header_to_container, spec=c.spec)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        # symlinks stored as links, never followed
        tar.add(host, arcname=os.path.basename(path.rstrip("/")) or ".", filter=header)
    return Response(200, out.getvalue(), {"Content-Type": "application/x-tar", **_stat_header(path, host)})


@route("PUT", "/containers/{id}/archive")
def archive_put(req, id):
    c = _running(id)
    root = f"/proc/{c.state['Pid']}/root"
    path = req.arg("path") or ""
    target = _inside(root, path)
    if not os.path.isdir(target):
        raise ApiError(400, f"extraction point is not a directory: {path}")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(req.body.read()), mode="r:")
    except tarfile.TarError as e:
        raise ApiError(400, f"the body is not a tar archive: {e}") from None
    with tar:
        for member in tar:
            # Each member's directory, resolved inside the container, must be where the plain
            # path goes: a symlinked directory in the container must not carry a file out of it.
            parent = os.path.dirname(os.path.join(path, member.name))
            _inside(root, parent)
            if member.name.startswith("/") or ".." in member.name.split("/") or member.isdev() or member.islnk():
                raise ApiError(400, f"refused archive member: {member.name}")  # no way out, no device files
            if _remapped(c):
                from minidocker.security import userns

                userns.header_to_host(member, c.spec)  # root's file (0 in the tar) is 100000's on disk
            tar.extract(member, target, numeric_owner=True)  # the header's ids, as Docker: never a host name's
    return Response(200)
