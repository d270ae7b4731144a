"""Chapter 02: changesets (minidocker/unionfs/changeset.py). An upper directory becomes an OCI layer tar,
and a layer tar applied onto a copy of the layers below gives back exactly the merged view."""

import importlib
import io
import os
import shutil
import stat
import tarfile
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

import harness
from minidocker.unionfs import changeset
from minidocker.unionfs.model import OPAQUE_XATTR, make_whiteout

layertrees = importlib.import_module("chapters.02.layertrees")  # "02" is no Python name
DOCS = "docs/02-unionfs.md"
PER_EXAMPLE = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


def layer_tar(upper: str) -> io.BytesIO:
    buf = io.BytesIO()
    changeset.create(upper, buf)
    buf.seek(0)
    return buf


def flatten(lowers: list[str], target: str) -> str:
    """Build the image's root filesystem the way an engine does: every layer as a changeset,
    applied in order onto an empty directory, the bottom layer first."""
    os.makedirs(target, exist_ok=True)
    for layer in reversed(lowers):
        changeset.apply(layer_tar(layer), target)
    return target


# Operations a container might run, as (op, path, other path, data, mode). Paths only ever go
# through real directories, never through a symlink: a lower layer may hold "x -> /etc/passwd",
# and a test must not write to the host's /etc/passwd through it.
_path = st.lists(st.sampled_from(layertrees.NAMES), min_size=1, max_size=3).map("/".join)
operations = st.lists(st.tuples(
    st.sampled_from(["write", "append", "mkdir", "symlink", "unlink", "rm -r", "rename", "chmod"]),
    _path, _path, st.binary(max_size=4), st.sampled_from([0o755, 0o600, 0o444])), max_size=12)


def run(mnt: str, ops) -> None:
    for op, p, q, data, mode in ops:
        at, to = os.path.join(mnt, p), os.path.join(mnt, q)
        if any(os.path.realpath(os.path.dirname(x)) != os.path.dirname(x) for x in (at, to)):
            continue  # a parent is a symlink
        if op in ("write", "append", "chmod") and os.path.islink(at):
            continue  # it would follow the symlink
        try:
            if op in ("write", "append"):
                with open(at, "wb" if op == "write" else "ab") as f:
                    f.write(data)
            elif op == "rm -r":
                shutil.rmtree(at)
            elif op == "rename":
                os.rename(at, to)
            elif op == "symlink":
                os.symlink(q, at)
            elif op == "chmod":
                os.chmod(at, mode)
            else:
                getattr(os, op)(at)
        except OSError:
            pass  # a failing operation changes nothing, in a container as here


@PER_EXAMPLE
@given(stack=layertrees.stacks)
def test_layer_by_layer_equals_the_union(tmp_path, stack):
    """Applying each lower layer's changeset in order gives the tree overlayfs shows for them."""
    harness.need_root()
    work = tempfile.mkdtemp(dir=tmp_path)
    try:
        lowers = layertrees.build_stack(work, stack)
        with layertrees.mounted(lowers, None, None, os.path.join(work, "mnt")) as mnt:
            union = layertrees.snapshot_dir(mnt)
        flat = layertrees.snapshot_dir(flatten(lowers, os.path.join(work, "flat")))
        assert flat == union, (f"the layers applied one by one differ from their union:\n{layertrees.diff(union, flat)}\n"
                               f"See {DOCS}#ex-02-changeset and #apply")
    finally:
        shutil.rmtree(work)


@PER_EXAMPLE
@given(stack=layertrees.stacks, ops=operations)
def test_round_trip(tmp_path, stack, ops):
    """(lower layers, operations) -> upper directory -> changeset -> applied onto the flattened
    lower layers -> exactly what the container saw through its overlay."""
    harness.need_root()
    work = tempfile.mkdtemp(dir=tmp_path)
    try:
        lowers = layertrees.build_stack(work, stack)
        upper = os.path.join(work, "upper")
        with layertrees.mounted(lowers, upper, os.path.join(work, "work"), os.path.join(work, "mnt")) as mnt:
            run(mnt, ops)
            merged = layertrees.snapshot_dir(mnt)
        target = flatten(lowers, os.path.join(work, "flat"))
        changeset.apply(layer_tar(upper), target)
        got = layertrees.snapshot_dir(target)
        assert got == merged, (f"after {ops}, the container's changeset applied onto its image differs from what "
                               f"the container saw:\n{layertrees.diff(merged, got)}\nSee {DOCS}#ex-02-changeset")
    finally:
        shutil.rmtree(work)


def test_the_tar_speaks_oci_not_overlayfs(tmp_path):
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    os.setxattr(upper / "d", OPAQUE_XATTR, b"y")
    (upper / "d" / "new").write_text("x")
    make_whiteout(str(upper / "gone"))
    with tarfile.open(fileobj=layer_tar(str(upper))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        names = tar.getnames()
    assert ".wh.gone" in members and members[".wh.gone"].isreg() and members[".wh.gone"].size == 0, (
        f"a 0:0 char device in the upper dir must become an empty file .wh.NAME, got {names} ({DOCS}#ex-02-changeset)")
    assert "d/.wh..wh..opq" in members, f"an opaque dir needs a DIR/.wh..wh..opq entry, got {names} ({DOCS}#ex-02-changeset)"
    assert names.index("d") < names.index("d/.wh..wh..opq") < names.index("d/new"), (
        f"the opaque marker comes right after its directory, before its entries: {names}")
    assert not any(m.ischr() for m in members.values()), "no overlayfs whiteout device may reach the tar"
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay.") for m in members.values() for k in m.pax_headers), (
        "overlayfs's private xattrs (trusted.overlay.*) stay out of the layer")


def test_apply_whiteouts_only_touch_the_layers_below(tmp_path):
    target = tmp_path / "target"
    (target / "d").mkdir(parents=True)
    (target / "d" / "old").write_text("old")
    (target / "f").write_text("f")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind in [("d/new", tarfile.REGTYPE), ("d", tarfile.DIRTYPE), ("d/.wh..wh..opq", tarfile.REGTYPE),
                           (".wh.f", tarfile.REGTYPE)]:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o755
            tar.addfile(info, io.BytesIO(b""))
    buf.seek(0)
    changeset.apply(buf, str(target))
    assert sorted(os.listdir(target)) == ["d"], f".wh.f deletes f, and leaves no marker behind ({DOCS}#apply)"
    assert os.listdir(target / "d") == ["new"], (
        f"an opaque whiteout removes the lower entries, never the layer's own, wherever it sits in the tar ({DOCS}#apply)")


def test_metadata_survives_the_round_trip(tmp_path):
    harness.need_root()
    upper, target = tmp_path / "upper", tmp_path / "target"
    (upper / "bin").mkdir(parents=True)
    tool = upper / "bin" / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    os.chown(tool, 1234, 5678)
    os.chmod(tool, 0o4750)  # set-user-ID: chown after chmod would clear it
    os.setxattr(tool, "user.origin", b"minidocker")
    os.link(tool, upper / "bin" / "alias")
    os.symlink("tool", upper / "bin" / "link")
    os.mkfifo(upper / "fifo")
    os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.utime(tool, (1_000_000_000, 1_000_000_000))
    os.utime(upper / "bin", (1_100_000_000, 1_100_000_000))
    target.mkdir()
    changeset.apply(layer_tar(str(upper)), str(target))
    st_ = os.lstat(target / "bin" / "tool")
    assert (st_.st_uid, st_.st_gid, stat.S_IMODE(st_.st_mode)) == (1234, 5678, 0o4750), "owner and mode, set-user-ID included"
    assert st_.st_mtime == 1_000_000_000 and os.lstat(target / "bin").st_mtime == 1_100_000_000, "file and directory times"
    assert os.getxattr(target / "bin" / "tool", "user.origin") == b"minidocker", "xattrs travel as SCHILY.xattr PAX headers"
    assert os.lstat(target / "bin" / "alias").st_ino == st_.st_ino, "a hard link stays a hard link"
    assert os.readlink(target / "bin" / "link") == "tool"
    assert stat.S_ISFIFO(os.lstat(target / "fifo").st_mode)
    assert os.lstat(target / "null").st_rdev == os.makedev(1, 3)
