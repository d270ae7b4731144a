"""The directory a layer is applied onto (changeset.apply), seen two ways.

- `Preview`: the target as the layer *will* leave it, computed entry by entry without writing a
  byte. `apply` walks the whole layer over a Preview first, so that every entry that can be
  refused is refused before anything changes.
- `Disk`: the real target. It keeps what it needs to undo every write (a journal, and a trash
  directory for what the layer deletes), so that a layer that fails half-way, on a full disk or
  on an xattr the filesystem refuses, still leaves the target as it was.

Both answer the same questions (what is at this name? what does this directory hold?), so one
function, `resolve`, finds names in both, and `apply` runs the same walk over both. Nothing else
may write into the target meanwhile (an engine applies a layer to a directory of its own): a
path resolved here is safe only as long as no one else turns a directory in it into a symlink.
See docs/02-unionfs.md#safety.
"""

import errno
import os
import shutil
import stat
import tempfile

from minidocker.unionfs.model import OPAQUE_XATTR

DIR, FILE, LINK = "dir", "file", "link"  # what `kind` answers; None when nothing is there
MAXSYMLINKS = 40  # the kernel gives up after 40 symlinks in one lookup (ELOOP); so do we


# --8<-- [start:resolve]
def resolve(name: str, fs) -> str:
    """The real name, inside the target, of the tar name `name`: every symlink among its parent
    directories replaced by what it points to, read as the container will read it, with the
    target as "/". An absolute target starts again at the target, and ".." stops there, so no
    name and no symlink can lead outside. The last component is never followed: an entry
    replaces a symlink, it does not write through it. The answer's parents are real directories
    (or names not made yet), so the kernel meets no symlink when we hand it that path."""
    todo = [p for p in name.split("/") if p not in ("", ".")]
    last = todo.pop() if todo else ""
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            done = done[:-1]  # at the target's root, ".." is the root itself, as at "/"
            continue
        here = "/".join([*done, part])
        kind = fs.kind(here)
        if kind == LINK:
            hops += 1
            if hops > MAXSYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name)
            link = fs.readlink(here)
            if link.startswith("/"):
                done = []
            todo = [p for p in link.split("/") if p not in ("", ".")] + todo
        elif kind in (DIR, None):  # None: a directory that the entry will make
            done.append(part)
        else:
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), here)
    return "/".join([*done, last]) if last else "/".join(done)
# --8<-- [end:resolve]


def parents(name: str) -> list[str]:
    """"a/b/c" -> ["a", "a/b"]: the directories above a name, top first."""
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))] if name else []


def _lstat_kind(path: str):
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return DIR if stat.S_ISDIR(mode) else LINK if stat.S_ISLNK(mode) else FILE


class Preview:
    """The target after the entries so far, on paper: what the layer wrote (`layer`), over what
    the disk holds, minus what the layer deleted or replaced (`hidden`, with all it contained)."""

    def __init__(self, root: str):
        self.root = root
        self.layer: dict[str, tuple] = {}  # real name -> (kind, link text)
        self.hidden: set[str] = set()

    def _lookup(self, name: str) -> tuple:
        if name in self.layer:
            return self.layer[name]
        if not self._shows_disk(name):
            return None, None
        path = os.path.join(self.root, name)
        kind = _lstat_kind(path)
        return kind, os.readlink(path) if kind == LINK else None

    def kind(self, name: str):
        return self._lookup(name)[0]

    def readlink(self, name: str) -> str:
        return self._lookup(name)[1]

    def _shows_disk(self, name: str) -> bool:
        """Does what the disk holds at `name` still count (nothing above it deleted or replaced)?"""
        return name not in self.hidden and not any(p in self.hidden for p in parents(name))

    def listdir(self, name: str) -> list[str]:
        names = {n.rpartition("/")[2] for n in self.layer if n and n.rpartition("/")[0] == name}
        path = os.path.join(self.root, name)
        if self._shows_disk(name) and _lstat_kind(path) == DIR:
            names |= {n for n in os.listdir(path) if self._shows_disk(os.path.join(name, n))}
        return sorted(names)

    def remove(self, name: str) -> None:
        self.hidden.add(name)
        for mine in [n for n in self.layer if n == name or n.startswith(name + "/")]:
            del self.layer[mine]

    def make_parents(self, name: str) -> None:
        for parent in parents(name):
            if self.kind(parent) is None:
                self.layer[parent] = (DIR, None)

    def put(self, name: str, m, source: str | None) -> None:
        if m.isdir() and self.kind(name) == DIR:
            return  # a directory over a directory: the two merge
        if self.kind(name) is not None:
            self.remove(name)
        self.layer[name] = (DIR, None) if m.isdir() else (LINK, m.linkname) if m.issym() else (FILE, None)

    def set_time(self, name: str, mtime: float) -> None:
        pass

    def set_opaque(self, name: str) -> None:
        pass


class Disk:
    """The real target. Every change first records how to undo itself (`undo`, newest last);
    what the layer deletes is moved into a trash directory inside the target (same filesystem:
    a rename, no copy) and only really deleted by `commit`."""

    TRASH_PREFIX = ".md-apply-"

    def __init__(self, root: str, tar):
        self.root, self.tar = root, tar
        self.undo: list = []
        self.kept: set[str] = set()
        self.trash: str | None = None

    def path(self, name: str) -> str:
        return os.path.join(self.root, name) if name else self.root

    def kind(self, name: str):
        return _lstat_kind(self.path(name))

    def readlink(self, name: str) -> str:
        return os.readlink(self.path(name))

    def listdir(self, name: str) -> list[str]:
        trash = os.path.basename(self.trash or "")
        return sorted(n for n in os.listdir(self.path(name)) if not (name == "" and n == trash))

    # --8<-- [start:undo]
    def keep(self, name: str) -> None:
        """Save a directory's owner, mode, xattrs and times before the first change in or on it
        (adding or removing an entry changes its mtime), so that `roll_back` can put them back."""
        if name in self.kept:
            return
        self.kept.add(name)
        path = self.path(name)
        st, xattrs = os.lstat(path), _xattrs(path)

        def restore():
            for key in _xattrs(path):
                if key not in xattrs:
                    os.removexattr(path, key, follow_symlinks=False)
            for key, value in xattrs.items():
                if os.getxattr(path, key, follow_symlinks=False) != value:
                    os.setxattr(path, key, value, follow_symlinks=False)
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
            os.chmod(path, stat.S_IMODE(st.st_mode))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        self.undo.append(restore)

    def created(self, name: str) -> None:
        """A new entry: undone by deleting it (a directory is empty again by then)."""
        path = self.path(name)
        self.undo.append(lambda: os.rmdir(path) if _lstat_kind(path) == DIR else os.unlink(path))

    def remove(self, name: str) -> None:
        """Delete an entry (and all it holds) by moving it into the trash; undone by moving it back."""
        if self.trash is None:
            self.keep("")
            self.trash = tempfile.mkdtemp(prefix=self.TRASH_PREFIX, dir=self.root)
            self.undo.append(lambda: os.rmdir(self.trash))
        self.keep(os.path.dirname(name))
        path, away = self.path(name), os.path.join(self.trash, str(len(self.undo)))
        os.rename(path, away)
        self.undo.append(lambda: os.rename(away, path))

    def roll_back(self) -> list[str]:
        """Undo every change, newest first. Returns the undo steps that failed (none, normally)."""
        failed = []
        for step in reversed(self.undo):
            try:
                step()
            except OSError as e:
                failed.append(str(e))
        self.undo.clear()
        return failed

    def commit(self) -> None:
        """The layer is applied: now really delete what it deleted."""
        if self.trash:
            shutil.rmtree(self.trash)
        self.undo.clear()
    # --8<-- [end:undo]

    def make_parents(self, name: str) -> None:
        """A tar may leave out parent directories: make them as Docker does, mode 0755."""
        for parent in parents(name):
            if self.kind(parent) is None:
                self.keep(os.path.dirname(parent))
                os.mkdir(self.path(parent), 0o755)
                self.created(parent)

    def put(self, name: str, m, source: str | None) -> None:
        """Write the entry `m` at `name`, replacing what is there; `source` names a hard link's target."""
        path = self.path(name)
        if m.isdir() and self.kind(name) == DIR:
            self.keep(name)  # a directory over a directory: they merge, and the metadata changes
            _set_metadata(path, m)
            return
        if self.kind(name) is not None:
            self.remove(name)  # a file becomes a directory, a symlink a file...
        self.keep(os.path.dirname(name))
        if m.isreg():
            # O_EXCL|O_NOFOLLOW: a new file, never an old one nor one a symlink points to.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self.created(name)
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(self.tar.extractfile(m), f)
        elif m.isdir():
            os.mkdir(path, 0o700)
            self.created(name)
        elif m.issym():
            os.symlink(m.linkname, path)
            self.created(name)
        elif m.islnk():
            os.link(self.path(source), path, follow_symlinks=False)
            self.created(name)
            return  # a hard link shares its target's inode: nothing else to set
        elif m.isfifo():
            os.mkfifo(path, 0o600)
            self.created(name)
        else:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            self.created(name)
        _set_metadata(path, m)

    def set_time(self, name: str, mtime: float) -> None:
        self.keep(name)
        os.utime(self.path(name), (mtime, mtime), follow_symlinks=False)

    def set_opaque(self, name: str) -> None:
        """overlayfs's "hide what the layers below have here" (changeset.apply with markers)."""
        self.keep(name)
        os.setxattr(self.path(name), OPAQUE_XATTR, b"y", follow_symlinks=False)


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno != errno.EOPNOTSUPP:  # a filesystem without xattrs has none to keep
            raise
        keys = []
    return {key: os.getxattr(path, key, follow_symlinks=False) for key in keys}


XATTR_PAX = "SCHILY.xattr."  # how PAX tars (GNU tar --xattrs, Docker) carry extended attributes


def _set_metadata(path: str, m) -> None:
    os.chown(path, m.uid, m.gid, follow_symlinks=False)  # numeric ids: names mean nothing here
    if not m.issym():
        os.chmod(path, stat.S_IMODE(m.mode))  # after chown, which clears the set-user-ID bit
    for key, value in m.pax_headers.items():
        if key.startswith(XATTR_PAX):
            os.setxattr(path, key[len(XATTR_PAX):], value.encode("utf-8", "surrogateescape"),
                        follow_symlinks=False)
    if not m.isdir():
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
