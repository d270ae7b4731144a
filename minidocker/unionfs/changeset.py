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
resolves every name inside its target (target.py), and walks the whole layer on paper before it
writes anything: a layer it refuses, or that fails half-way, leaves the target as it was.
See docs/02-unionfs.md#changesets.
"""

import contextlib
import errno
import math
import os
import shutil
import stat
import tarfile
import tempfile

from minidocker.errors import MinidockerError
from minidocker.unionfs.model import OVERLAY_XATTRS, is_opaque, is_whiteout
from minidocker.unionfs.target import DIR, XATTR_PAX, Disk, Preview, parents, resolve

WHITEOUT = ".wh."  # the prefix of a deleted name in a layer tar
OPAQUE = ".wh..wh..opq"  # "the lower layers' entries of this directory are gone"


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

def apply(fileobj, target: str, markers: bool = False) -> None:
    """Apply an OCI layer tar (plain or gzip) onto the directory `target`, as the image spec says:
    entries are written over what is there, and whiteouts delete from what was there. A layer
    that is refused, or that fails half-way, leaves `target` exactly as it was.

    With `markers`, `target` is an empty directory that becomes one layer of an overlay stack
    (an image's layer, chapter 03): there is nothing below to delete, so the whiteouts are kept,
    written in overlayfs's format (a 0:0 device, the opaque xattr), for the kernel to apply."""
    target = os.path.abspath(target)
    if not os.path.isdir(target):
        raise MinidockerError(f"cannot apply a layer onto {target!r}: not a directory", "make the directory first")
    tar, members = _read_headers(fileobj)
    with tar:
        # --8<-- [start:two-passes]
        # Pass 1, on paper: the whole layer over a Preview of the target. Every entry that can be
        # refused is refused here, before a single byte is written.
        _walk(members, Preview(target), markers)
        # Pass 2, for real. What can only fail now (a full disk, an xattr the filesystem
        # refuses, data cut short) is undone, entry by entry, newest first.
        disk = Disk(target, tar)
        try:
            _walk(members, disk, markers)
        except BaseException as e:
            failed = disk.roll_back()
            if failed:
                raise MinidockerError(f"{e}; undoing the layer failed too: {failed[0]}",
                                      f"{target} is half-applied: delete it") from e
            raise
        disk.commit()  # only now is what the layer deleted really deleted
        # --8<-- [end:two-passes]


def _read_headers(fileobj) -> tuple[tarfile.TarFile, list[tarfile.TarInfo]]:
    """Open the layer and read every header; the data stays in the file until pass 2 needs it."""
    if not fileobj.seekable():  # two passes over the tar need a file we can rewind
        spool = tempfile.TemporaryFile()
        shutil.copyfileobj(fileobj, spool)
        spool.seek(0)
        fileobj = spool
    tar = None
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:*")
        return tar, tar.getmembers()  # a member cut short fails here ("unexpected end of data")
    except Exception as e:  # tarfile.ReadError, and gzip's, zlib's or lzma's own errors
        if tar:
            tar.close()
        raise MinidockerError(f"the layer is not a readable tar archive: {str(e).splitlines()[0]}", MALFORMED) from e


def _name(m: tarfile.TarInfo) -> str:
    """The member's name without "./" and trailing "/"; "" for the layer's root."""
    name = os.path.normpath(m.name)
    return "" if name == "." else name


# --8<-- [start:walk]
def _walk(members: list[tarfile.TarInfo], fs, markers: bool = False) -> None:
    """The entries in the tar's order, onto `fs`: a Preview (pass 1) or the Disk (pass 2). Every
    name is resolved again inside the target at the moment it is used: an earlier entry may have
    made one of its parents a symlink."""
    mine = set()  # what the layer wrote, and the parents of that: whiteouts never delete it
    dirs = []  # directories, whose times are set last (writing into one changes its mtime)
    for m in members:
        with _naming(m):
            _check(m)
            _entry(m, fs, mine, dirs, markers)
    for name, real, m in dirs:
        with _naming(m):
            try:
                still = resolve(name, fs) == real and fs.kind(real) == DIR
            except OSError:
                still = False  # a later entry turned a parent into a symlink loop
            if still:  # not if a later entry replaced the directory, or a parent of it
                fs.set_time(real, m.mtime)


def _entry(m: tarfile.TarInfo, fs, mine: set, dirs: list, markers: bool) -> None:
    name = _name(m)
    parent, base = os.path.dirname(name), os.path.basename(name)
    if markers and base.startswith(WHITEOUT):
        _overlay_marker(m, fs, mine, parent, base)
    elif base == OPAQUE:  # delete what the layers below have in the directory
        directory = _resolve_existing(parent, fs)  # (a symlink there is not a directory: no)
        if directory is not None and fs.kind(directory) == DIR:
            for entry in fs.listdir(directory):
                if os.path.join(directory, entry) not in mine:
                    fs.remove(os.path.join(directory, entry))
    elif base.startswith(WHITEOUT):  # delete one name, if the layers below have it
        real = _resolve_existing(os.path.join(parent, base[len(WHITEOUT):]), fs)
        if real is not None and real not in mine and fs.kind(real) is not None:
            fs.remove(real)
    elif name:
        real = resolve(name, fs)
        _fits(m, fs.root, real)
        source = _hard_link_source(m, fs, real) if m.islnk() else None
        fs.make_parents(real)  # a tar may leave out parent directories
        fs.put(real, m, source)
        mine.update([real, *parents(real)])
        if m.isdir():
            dirs.append((name, real, m))
# --8<-- [end:walk]


# --8<-- [start:overlay-markers]
def _overlay_marker(m: tarfile.TarInfo, fs, mine: set, parent: str, base: str) -> None:
    """A deletion, kept for overlayfs to apply to the layers below: `.wh..wh..opq` becomes the
    opaque xattr on its directory, `.wh.NAME` a 0:0 character device named NAME (what overlayfs
    itself writes in an upper directory, chapter 02)."""
    directory = resolve(parent, fs)
    fs.make_parents(os.path.join(directory, base))  # the directory, if the layer left it out
    if base == OPAQUE:
        fs.set_opaque(directory)
        return
    real = resolve(os.path.join(parent, base[len(WHITEOUT):]), fs)
    if real not in mine and fs.kind(real) is None:  # what the layer itself writes stays
        device = tarfile.TarInfo(m.name)
        device.type, device.mode, device.uid, device.gid, device.mtime = tarfile.CHRTYPE, 0, m.uid, m.gid, m.mtime
        fs.put(real, device, None)
# --8<-- [end:overlay-markers]


def _resolve_existing(name: str, fs) -> str | None:
    """resolve(name), or None when a parent is not a directory: then there is nothing to delete."""
    try:
        return resolve(name, fs)
    except NotADirectoryError:
        return None


def _hard_link_source(m: tarfile.TarInfo, fs, real: str) -> str:
    source = resolve(os.path.normpath(m.linkname), fs)
    kind = fs.kind(source)
    if kind is None:  # a whiteout's marker, say: it is never written
        raise _refuse(m, f"hard link to {m.linkname!r}, which does not exist", MALFORMED)
    if kind == DIR:
        raise _refuse(m, f"hard link to the directory {m.linkname!r}", MALFORMED)
    if source == real or source.startswith(real + "/"):
        raise _refuse(m, f"hard link to {m.linkname!r}, which the entry itself replaces", MALFORMED)
    _fits(m, fs.root, source)
    return source


ESCAPE = "the layer tries to reach outside its directory; do not use this image"
MALFORMED = "the layer is malformed; rebuild or re-pull the image"
NOT_APPLIED = "nothing of the layer was applied"
PATH_MAX = os.pathconf("/", "PC_PATH_MAX")  # 4096 on Linux, the final NUL included
XATTR_NAME_MAX, XATTR_SIZE_MAX = 255, 65536  # the kernel's limits (linux/limits.h)
XATTR_NAMESPACES = ("user.", "trusted.", "security.", "system.")  # the others: EOPNOTSUPP


def _refuse(m: tarfile.TarInfo, why: str, hint: str = ESCAPE) -> MinidockerError:
    return MinidockerError(f"refusing layer entry {m.name!r}: {why}", hint)


@contextlib.contextmanager
def _naming(m: tarfile.TarInfo):
    """Whatever fails on an entry becomes one MinidockerError that names the entry."""
    try:
        yield
    except MinidockerError:
        raise
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENAMETOOLONG):  # from resolving a name
            raise _refuse(m, f"{e.strerror}: {e.filename!r}", MALFORMED) from e
        raise MinidockerError(f"cannot apply layer entry {m.name!r}: {e.strerror}", NOT_APPLIED) from e
    except Exception as e:  # tarfile.ReadError when the data is cut short, say
        raise MinidockerError(f"cannot apply layer entry {m.name!r}: {e}", NOT_APPLIED) from e


# --8<-- [start:check]
def _check(m: tarfile.TarInfo) -> None:
    """Refuse an entry that no target could take, whatever it holds: a name that points outside,
    and what the kernel would refuse half-way through (NUL bytes, numbers out of range...)."""
    if not (m.isreg() or m.isdir() or m.issym() or m.islnk() or m.isdev()):
        raise _refuse(m, f"unsupported entry type {m.type!r}", MALFORMED)
    if "\0" in m.name or "\0" in m.linkname:  # a C string ends at NUL: the kernel would cut it
        raise _refuse(m, "a NUL byte in the name", MALFORMED)
    if m.name.startswith("/"):
        raise _refuse(m, "absolute name")
    if ".." in m.name.split("/"):
        raise _refuse(m, "'..' in the name")
    if os.path.basename(_name(m)) in (WHITEOUT, WHITEOUT + ".", WHITEOUT + ".."):
        raise _refuse(m, "a whiteout of a directory above the layer")
    # A symlink's text is not checked for where it points: "../../../etc/os-release" is fine,
    # since every name is resolved inside the target (see resolve). Only its length matters.
    if m.issym() and not 0 < len(os.fsencode(m.linkname)) < PATH_MAX:
        raise _refuse(m, f"a symlink's target must be 1 to {PATH_MAX - 1} bytes long", MALFORMED)
    if any(k.startswith(XATTR_PAX + OVERLAY_XATTRS) for k in m.pax_headers):
        # overlayfs's own xattrs (opaque, redirect, metacopy) steer how it looks up the layers
        # below: from a stranger's layer they could make a file appear where it does not belong.
        raise _refuse(m, "overlayfs's private extended attributes (trusted.overlay.*)", MALFORMED)
    if m.islnk():  # a hard link names another entry of the layer: the same rules as a name
        link = os.path.normpath(m.linkname)
        if m.linkname.startswith("/") or link == ".." or link.startswith("../"):
            raise _refuse(m, f"hard link to {m.linkname!r} points outside the layer")
    if not (0 <= m.uid < 2**32 - 1 and 0 <= m.gid < 2**32 - 1):  # (-1 means "leave it")
        raise _refuse(m, f"owner {m.uid}:{m.gid} is out of range", MALFORMED)
    if not (math.isfinite(m.mtime) and -2**63 < m.mtime < 2**63):  # a time_t
        raise _refuse(m, f"time {m.mtime} is out of range", MALFORMED)
    if (m.ischr() or m.isblk()) and not (0 <= m.devmajor < 2**12 and 0 <= m.devminor < 2**20):
        raise _refuse(m, f"device {m.devmajor}:{m.devminor} is out of range", MALFORMED)
    for key, value in m.pax_headers.items():
        xattr = key[len(XATTR_PAX):]
        if key.startswith(XATTR_PAX) and not (
                xattr.startswith(XATTR_NAMESPACES) and "\0" not in xattr
                and len(os.fsencode(xattr)) <= XATTR_NAME_MAX
                and len(value.encode("utf-8", "surrogateescape")) <= XATTR_SIZE_MAX):
            raise _refuse(m, f"extended attribute {xattr!r} is invalid", MALFORMED)


def _fits(m: tarfile.TarInfo, root: str, real: str) -> None:
    """The kernel's limits on a name (NAME_MAX, per filesystem) and on a path (PATH_MAX)."""
    name_max = os.statvfs(root).f_namemax
    if any(len(os.fsencode(part)) > name_max for part in real.split("/")):
        raise _refuse(m, f"a name longer than {name_max} bytes", MALFORMED)
    if len(os.fsencode(os.path.join(root, real))) >= PATH_MAX:
        raise _refuse(m, f"{PATH_MAX} bytes or more once inside {root!r}", MALFORMED)
# --8<-- [end:check]
