"""Copy-up on first use: an empty volume mounted over a directory of the image starts as a copy of
that directory, as Docker does it (docs/05-volumes.md#copy-up).

    image:   /var/lib/app/ (owner app, mode 0750)     volume "data": empty
    docker run -v data:/var/lib/app IMAGE
    volume:  the image's /var/lib/app, copied in: the same files, owners, modes, times,
             symlinks, hard links and xattrs; the volume's root takes the directory's owner and mode

So a database image whose /var/lib/postgresql holds an initial cluster works with a fresh volume:
without the copy, the empty volume would hide the image's files. The copy is made once: a volume
that holds anything (even a file the user put there) is left as it is. It never happens for a
bind mount (the host's directory is the user's, not to be written), nor with `nocopy`.

The image's directory is read from the container's layers through chapter 02's union model: the
container's upper directory (what it changed) first, then the image's layers, top-most first. A
symlink in the path is followed *inside* the image, never on the host.
"""

import errno
import fcntl
import os
import stat

from minidocker.unionfs.model import OVERLAY_XATTRS, Union

STAGING = ".md-copyup-"  # the copy is built here inside the volume, then moved into place
MAX_SYMLINKS = 40  # the kernel's limit too (ELOOP)


def fill(volume_data_dir: str, lowerdirs: list[str], path_in_image: str) -> None:
    """Fill an empty volume with the image's directory `path_in_image` (e.g. "/var/lib/app"),
    read from `lowerdirs` (top-most first: the container's upper directory, then the image's
    layers). Nothing happens when the volume holds anything or the path is no directory there."""
    union = Union(lowerdirs)
    rel = resolve(union, path_in_image)
    if rel is None or not union.exists(rel) or not stat.S_ISDIR(union.lstat(rel).st_mode):
        return
    fd = os.open(volume_data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two containers starting with one volume copy once
        entries = os.listdir(volume_data_dir)
        leftovers = [e for e in entries if e.startswith(STAGING)]
        if len(entries) > len(leftovers):
            return  # not empty: the volume's own data wins, as in Docker
        for entry in leftovers:  # a copy that was killed half-way: start again
            _remove_tree(os.path.join(volume_data_dir, entry))
        # Built aside and moved in: a copy killed half-way is a staging directory, which the next
        # fill removes, not a half-filled volume that would count as "not empty" forever.
        staging = os.path.join(volume_data_dir, STAGING + os.urandom(6).hex())
        os.mkdir(staging, 0o700)
        copy_tree(union, rel, staging, {})
        for entry in os.listdir(staging):
            os.rename(os.path.join(staging, entry), os.path.join(volume_data_dir, entry))
        os.rmdir(staging)
        # Docker's copyOwnership: the volume's root becomes what the image's directory was.
        top = union.lstat(rel)
        os.chown(volume_data_dir, top.st_uid, top.st_gid)
        os.chmod(volume_data_dir, stat.S_IMODE(top.st_mode))
    finally:
        os.close(fd)


def resolve(union: Union, path: str) -> str | None:
    """`path` with every symlink followed inside the image, as the kernel would inside the
    container's root: an absolute link starts again at the image's root, and ".." stops at it.
    -> a path relative to the union's root ("" for the root), or None on a symlink loop."""
    todo = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []
    followed = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            done = done[:-1]  # the root's parent is the root
            continue
        real = union.real("/".join(done + [part]))
        if real is not None and os.path.islink(real):
            followed += 1
            if followed > MAX_SYMLINKS:
                return None
            target = os.readlink(real)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
            continue
        done.append(part)
    return "/".join(done)


def copy_tree(union: Union, rel: str, dest: str, links: dict) -> None:
    """Copy the entries of the union's directory `rel` into the existing directory `dest`.
    `links` maps (st_dev, st_ino) of a file already copied to its copy, for hard links."""
    for name in union.listdir(rel):
        copy_entry(union, os.path.join(rel, name) if rel else name, os.path.join(dest, name), links)


def copy_entry(union: Union, rel: str, dst: str, links: dict) -> None:
    """Copy one entry of the union (and, for a directory, all below it) to `dst`, which must not
    exist yet, keeping what makes it the same file: type, content, owner, mode, xattrs, times."""
    # --8<-- [start:ex-05-copy-up]
    # Copy what the union shows at `rel` (its real file in some layer) to `dst`: a directory with
    # all below it (copy_tree), a file's data (copy_data), a symlink's target, a device or fifo
    # (mknod). A second name of a file copied already (its st_dev, st_ino in `links`) becomes a
    # hard link to that copy. Then give `dst` the original's owner, mode, xattrs, times.
    real = union.real(rel)  # the layer's file that the merged view shows at `rel`
    st = os.lstat(real)
    key = (st.st_dev, st.st_ino)
    if not stat.S_ISDIR(st.st_mode) and key in links:
        os.link(links[key], dst)  # a second name of a file copied already: a hard link again
        return
    if stat.S_ISDIR(st.st_mode):
        os.mkdir(dst, 0o700)  # private until its mode is set, after its entries
        copy_tree(union, rel, dst, links)
    elif stat.S_ISREG(st.st_mode):
        copy_data(real, dst)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(real), dst)  # the link itself, never what it points to
    else:
        os.mknod(dst, st.st_mode, st.st_rdev)  # a device, fifo or socket
    if st.st_nlink > 1:
        links[key] = dst
    copy_metadata(real, st, dst)
    # --8<-- [end:ex-05-copy-up]


def copy_data(src: str, dst: str) -> None:
    import shutil  # only a copy-up needs it (a container start without one stays fast)

    shutil.copyfile(src, dst, follow_symlinks=False)  # sendfile(2): the kernel copies, not Python


# --8<-- [start:metadata]
def copy_metadata(real: str, st: os.stat_result, dst: str) -> None:
    # The order matters: chown clears the setuid and setgid bits and security.capability (the
    # kernel's guard against handing privileges to a new owner), so chown comes first, then the
    # mode and the xattrs; the times last, since every change before them sets ctime/mtime.
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):  # a symlink's mode is always 0777 on Linux
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    for name in os.listxattr(real, follow_symlinks=False):
        if name.startswith(OVERLAY_XATTRS):
            continue  # overlayfs's bookkeeping (an opaque marker), not the file's
        try:
            os.setxattr(dst, name, os.getxattr(real, name, follow_symlinks=False), follow_symlinks=False)
        except OSError as e:
            if e.errno != errno.EOPNOTSUPP:  # the volume's filesystem cannot hold this kind
                raise
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
# --8<-- [end:metadata]


def _remove_tree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
