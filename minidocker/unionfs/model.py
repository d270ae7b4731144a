"""A union filesystem you can read: overlayfs's rules, in plain Python, without a mount.

A container's root filesystem is a stack of directories. The image's layers are read-only and sit
at the bottom; one writable "upper" directory sits on top. Whoever looks at the stack sees a single
tree (the "union" or "merged" view), built by a handful of rules:

- **lookup**: a name is looked up from the top layer down, and the first layer that has it wins;
- **directories merge**: a directory present in several layers shows the entries of all of them;
- **whiteouts**: a deleted lower file is hidden by a *whiteout* in a higher layer (overlayfs uses a
  character device with device number 0:0);
- **opaque directories**: a directory marked opaque (xattr `trusted.overlay.opaque=y`) hides the
  directories of the same name below it: that is how "rm -r d; mkdir d" looks;
- **copy-up**: the lower layers are never written. Before a lower file is changed it is copied up
  into the upper layer, together with its parent directories, and changed there.

`Union` applies exactly these rules to real directories, writing the upper layer in the format the
kernel uses, so that the kernel could mount what the model wrote (chapters/02 checks that it
agrees with a real overlay mount after every step). See docs/02-unionfs.md.
"""

import errno
import os
import shutil
import stat

OPAQUE_XATTR = "trusted.overlay.opaque"  # "trusted." xattrs can only be read and set by root
OVERLAY_XATTRS = "trusted.overlay."  # overlayfs's private bookkeeping; never part of the data


def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs marks a deleted name with a character device whose device number is 0:0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(real: str) -> bool:
    try:
        return os.getxattr(real, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:  # ENODATA: no such xattr
        return False


def make_whiteout(real: str) -> None:
    # mknod(2) of a character device 0:0, mode 0000: exactly what overlayfs itself creates.
    os.mknod(real, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _error(code: int, path: str) -> OSError:
    """The OSError the kernel would give, e.g. [Errno 39] Directory not empty: 'a/b'."""
    return OSError(code, os.strerror(code), path)


class Union:
    """The merged view of read-only `lowers` (top-most first, as overlayfs's lowerdir= lists
    them) under a writable `upper` directory. Paths are relative to the union's root: "etc/passwd".
    Without an upper directory the union is read-only, like an image before a container starts."""

    def __init__(self, lowers: list[str], upper: str | None = None):
        self.upper = upper
        self.layers = ([upper] if upper else []) + list(lowers)

    # -----------------------------------------------------------------------------------------
    # Reading: lookup and listing

    def stack(self, path: str) -> list[str]:
        """The layers that make up `path`, top-most first: one layer for a file, one or more for
        a merged directory, none when `path` is not visible."""
        found = list(self.layers)  # the root directory merges every layer
        parts = _parts(path)
        for i in range(len(parts)):
            if not stat.S_ISDIR(os.lstat(os.path.join(found[0], *parts[:i])).st_mode):
                return []  # "a/b" where "a" is a file: ENOTDIR
            # A name inside a directory is only looked for in the layers of that directory.
            below, found = found, []
            # --8<-- [start:ex-02-lookup]
            # Walk the parent's layers top-down: a whiteout ends the search, a non-directory wins
            # only when nothing above it was found, a directory merges until one is opaque.
            for layer in below:
                real = os.path.join(layer, *parts[: i + 1])
                try:
                    st = os.lstat(real)
                except FileNotFoundError:
                    continue  # not in this layer: look further down
                if is_whiteout(st):
                    break  # deleted here: everything below is hidden
                if not stat.S_ISDIR(st.st_mode):
                    if not found:
                        found = [layer]  # the top-most file wins...
                    break  # ...and a file hides whatever lies below it, even under a directory
                found.append(layer)
                if is_opaque(real):
                    break  # an opaque directory hides the directories below it
            # --8<-- [end:ex-02-lookup]
            if not found:
                return []
        return found

    def real(self, path: str) -> str | None:
        """The real file that `path` shows (the top-most one), or None."""
        layers = self.stack(path)
        return os.path.join(layers[0], path) if layers else None

    def exists(self, path: str) -> bool:
        return self.real(path) is not None

    def _real(self, path: str) -> str:
        real = self.real(path)
        if real is None:
            raise _error(errno.ENOENT, path)
        return real

    def lstat(self, path: str) -> os.stat_result:
        return os.lstat(self._real(path))

    def listdir(self, path: str = "") -> list[str]:
        """Merge the entries of every layer of the directory; hide what lookup would not find."""
        names = set()
        for layer in self.stack(path):
            names.update(os.listdir(os.path.join(layer, path)))
        return sorted(n for n in names if self.exists(os.path.join(path, n)))

    def read(self, path: str) -> bytes:
        with open(self._real(path), "rb") as f:
            return f.read()

    def readlink(self, path: str) -> str:
        return os.readlink(self._real(path))

    def _in_lower(self, path: str) -> bool:
        """Would a lower layer still show `path` if the upper layer had nothing there? If so, a
        delete must leave a whiteout; if not, removing the upper entry is enough."""
        for layer in self.stack(os.path.dirname(path)):
            if layer == self.upper:
                continue
            try:
                return not is_whiteout(os.lstat(os.path.join(layer, path)))
            except FileNotFoundError:
                continue
        return False

    def _is_dir(self, path: str) -> bool:
        return stat.S_ISDIR(self.lstat(path).st_mode)

    # -----------------------------------------------------------------------------------------
    # Writing: every change goes to the upper layer, after a copy-up

    def _writable(self) -> str:
        if self.upper is None:
            raise _error(errno.EROFS, "/")
        return self.upper

    def copy_up(self, path: str) -> str:
        """Make sure `path` lives in the upper layer (copying it, and first its parents, from the
        layer that shows it), and return its upper path."""
        upper = self._writable()
        src = self._real(path)
        dst = os.path.join(upper, path)
        if src == dst:
            return dst  # already up
        # --8<-- [start:ex-02-copy-up]
        # Copy the parent directory up first (recursively), then this entry: a directory as an
        # empty directory (its entries stay below and merge), a file with its data, a symlink.
        self.copy_up(os.path.dirname(path))
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(dst)  # not opaque: the lower directory's entries still show through
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copyfile(src, dst, follow_symlinks=False)
        _copy_metadata(src, dst, st)
        # --8<-- [end:ex-02-copy-up]
        return dst

    def _check_parent(self, path: str) -> None:
        parent = os.path.dirname(path)
        if not self.exists(parent):
            raise _error(errno.ENOENT, path)
        if not self._is_dir(parent):
            raise _error(errno.ENOTDIR, path)

    def _parent_up(self, path: str) -> str:
        """Copy up the parent directory of `path`; return the upper path of `path` itself."""
        self._check_parent(path)
        return os.path.join(self.copy_up(os.path.dirname(path)), os.path.basename(path))

    # --8<-- [start:create]
    def _create(self, path: str) -> tuple[str, bool]:
        """Make room for a new entry: its upper path, and whether it replaces a whiteout."""
        if self.exists(path):
            raise _error(errno.EEXIST, path)
        dst = self._parent_up(path)
        # In the upper layer, a name that lookup cannot see can only be a whiteout.
        over_whiteout = os.path.lexists(dst)
        if over_whiteout:
            os.unlink(dst)
        return dst, over_whiteout

    def mkdir(self, path: str, mode: int = 0o777) -> None:
        dst, over_whiteout = self._create(path)
        os.mkdir(dst, mode)
        if over_whiteout:
            # A directory was deleted here; the new one must not merge with the old one below.
            os.setxattr(dst, OPAQUE_XATTR, b"y", follow_symlinks=False)
    # --8<-- [end:create]

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, self._create(path)[0])

    def write(self, path: str, data: bytes, append: bool = False) -> None:
        """open(path, "wb" or "ab") and write: creates, truncates or appends."""
        if not self.exists(path):
            dst = self._create(path)[0]
        elif self._is_dir(path):
            raise _error(errno.EISDIR, path)
        else:
            dst = self.copy_up(path)  # the kernel copies up on open for writing
        with open(dst, "ab" if append else "wb") as f:
            f.write(data)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(self.copy_up(path), mode)

    def unlink(self, path: str) -> None:
        if self._is_dir(path):
            raise _error(errno.EISDIR, path)
        self._remove(path)

    def rmdir(self, path: str) -> None:
        if not self._is_dir(path):
            raise _error(errno.ENOTDIR, path)
        if self.listdir(path):
            raise _error(errno.ENOTEMPTY, path)
        self._remove(path)

    def _remove(self, path: str) -> None:
        in_lower = self._in_lower(path)
        dst = self._parent_up(path)
        # --8<-- [start:ex-02-whiteout]
        # Remove the upper entry if there is one; if a lower layer still has the name, cover it
        # with a whiteout, or the deleted file would show through again.
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)  # an upper directory that looks empty holds at most whiteouts
        elif os.path.lexists(dst):
            os.unlink(dst)
        if in_lower:
            make_whiteout(dst)
        # --8<-- [end:ex-02-whiteout]

    # --8<-- [start:rename]
    def rename(self, src: str, dst: str) -> None:
        """rename(2) as overlayfs does it without the redirect_dir feature (minidocker mounts with
        it off, because a redirect cannot be written in an OCI layer): a directory that has lower
        layers cannot be moved, and rename fails with EXDEV, which makes `mv` copy it instead."""
        self._check_parent(dst)
        s = self.lstat(src)  # ENOENT
        if src == dst:
            return  # rename(2) onto itself does nothing
        if (dst + "/").startswith(src + "/"):
            raise _error(errno.EINVAL, dst)  # moving a directory into itself
        if (src + "/").startswith(dst + "/"):
            raise _error(errno.ENOTEMPTY, dst)  # replacing an ancestor of the source
        d = self.lstat(dst) if self.exists(dst) else None
        src_dir = stat.S_ISDIR(s.st_mode)
        if d and src_dir and not stat.S_ISDIR(d.st_mode):
            raise _error(errno.ENOTDIR, dst)
        if d and not src_dir and stat.S_ISDIR(d.st_mode):
            raise _error(errno.EISDIR, dst)
        if src_dir and self.stack(src) != [self._writable()]:
            raise _error(errno.EXDEV, src)  # a merged or lower directory: no redirects
        if d and stat.S_ISDIR(d.st_mode) and self.listdir(dst):
            raise _error(errno.ENOTEMPTY, dst)
        src_in_lower = self._in_lower(src)
        moving = self.copy_up(src)
        target = self._parent_up(dst)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)  # an empty directory, or one that holds only whiteouts
        elif os.path.lexists(target):
            os.unlink(target)  # a file, a symlink or a whiteout
        os.rename(moving, target)
        if src_in_lower:
            make_whiteout(moving)
        # A directory moved into a merged directory might land on a name that a lower layer
        # also has: it is marked opaque so that it never merges with that stranger.
        if src_dir and len(self.stack(os.path.dirname(dst))) > 1 and not is_opaque(target):
            os.setxattr(target, OPAQUE_XATTR, b"y", follow_symlinks=False)
    # --8<-- [end:rename]


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    """What a copy-up keeps besides the data: owner, mode, extended attributes, times."""
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which clears set-user-ID bits
    for name in os.listxattr(src, follow_symlinks=False):
        if not name.startswith(OVERLAY_XATTRS):
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
