"""The build context: the directory `docker build` sends to the engine, as a tar.

The engine may run on another machine (it does, with DOCKER_HOST=ssh://...), so the client never
hands it a path: it packs the context directory into a tar and streams it in the request body
(POST /build). The engine unpacks it into a directory of its own, and COPY and ADD take their
files from there. See docs/06-build.md#the-context.

- `pack` is the client's half, as the docker CLI packs it: .dockerignore applied (the Dockerfile
  and .dockerignore are always sent: the engine needs them), every entry owned by 0:0 (the CLI
  does not leak the user's uid; the image gets what COPY --chown says), modes and times kept,
  symlinks stored as symlinks and never followed, hard links as links, names in sorted order so
  the same directory always makes the same tar.
- `unpack` is the engine's half. The tar comes from a client, which may be anyone who can reach
  the socket: a name like `../../etc/cron.d/x`, or a symlink `a -> /etc` followed by a file
  `a/passwd`, must not write outside the directory. Every entry is checked before anything is
  written, and a refused tar leaves nothing behind.
"""

import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile

from minidocker.build.dockerignore import Matcher, read
from minidocker.errors import MinidockerError

HINT = "see docs/06-build.md#the-context"
REFUSED = "the build context is not a plain tree of files; it was refused whole"


# ---------------------------------------------------------------------------------------------
# The client: directory -> tar

def pack(context_dir: str, dockerfile_path: str | None, out, *, dockerfile: bytes | None = None) -> str:
    """Write the context tar to `out`; return the Dockerfile's name inside it (what the build
    request's `dockerfile` parameter names). `dockerfile_path` is relative to the context (None:
    "Dockerfile"). A Dockerfile that is not in the context (`-f ../x`, or `-f -` with its text in
    `dockerfile`) is added to the tar under a name of its own, as the CLI does."""
    context_dir = os.path.abspath(context_dir)
    if not os.path.isdir(context_dir):
        raise MinidockerError(f"unable to prepare context: path {context_dir!r} not found", "give the context directory")
    name = _dockerfile_name(context_dir, dockerfile_path)
    if name is None and dockerfile is None:  # outside the context: take its text
        with open(dockerfile_path, "rb") as f:
            dockerfile = f.read()
    patterns = read(context_dir)
    # The engine needs these two, whatever .dockerignore says (the CLI adds the exceptions):
    for keep in (".dockerignore", name):
        if keep and Matcher(patterns).excluded(keep):
            patterns.append("!" + keep)
    matcher = Matcher(patterns)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _walk(tar, context_dir, "", matcher)
        if dockerfile is not None:
            name = ".dockerfile." + hashlib.sha256(dockerfile).hexdigest()[:20]
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(dockerfile), 0o600
            tar.addfile(info, io.BytesIO(dockerfile))
    return name


def _dockerfile_name(context_dir: str, dockerfile_path: str | None) -> str | None:
    """The Dockerfile's /-separated name in the context, or None when it lies outside."""
    if dockerfile_path is None:
        return "Dockerfile"
    path = os.path.abspath(os.path.join(context_dir, dockerfile_path))
    rel = os.path.relpath(path, context_dir)
    return None if rel == ".." or rel.startswith("../") else rel


def _walk(tar: tarfile.TarFile, root: str, rel: str, matcher: Matcher) -> None:
    """Add the entries below `rel`, sorted by name (the order of Go's filepath.Walk)."""
    for name in sorted(os.listdir(os.path.join(root, rel))):
        path = f"{rel}/{name}" if rel else name
        real = os.path.join(root, path)
        st = os.lstat(real)
        is_dir = stat.S_ISDIR(st.st_mode)
        if matcher.excluded(path):
            # An excluded directory is still walked when an exception may put back something
            # inside it (then its own entry stays out, only what is put back goes in).
            if is_dir and matcher.may_include_below(path):
                _walk(tar, root, path, matcher)
            continue
        _add(tar, real, path)
        if is_dir:
            _walk(tar, root, path, matcher)


def _add(tar: tarfile.TarFile, real: str, name: str) -> None:
    info = tar.gettarinfo(real, arcname=name)  # lstat: a symlink is stored, not followed
    if info is None:
        return  # a socket: a tar cannot hold one, and the CLI leaves it out too
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)  # whole seconds, as the CLI's tar writer
    if not info.isreg():
        tar.addfile(info)
        return
    try:
        with open(real, "rb") as f:
            tar.addfile(info, f)
    except PermissionError:
        raise MinidockerError(f"error checking context: no permission to read from '{real}'",
                              "make it readable, or list it in .dockerignore") from None


# ---------------------------------------------------------------------------------------------
# The engine: tar -> directory

def unpack(fileobj, dest_dir: str) -> None:
    """Unpack a context tar into `dest_dir`, an empty directory. Refused whole (nothing
    written) when an entry would land outside it."""
    if os.listdir(dest_dir):
        raise MinidockerError(f"cannot unpack a build context into {dest_dir!r}: not empty", "give an empty directory")
    if not fileobj.seekable():  # two passes: check every header, then write
        spool = tempfile.TemporaryFile()
        shutil.copyfileobj(fileobj, spool)
        spool.seek(0)
        fileobj = spool
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:*")
        members = tar.getmembers()
    except Exception as e:  # tarfile.ReadError, gzip's own errors, data cut short
        raise MinidockerError(f"the build context is not a readable tar archive: {str(e).splitlines()[0]}", HINT) from e
    with tar:
        _check_all(members)
        try:
            _extract_all(tar, members, dest_dir)
        except BaseException:
            _empty(dest_dir)  # half a context is no context
            raise


# --8<-- [start:check-context]
def _check_all(members: list[tarfile.TarInfo]) -> None:
    """Pass 1, on paper. The destination is empty, so the tar alone says where everything lands:
    no name may climb out, nothing may be written *through* a symlink of the tar (the kernel
    would follow it out), a symlink may not point above the top (as dockerd refuses), and a
    hard link may only name a regular file that came before it."""
    kinds: dict[str, str] = {}  # name -> "dir", "file", "symlink"
    for m in members:
        name = _clean(m)
        if "\0" in m.name or "\0" in m.linkname:
            raise _refuse(m, "a NUL byte in the name")
        if m.name.startswith("/"):
            raise _refuse(m, "an absolute name")
        if name == ".." or name.startswith("../") or ".." in m.name.split("/"):
            raise _refuse(m, "'..' in the name")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise _refuse(m, f"unsupported entry type {m.type!r}: a context holds files, directories and links")
        parts = name.split("/")
        for i in range(1, len(parts) + (0 if m.isdir() else 1)):
            above = "/".join(parts[:i])
            if kinds.get(above) == "symlink":
                raise _refuse(m, f"it would be written through the symlink {above!r}")
            if i < len(parts) and kinds.get(above) == "file":
                raise _refuse(m, f"{above!r} is a file, not a directory")
        if m.issym():
            target = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
            if not m.linkname.startswith("/") and (target == ".." or target.startswith("../")):
                raise _refuse(m, f"invalid symlink {name!r} -> {m.linkname!r}: it points outside the context")
        if m.islnk():
            source = os.path.normpath(m.linkname)
            if kinds.get(source) != "file":
                raise _refuse(m, f"hard link to {m.linkname!r}, which is not a file before it in the context")
        if m.isdir() and kinds.get(name, "dir") != "dir":
            raise _refuse(m, f"{name!r} is a directory and a file")
        kinds[name] = "dir" if m.isdir() else "symlink" if m.issym() else "file"
# --8<-- [end:check-context]


def _extract_all(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: str) -> None:
    """Pass 2. Names were checked: every parent is a real directory of ours."""
    root = os.getuid() == 0
    dirs = []
    for m in members:
        name = _clean(m)
        if name == ".":
            continue
        path = os.path.join(dest, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if m.isdir():
            os.makedirs(path, exist_ok=True)
            dirs.append((path, m))
            continue
        if os.path.lexists(path):
            os.unlink(path)  # a later entry replaces an earlier one, as tar does
        if m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            os.link(os.path.join(dest, os.path.normpath(m.linkname)), path, follow_symlinks=False)
            continue
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(tar.extractfile(m), f)
        _attrs(path, m, root)
    for path, m in reversed(dirs):  # times last: writing into a directory changes its mtime
        _attrs(path, m, root)


def _attrs(path: str, m: tarfile.TarInfo, root: bool) -> None:
    if root:
        os.lchown(path, m.uid, m.gid)
    if not m.issym():
        os.chmod(path, m.mode & 0o7777)
    os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def _clean(m: tarfile.TarInfo) -> str:
    return os.path.normpath(m.name) if m.name.strip("/") else "."


def _refuse(m: tarfile.TarInfo, why: str) -> MinidockerError:
    return MinidockerError(f"refusing build context entry {m.name!r}: {why}", REFUSED)


def _empty(directory: str) -> None:
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
