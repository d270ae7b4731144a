"""Helpers for the chapter 02 suite: random layer stacks, building them on disk, and snapshots of a
visible tree (through a real mount, or through the model) that can be compared with ==."""

import contextlib
import itertools
import os
import stat

from hypothesis import strategies as st

from minidocker.unionfs import overlay
from minidocker.unionfs.model import OPAQUE_XATTR, is_opaque, is_whiteout, make_whiteout

LAYER_NAMES = "abc"  # few names, so that layers collide on the same paths all the time
NAMES = "abcde"  # the names operations use: those of the layers, and new ones
LINK_TARGETS = ["a", "b/../c", "/etc/passwd", "c/d", "."]  # none escapes: see test_changeset_safety
FILE_MODES = [0o644, 0o600, 0o755, 0o444]

# A layer is {path: entry}, an entry being ("file", mode, data), ("link", target), ("whiteout",)
# or ("dir", opaque). Paths come from a small set, so that layers collide at every depth; the
# parent directories of a path are made as needed.
PATHS = [p for n in (1, 2, 3) for p in map("/".join, itertools.product(LAYER_NAMES, repeat=n))]
_entry_kind = st.one_of(
    st.tuples(st.just("file"), st.sampled_from(FILE_MODES), st.binary(max_size=6)),
    st.tuples(st.just("link"), st.sampled_from(LINK_TARGETS)),
    st.just(("whiteout",)),
    st.tuples(st.just("dir"), st.booleans()),
)
layers = st.dictionaries(st.sampled_from(PATHS), _entry_kind, min_size=1, max_size=8)
stacks = st.lists(layers, min_size=2, max_size=3)  # lower layers, top-most first


def build(root: str, layer: dict) -> str:
    """Write a layer in overlayfs's on-disk format (whiteouts are 0:0 char devices)."""
    os.makedirs(root, exist_ok=True)
    for path in sorted(layer, key=len):  # parents first
        parents = [path[:i] for i, char in enumerate(path) if char == "/"]  # "a/b/c": "a", "a/b"
        if any(layer.get(parent, ("dir",))[0] != "dir" for parent in parents):
            continue  # a parent is not a directory in this layer: the path cannot exist
        real = os.path.join(root, path)
        os.makedirs(os.path.dirname(real), exist_ok=True)
        kind, *args = layer[path]
        if kind == "file":
            with open(real, "wb") as f:
                f.write(args[1])
            os.chmod(real, args[0])
        elif kind == "link":
            os.symlink(args[0], real)
        elif kind == "whiteout":
            make_whiteout(real)
        else:
            os.makedirs(real, exist_ok=True)
            if args[0]:
                os.setxattr(real, OPAQUE_XATTR, b"y")
    return root


def build_stack(root: str, stack: list[dict]) -> list[str]:
    """Build the layers of `stack` (top-most first) as root/lower0, lower1, ... and return their
    paths, top-most first. A whiteout is kept only in a directory that merges with a layer below:
    in a directory that merges nothing, overlayfs lists a whiteout in readdir (a quirk real images
    never meet, since a layer only deletes what the layers below it have)."""
    paths = [build(os.path.join(root, f"lower{i}"), layer) for i, layer in enumerate(stack)]
    for k, top in enumerate(paths):
        for dirpath, _, filenames in os.walk(top):
            for name in filenames:
                real = os.path.join(dirpath, name)
                parent = os.path.relpath(dirpath, top).removeprefix(".")
                if is_whiteout(os.lstat(real)) and not _merges_below(paths, k, parent):
                    os.unlink(real)
    return paths


def _merges_below(layers: list[str], k: int, parent: str) -> bool:
    """Does the directory `parent` of layer k merge with one in a layer below it? (Written without
    minidocker.unionfs: this suite tests that module, so it must not build its inputs with it.)"""
    prefixes = [parent[:i] for i, char in enumerate(parent + "/") if char == "/"] if parent else []
    for m in range(k, len(layers)):
        if m > k and all(_real_dir(os.path.join(layers[m], p)) for p in prefixes):
            return True
        for p in prefixes:  # a file, a whiteout or an opaque directory on the way ends the merge
            real = os.path.join(layers[m], p)
            if os.path.lexists(real) and (not _real_dir(real) or is_opaque(real)):
                return False
    return False


def _real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _entry(st_: os.stat_result, read, readlink):
    mode = stat.S_IMODE(st_.st_mode)
    if stat.S_ISDIR(st_.st_mode):
        return ("dir", oct(mode))
    if stat.S_ISLNK(st_.st_mode):
        return ("link", readlink())
    if stat.S_ISREG(st_.st_mode):
        return ("file", oct(mode), read())
    return ("other", oct(st_.st_mode), st_.st_rdev)


def snapshot_dir(root: str) -> dict:
    """{relative path: entry} of everything visible under `root` (not root itself)."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)

            def read(p=path):
                with open(p, "rb") as f:
                    return f.read()

            tree[rel] = _entry(os.lstat(path), read, lambda p=path: os.readlink(p))
    return tree


def snapshot_model(union, path: str = "", tree=None) -> dict:
    """The same snapshot, through the model's lookup and listing."""
    tree = {} if tree is None else tree
    for name in union.listdir(path):
        rel = os.path.join(path, name)
        st_ = union.lstat(rel)
        tree[rel] = _entry(st_, lambda: union.read(rel), lambda: union.readlink(rel))
        if stat.S_ISDIR(st_.st_mode):
            snapshot_model(union, rel, tree)
    return tree


@contextlib.contextmanager
def mounted(lowers, upper, work, target):
    """An overlay mount that is gone when the block ends, whatever happens in it."""
    for d in (upper, work, target):
        if d:
            os.makedirs(d, exist_ok=True)
    overlay.mount(lowers, upper, work, target)
    try:
        yield target
    finally:
        overlay.unmount(target)


def diff(expected: dict, got: dict) -> str:
    """The paths on which two snapshots differ, for an assertion message."""
    lines = []
    for path in sorted(set(expected) | set(got)):
        if expected.get(path) != got.get(path):
            lines.append(f"  {path}: expected {expected.get(path, 'nothing')}, got {got.get(path, 'nothing')}")
    return "\n".join(lines[:12])
