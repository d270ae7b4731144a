"""Changesets: a container's upper directory as an OCI layer tar, and a layer tar applied safely.

An image layer is a tar of the *changes* a step made (the OCI image spec calls it a changeset):
added and changed files as they are, and deletions as empty marker files, because a tar has no
way to say "this file is gone":

- `dir/.wh.NAME` ("whiteout") deletes NAME from the layers below;
- `dir/.wh..wh..opq` ("opaque whiteout") deletes everything the layers below have in dir.

overlayfs records the same facts differently: a deleted name becomes a character device 0:0 and
a replaced directory carries the xattr trusted.overlay.opaque=y. So `create` translates the
kernel's markers into the spec's, and `apply` does the reverse work: it unpacks a layer onto a
directory, deleting what the markers say. A layer comes from strangers (a registry), so `apply`
checks every name before it writes anything: it never writes outside its target.
See docs/02-unionfs.md#changesets.
"""

import os
import shutil
import stat
import tarfile
import tempfile

from minidocker.errors import MinidockerError
from minidocker.unionfs.model import OVERLAY_XATTRS, is_opaque, is_whiteout

WHITEOUT = ".wh."  # the prefix of a deleted name in a layer tar
OPAQUE = ".wh..wh..opq"  # "the lower layers' entries of this directory are gone"
XATTR_PAX = "SCHILY.xattr."  # how PAX tars (GNU tar --xattrs, Docker) carry extended attributes


# ---------------------------------------------------------------------------------------------
# create: upper directory -> layer tar

def create(upperdir: str, fileobj) -> None:
    """Write the changes recorded in `upperdir` to `fileobj` as an (uncompressed) OCI layer tar."""
    with tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(upperdir):
            dirnames.sort()  # a stable order: the same upper directory gives the same tar
            for name in sorted(dirnames + filenames):
                real = os.path.join(dirpath, name)
                _add(tar, real, os.path.relpath(real, upperdir))


def _add(tar: tarfile.TarFile, real: str, name: str) -> None:
    st = os.lstat(real)
    # --8<-- [start:ex-02-changeset]
    # Translate overlayfs's markers: a 0:0 character device becomes an empty file ".wh.NAME";
    # an opaque directory is written, then followed by an empty file "DIR/.wh..wh..opq".
    if is_whiteout(st):
        tar.addfile(_marker(tar, real, os.path.join(os.path.dirname(name), WHITEOUT + os.path.basename(name))))
        return
    info = tar.gettarinfo(real, arcname=name)  # type, mode, owner, times, hard links
    if info is None:
        return  # a socket: tar cannot carry one, and Docker leaves them out too
    info.pax_headers.update(_xattrs(real))
    if info.isreg():
        with open(real, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)
    if stat.S_ISDIR(st.st_mode) and is_opaque(real):
        tar.addfile(_marker(tar, real, os.path.join(name, OPAQUE)))
    # --8<-- [end:ex-02-changeset]


def _marker(tar: tarfile.TarFile, real: str, name: str) -> tarfile.TarInfo:
    """An empty regular file standing for a deletion; it keeps the owner and time of the change."""
    info = tar.gettarinfo(real, arcname=name)
    info.type, info.size, info.mode, info.devmajor, info.devminor = tarfile.REGTYPE, 0, 0o644, 0, 0
    return info


def _xattrs(real: str) -> dict[str, str]:
    """The extended attributes worth keeping, as PAX headers. overlayfs's own (trusted.overlay.*:
    opaque, origin, impure...) describe the upper directory, not the files, so they stay out."""
    found = {}
    for key in os.listxattr(real, follow_symlinks=False):
        if not key.startswith(OVERLAY_XATTRS):
            value = os.getxattr(real, key, follow_symlinks=False)
            found[XATTR_PAX + key] = value.decode("utf-8", "surrogateescape")  # tarfile re-encodes
    return found


# ---------------------------------------------------------------------------------------------
# apply: layer tar -> directory

def apply(fileobj, target: str) -> None:
    """Apply an OCI layer tar (plain or gzip) onto the directory `target`, as the image spec says:
    entries are written over what is there, and whiteouts delete from what was there."""
    if not fileobj.seekable():  # two passes over the tar need a file we can rewind
        spool = tempfile.TemporaryFile()
        shutil.copyfileobj(fileobj, spool)
        spool.seek(0)
        fileobj = spool
    target = os.path.abspath(target)
    with tarfile.open(fileobj=fileobj, mode="r:*") as tar:
        members = tar.getmembers()
        # Pass 1: refuse the whole layer before writing a single byte, so that a bad layer leaves
        # the target as it was.
        _check(members, target)
        # Pass 2: in the tar's order, where a directory comes before its entries. A whiteout
        # deletes from the layers below, never this layer's own entries (`mine`): that is what
        # lets the opaque marker sit anywhere in its directory.
        mine, dirs = set(), []
        for m in members:
            name = _name(m)
            parent, base = os.path.dirname(name), os.path.basename(name)
            if base == OPAQUE:
                directory = _inside(target, parent)
                if _is_real_dir(directory):
                    for entry in os.listdir(directory):
                        if os.path.join(parent, entry) not in mine:
                            _remove(os.path.join(directory, entry))
            elif base.startswith(WHITEOUT):
                if os.path.join(parent, base[len(WHITEOUT):]) not in mine:
                    _remove(_inside(target, os.path.join(parent, base[len(WHITEOUT):])))
            elif name:
                path = _extract(tar, m, target)
                while name not in mine and name:  # the entry, and the directories it implies
                    mine.add(name)
                    name = os.path.dirname(name)
                if m.isdir():
                    dirs.append((path, m))
        # Writing into a directory changes its mtime: directory times are set last.
        for path, m in dirs:
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def _name(m: tarfile.TarInfo) -> str:
    """The member's name without "./" and trailing "/"; "" for the layer's root."""
    name = os.path.normpath(m.name)
    return "" if name == "." else name


ESCAPE = "the layer tries to reach outside its directory; do not use this image"
MALFORMED = "the layer is malformed; rebuild or re-pull the image"


def _refuse(m: tarfile.TarInfo, why: str, hint: str = ESCAPE) -> MinidockerError:
    return MinidockerError(f"refusing layer entry {m.name!r}: {why}", hint)


# --8<-- [start:check]
def _check(members: list[tarfile.TarInfo], target: str) -> None:
    """Refuse a layer that would touch anything outside `target`."""
    dirs = {}  # name -> is a directory, for the entries seen so far
    for m in members:
        parts = m.name.split("/")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk() or m.isdev()):
            raise _refuse(m, f"unsupported entry type {m.type!r}", MALFORMED)
        if m.name.startswith("/"):
            raise _refuse(m, "absolute name")
        if ".." in parts:
            raise _refuse(m, "'..' in the name")
        base = os.path.basename(_name(m))
        if base in (WHITEOUT, WHITEOUT + ".", WHITEOUT + ".."):
            raise _refuse(m, "a whiteout of a directory above the layer")
        if m.issym() and not m.linkname.startswith("/"):
            # A relative target is resolved from the link's directory; an absolute one from the
            # container's root, which stays inside the layer however many "/.." it has.
            where = os.path.normpath(os.path.join(os.path.dirname(_name(m)), m.linkname))
            if where == ".." or where.startswith("../"):
                raise _refuse(m, f"symlink to {m.linkname!r} points outside the layer")
        if m.islnk():
            link = os.path.normpath(m.linkname)
            if m.linkname.startswith("/") or link == ".." or link.startswith("../"):
                raise _refuse(m, f"hard link to {m.linkname!r} points outside the layer")
            existing = _inside(target, link)
            if link not in dirs and not os.path.lexists(existing):
                raise _refuse(m, f"hard link to {m.linkname!r}, which does not exist", MALFORMED)
            if dirs[link] if link in dirs else _is_real_dir(existing):
                raise _refuse(m, f"hard link to the directory {m.linkname!r}", MALFORMED)
        dirs[_name(m)] = m.isdir()
# --8<-- [end:check]


# --8<-- [start:inside]
def _inside(root: str, name: str) -> str:
    """The host path of `name` inside `root`. Symlinks among the parent directories are followed
    the way they would be inside the container, where `root` is "/": an absolute target starts
    again at `root` and ".." stops at `root`. So a layer with "etc -> /" then "etc/passwd" writes
    root/passwd, never the host's /etc/passwd. The last component is never followed: an entry
    replaces a symlink, it does not write through it."""
    todo = [p for p in name.split("/") if p not in ("", ".")]
    last = todo.pop() if todo else ""
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            done = done[:-1]
            continue
        here = os.path.join(root, *done, part)
        if os.path.islink(here):
            hops += 1
            if hops > 40:  # the kernel's own limit (ELOOP)
                raise MinidockerError(f"too many symlinks in {name!r}", "the layer has a symlink loop")
            link = os.readlink(here)
            if link.startswith("/"):
                done = []
            todo = [p for p in link.split("/") if p not in ("", ".")] + todo
            continue
        done.append(part)
    return os.path.join(root, *done, last)
# --8<-- [end:inside]


def _is_real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _remove(path: str) -> None:
    if _is_real_dir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _extract(tar: tarfile.TarFile, m: tarfile.TarInfo, target: str) -> str:
    path = _inside(target, _name(m))
    os.makedirs(os.path.dirname(path), exist_ok=True)  # a tar may skip parent directories
    if m.isdir():
        if not _is_real_dir(path):
            _remove(path)  # a file or symlink becomes a directory
            os.mkdir(path, 0o700)
    elif m.isreg():
        # Write to a temporary name and rename over the old entry: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".md-")
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(tar.extractfile(m), f)
        if _is_real_dir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    else:
        _remove(path)
        if m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            os.link(_inside(target, m.linkname), path, follow_symlinks=False)
            return path  # a hard link shares its target's inode: nothing else to set
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | m.mode, os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(path)
    _set_metadata(path, m)
    return path


def _set_metadata(path: str, m: tarfile.TarInfo) -> None:
    os.chown(path, m.uid, m.gid, follow_symlinks=False)  # numeric ids: names mean nothing here
    if not m.issym():
        os.chmod(path, m.mode)  # after chown, which clears the set-user-ID bit
    for key, value in m.pax_headers.items():
        if key.startswith(XATTR_PAX):
            os.setxattr(path, key[len(XATTR_PAX):], value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False)
    if not m.isdir():
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
