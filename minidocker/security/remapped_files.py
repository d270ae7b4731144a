"""The files a remapped container's root must own (chapter 08, user namespaces: userns.py).

Seen from a user namespace, a file owned by host root belongs to nobody, and root inside may not
write it. So, as Docker does for `dockerd --userns-remap`:

- each image layer gets a copy whose owners are shifted into the range, made once per remapping
  under $MINIDOCKER_ROOT/UID.GID/layers/ (Docker's /var/lib/docker/100000.100000/), and freed
  with the layer;
- the container's own files (its writable and init layers, /etc/hosts and the rest) are chowned
  to the mapped root when it starts.

(A module of its own: only a remapping engine imports it, and what it needs, shutil.)
"""

import os
import re
import shutil
import stat

from minidocker import store
from minidocker.security.userns import to_host


def remapped_layer(path: str, linux: dict) -> str:
    """A layer of the store ($ROOT/layers/HEX/diff) -> its copy owned by the mapped ids, under
    $ROOT/UID.GID/layers/HEX/diff (Docker's directory name: the host ids of container root),
    made on first use. A --rootfs directory is used as it is: its owner's business, as with runc."""
    layers = os.path.join(store.root(), "layers")
    if os.path.commonpath([path, layers]) != layers:
        return path
    uids, gids = linux["uidMappings"], linux["gidMappings"]
    remapped = os.path.join(store.root(), f"{to_host(0, uids)}.{to_host(0, gids)}")
    target = os.path.join(remapped, os.path.relpath(path, store.root()))
    if os.path.isdir(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.chmod(remapped, 0o700)  # as Docker's: only host root looks inside
    partial = f"{target}.tmp-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        copy_shifted(path, partial, lambda uid: to_host(uid, uids), lambda gid: to_host(gid, gids))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # no half copy is ever taken for a layer
        raise
    try:
        os.rename(partial, target)  # whole or not at all: a second engine's copy may have won
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def remove_copies_of_gone_layers() -> None:
    """After the layer store's garbage collection: the remapped copies of the layers it took away
    ($ROOT/UID.GID/layers/HEX, every remapping's), which no container can use any more (a
    container's layers stay in the store while it exists). Docker's rmi frees the remapped store's
    layer, since it is the only one there; here the copy must go with the layer it copies."""
    kept = set(os.listdir(os.path.join(store.root(), "layers")))
    for remapping in os.listdir(store.root()):
        copies = os.path.join(store.root(), remapping, "layers")
        if not re.fullmatch(r"\d+\.\d+", remapping) or not os.path.isdir(copies):
            continue
        for name in os.listdir(copies):
            if name.partition(".")[0] not in kept:  # HEX, or HEX.tmp-PID: a copy being made
                shutil.rmtree(os.path.join(copies, name), ignore_errors=True)


def shift_owner(path: str, st: os.stat_result, uid_of, gid_of) -> None:
    """Give `path`, the copy of a file whose lstat is `st`, the host's ids of its owner."""
    # --8<-- [start:ex-08-shift-ownership]
    # lchown `path` to uid_of(st.st_uid) and gid_of(st.st_gid) (the link itself, never its
    # target); then, unless it is a symlink, chmod it back to st's permission bits.
    #
    # The chmod is not idle: chown(2) clears the setuid and setgid bits (a file must not stay
    # setuid for a new owner), and busybox's su would lose its own. A symlink has no mode.
    os.lchown(path, uid_of(st.st_uid), gid_of(st.st_gid))
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode))
    # --8<-- [end:ex-08-shift-ownership]


def copy_shifted(src: str, dst: str, uid_of, gid_of) -> None:
    """Copy the tree `src` to `dst` as it is (hard links, symlinks, whiteouts, xattrs such as
    trusted.overlay.opaque, times) but with every owner shifted by uid_of/gid_of."""
    links: dict[tuple[int, int], str] = {}

    def copy(s: str, d: str, st: os.stat_result) -> None:
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            os.mkdir(d, 0o700)
            for entry in os.scandir(s):
                copy(entry.path, os.path.join(d, entry.name), entry.stat(follow_symlinks=False))
        elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
            os.link(links[st.st_dev, st.st_ino], d)  # one inode, one copy: the layer stays the same size
            return
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(s), d)
        elif kind == stat.S_IFREG:
            shutil.copyfile(s, d, follow_symlinks=False)
            links[st.st_dev, st.st_ino] = d
        else:  # a whiteout (character device 0/0), a fifo, a device node
            os.mknod(d, st.st_mode, st.st_rdev)
        for name in os.listxattr(s, follow_symlinks=False):
            os.setxattr(d, name, os.getxattr(s, name, follow_symlinks=False), follow_symlinks=False)
        shift_owner(d, st, uid_of, gid_of)
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    copy(src, dst, os.lstat(src))


def prepare(spec: dict, container_dir: str) -> None:
    """At start, on the host, for a spec with uidMappings: what the mapped root must own or reach
    (Docker does it at create).

    - the writable layer (upper, work) and the init layer: root's, so root inside may write "/";
    - the files the engine binds in from the container's directory (/etc/hosts...), and the top
      directory of a volume the engine made;
    - search (x) permission for others on the store's directories down to the container's, as
      dockerd sets 0701 on its root: the runtime resolves the rootfs and bind sources as the mapped
      root, which is nobody special on the host.
    """
    uid, gid = to_host(0, spec["linux"]["uidMappings"]), to_host(0, spec["linux"]["gidMappings"])
    path = os.path.abspath(container_dir)
    top = os.path.dirname(os.path.abspath(store.root()))
    while path != top and path != "/":
        os.chmod(path, os.stat(path).st_mode & 0o7777 | 0o001)
        path = os.path.dirname(path)
    overlay = spec.get("minidocker", {}).get("overlay")
    if overlay:
        for d in (overlay["upperdir"], overlay["workdir"]):
            os.lchown(d, uid, gid)
        init = overlay["lowerdirs"][0]
        for where, dirs, files in os.walk(init):
            for name in [where] + [os.path.join(where, n) for n in dirs + files]:
                os.lchown(name, uid, gid)
    volumes = os.path.join(store.root(), "volumes")
    for mount in spec.get("mounts", ()):
        source = mount.get("source") or ""
        if source.startswith(container_dir + os.sep) and os.path.exists(source):
            os.lchown(source, uid, gid)
        elif source.startswith(volumes + os.sep) and os.path.isdir(source) and os.stat(source).st_uid == 0:
            # A volume's top directory, as the engine made it: its root's, so that root inside may
            # write it (dockerd makes it so in its remapped store). Its content is the container's.
            os.lchown(source, uid, gid)
