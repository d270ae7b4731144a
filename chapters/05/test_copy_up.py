"""Chapter 05: copy-up on first use. An empty volume mounted over a directory of the image starts as
an exact copy of it: owners, modes, times, symlinks, hard links, xattrs (docs/05-volumes.md#copy-up).

API-level: minidocker.volume.copyup.fill reads the image's directory through the layers (and the
container's upper directory) with chapter 02's union model, as the engine calls it before a start."""

import os
import stat
import tempfile

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker.unionfs.model import OPAQUE_XATTR, make_whiteout
from minidocker.volume import copyup

DOCS = "docs/05-volumes.md#copy-up"
EXERCISE = "docs/05-volumes.md#ex-05-copy-up"


@pytest.fixture
def area(rootfs_area):
    harness.need_root()
    # A tmpfs of the session's own: fast. It holds trusted.* xattrs (root's), but user.* ones only
    # from Linux 6.6 on: Debian 12's 6.1 refuses them with EOPNOTSUPP.
    return rootfs_area


def snapshot(top: str) -> tuple[dict, set]:
    """Everything that makes a tree the same tree: per path its type, mode, owner, content or
    link target, mtime and xattrs; and which paths are hard links of one another."""
    entries, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st_ = os.lstat(path)
            if stat.S_ISREG(st_.st_mode):
                with open(path, "rb") as f:
                    body = f.read()
            elif stat.S_ISLNK(st_.st_mode):
                body = os.readlink(path)
            else:
                body = None
            xattrs = {a: os.getxattr(path, a, follow_symlinks=False) for a in os.listxattr(path, follow_symlinks=False)}
            entries[rel] = (stat.filemode(st_.st_mode), st_.st_uid, st_.st_gid, body,
                            None if stat.S_ISDIR(st_.st_mode) else st_.st_mtime_ns, xattrs)
            if not stat.S_ISDIR(st_.st_mode):
                inodes.setdefault(st_.st_ino, set()).add(rel)
    return entries, {frozenset(group) for group in inodes.values() if len(group) > 1}


def empty_volume(area: str) -> str:
    return tempfile.mkdtemp(prefix="md-vol-", dir=area)


# A random tree: (path, kind, mode, uid, body). Paths may clash or sit under a file: those are skipped.
ENTRY = st.tuples(st.lists(st.sampled_from("abc"), min_size=1, max_size=3).map("/".join),
                  st.sampled_from(["file", "dir", "symlink", "hardlink", "fifo"]),
                  st.integers(0, 0o7777), st.integers(0, 2000), st.binary(max_size=16))


def build(top: str, entries) -> None:
    files = []
    for i, (rel, kind, mode, uid, body) in enumerate(entries):
        path = os.path.join(top, rel)
        if os.path.lexists(path) or not os.path.isdir(os.path.dirname(path)) or os.path.islink(os.path.dirname(path)):
            continue
        if kind == "file" or (kind == "hardlink" and not files):
            with open(path, "wb") as f:
                f.write(body)
            os.setxattr(path, "trusted.md", body or b"-")
            files.append(path)
        elif kind == "hardlink":
            os.link(files[uid % len(files)], path)
            continue  # the same inode: its owner and mode are the first name's
        elif kind == "dir":
            os.mkdir(path)
        elif kind == "symlink":
            os.symlink(body.hex() or "../up", path)
        else:
            os.mkfifo(path)
        os.chown(path, uid, uid + 1, follow_symlinks=False)
        if kind != "symlink":
            os.chmod(path, mode)
        os.utime(path, ns=(10**9 * i, 10**9 * (i + 7)), follow_symlinks=False)


@settings(max_examples=25)
@given(entries=st.lists(ENTRY, max_size=14), root_mode=st.sampled_from([0o755, 0o1777, 0o700, 0o2750]))
def test_copy_up_preserves_a_random_tree(area, entries, root_mode):
    layer = tempfile.mkdtemp(prefix="md-layer-", dir=area)
    image_dir = os.path.join(layer, "srv", "app")
    os.makedirs(image_dir)
    build(image_dir, entries)
    os.chown(image_dir, 70, 71)
    os.chmod(image_dir, root_mode)
    volume = empty_volume(area)
    try:
        copyup.fill(volume, [layer], "/srv/app")
        assert snapshot(volume) == snapshot(image_dir), (
            f"the volume must be an exact copy of the image's directory: types, modes, owners, content, "
            f"symlinks, hard links, mtimes, xattrs ({EXERCISE})")
        top = os.lstat(volume)
        assert (top.st_uid, top.st_gid, stat.S_IMODE(top.st_mode)) == (70, 71, root_mode), (
            f"the volume's root takes the owner and mode of the image's directory, as Docker's copy does ({DOCS})")
    finally:
        _remove(layer, volume)


def test_copy_up_reads_the_merged_view_of_layers_and_upper(area):
    lower, middle, upper = (tempfile.mkdtemp(prefix=f"md-{n}-", dir=area) for n in ("lower", "middle", "upper"))
    volume = empty_volume(area)
    try:
        for layer, files in ((lower, {"a": "1", "b": "b", "sub/x": "x"}), (middle, {"a": "2", "sub/y": "y"}), (upper, {"c": "c"})):
            for rel, text in files.items():
                os.makedirs(os.path.join(layer, "data", os.path.dirname(rel)), exist_ok=True)
                with open(os.path.join(layer, "data", rel), "w") as f:
                    f.write(text)
        os.setxattr(os.path.join(middle, "data", "sub"), OPAQUE_XATTR, b"y")  # rm -r sub; mkdir sub
        make_whiteout(os.path.join(upper, "data", "b"))  # the container deleted b
        copyup.fill(volume, [upper, middle, lower], "/data")
        found = {rel: open(os.path.join(volume, rel)).read() for rel in ("a", "c", "sub/y") if os.path.exists(os.path.join(volume, rel))}
        assert found == {"a": "2", "c": "c", "sub/y": "y"}, f"the top-most layer wins, the upper dir first: {found} ({DOCS})"
        assert not os.path.lexists(os.path.join(volume, "b")), f"a whiteout hides b: it is not copied ({DOCS})"
        assert not os.path.exists(os.path.join(volume, "sub", "x")), f"an opaque dir hides the lower sub/x ({DOCS})"
        assert OPAQUE_XATTR not in os.listxattr(os.path.join(volume, "sub")), "overlayfs's own xattrs are not copied"
    finally:
        _remove(lower, middle, upper, volume)


@pytest.mark.parametrize("link", ["/etc", "../../../../etc", "/srv/../etc"])
def test_a_symlinked_target_is_followed_inside_the_image_never_on_the_host(area, link):
    layer = tempfile.mkdtemp(prefix="md-layer-", dir=area)
    volume = empty_volume(area)
    try:
        os.makedirs(os.path.join(layer, "etc"))
        with open(os.path.join(layer, "etc", "md-image-only"), "w") as f:
            f.write("image")
        os.symlink(link, os.path.join(layer, "data"))
        copyup.fill(volume, [layer], "/data")
        assert os.listdir(volume) == ["md-image-only"], (
            f"/data -> {link} is the image's /etc, never the host's: the volume got {sorted(os.listdir(volume))[:5]} ({DOCS})")
    finally:
        _remove(layer, volume)


def test_only_an_empty_volume_over_a_directory_is_filled(area):
    layer = tempfile.mkdtemp(prefix="md-layer-", dir=area)
    volumes = [empty_volume(area) for _ in range(4)]
    try:
        os.makedirs(os.path.join(layer, "data"))
        with open(os.path.join(layer, "data", "seed"), "w") as f:
            f.write("seed")
        with open(os.path.join(layer, "file"), "w") as f:
            f.write("a file")
        used, over_file, over_nothing, killed = volumes
        with open(os.path.join(used, "mine"), "w") as f:
            f.write("the user's")
        copyup.fill(used, [layer], "/data")
        assert os.listdir(used) == ["mine"], f"a volume that holds anything is never filled again ({DOCS})"
        copyup.fill(over_file, [layer], "/file")
        copyup.fill(over_nothing, [layer], "/nowhere")
        assert os.listdir(over_file) == os.listdir(over_nothing) == [], f"only a directory of the image is copied ({DOCS})"
        os.mkdir(os.path.join(killed, copyup.STAGING + "dead"))  # a copy killed half-way
        copyup.fill(killed, [layer], "/data")
        assert os.listdir(killed) == ["seed"], f"a killed copy's staging dir counts as empty and is replaced ({DOCS})"
    finally:
        _remove(layer, *volumes)


def _remove(*paths: str) -> None:
    import shutil

    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
