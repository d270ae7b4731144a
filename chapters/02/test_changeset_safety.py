"""Chapter 02: a layer comes from strangers. Applying one never writes, links, deletes or even sets
a time outside its target; a refused layer leaves the target exactly as it was, down to its
directories' times; and whatever is wrong with a layer, the answer is one MinidockerError that
names the entry (docs/02-unionfs.md#safety)."""

import gzip
import io
import os
import stat
import tarfile

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker.unionfs import changeset
from minidocker.errors import MinidockerError

DOCS = "docs/02-unionfs.md#safety"
T = 1_234_567_890  # a time no test machine has by accident


def E(name, kind="file", data=b"", link="", mtime=0, pax=None, **attrs):
    """One tar entry: kind is file, dir, symlink, link (a hard link) or fifo."""
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o755 if kind == "dir" else 0o644, mtime
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                 "link": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE}[kind]
    info.linkname, info.size = link, len(data) if kind == "file" else 0
    info.pax_headers.update(pax or {})
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_tar(*entries) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def exact(root) -> dict:
    """Everything `apply` could change under root, root included: type, mode, owner, inode,
    links, mtime, contents, symlink text, device numbers and xattrs."""
    paths = [str(root)]
    for dirpath, dirnames, filenames in os.walk(root):
        paths += [os.path.join(dirpath, name) for name in dirnames + filenames]
    tree = {}
    for path in paths:
        st_ = os.lstat(path)
        if stat.S_ISREG(st_.st_mode):
            with open(path, "rb") as f:
                content = f.read()
        else:
            content = os.readlink(path) if stat.S_ISLNK(st_.st_mode) else None
        xattrs = sorted((k, os.getxattr(path, k, follow_symlinks=False))
                        for k in os.listxattr(path, follow_symlinks=False))
        tree[os.path.relpath(path, root)] = (oct(st_.st_mode), st_.st_uid, st_.st_gid, st_.st_ino, st_.st_nlink,
                                             st_.st_mtime_ns, st_.st_rdev, content, xattrs)
    return tree


def changes(before: dict, after: dict) -> str:
    return "\n".join(f"  {p}: {before.get(p, 'nothing')} -> {after.get(p, 'nothing')}"
                     for p in sorted(set(before) | set(after)) if before.get(p) != after.get(p))[:3000]


def make_place(base):
    """A target holding a lower layer (with an absolute symlink that, read on the host, leads
    outside), and next to it an outside directory that no layer may touch."""
    target, outside = base / "target", base / "outside"
    (target / "etc").mkdir(parents=True)
    (target / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (target / "a").mkdir()
    (target / "a" / "b").write_text("lower")
    os.symlink(outside, target / "l")
    (outside / "keep").mkdir(parents=True)
    (outside / "secret").write_text("do not touch")
    for path in (target / "a", target / "etc", target, outside / "keep", outside):
        os.utime(path, (T, T))  # a time to keep, or to lose
    return target, outside


@pytest.fixture
def place(tmp_path):
    harness.need_root()  # apply sets owners (chown), as an engine does
    return make_place(tmp_path)


def refused(place, tar, entry=None) -> str:
    """Apply `tar`: it must be refused, and neither the target nor the outside may change."""
    target, outside = place
    before = exact(target), exact(outside)
    with pytest.raises(MinidockerError) as e:
        changeset.apply(tar, str(target))
    after = exact(target), exact(outside)
    assert after[1] == before[1], f"the layer changed a directory outside its target:\n{changes(before[1], after[1])}"
    assert after[0] == before[0], (
        f"a refused layer must leave the target exactly as it was: check what can be checked before "
        f"the first write, and undo the rest ({DOCS}):\n{changes(before[0], after[0])}")
    assert not os.path.lexists(target.parent / "evil"), "the layer wrote next to its target"
    message = str(e.value)
    assert "\n" not in message, f"one line, not {message!r}"
    if entry is not None:
        assert repr(entry) in message, f"the refusal must name the entry {entry!r}: {message!r}"
    return message


# ---------------------------------------------------------------------------------------------
# Names that point outside

def test_dot_dot_in_a_name(place):
    assert "'..'" in refused(place, make_tar(E("../evil")))
    refused(place, make_tar(E("etc/../../evil")))


def test_an_absolute_name(place):
    refused(place, make_tar(E(str(place[1] / "evil"))))


def test_a_hard_link_pointing_out(place):
    refused(place, make_tar(E("stolen", "link", link="../outside/secret")))
    refused(place, make_tar(E("stolen", "link", link=str(place[1] / "secret"))))


def test_a_whiteout_above_the_layer(place):
    refused(place, make_tar(E(".wh..")))
    refused(place, make_tar(E("etc/.wh...")))
    refused(place, make_tar(E("../.wh.outside")))


def test_symlinks_are_followed_as_inside_the_container(place):
    """Absolute symlinks are normal in a root filesystem (/bin/sh -> /bin/busybox), and so are
    relative ones that climb above "/" (usr/lib/os-release -> ../../../etc/os-release: Docker
    applies them, real images ship them). They resolve from the target, as they will inside the
    container, never from the host's root: that, not refusing their text, keeps a layer inside."""
    target, outside = place
    before = exact(outside)
    changeset.apply(make_tar(
        E("usr/lib/os-release", "symlink", link="../../../etc/os-release"),
        E("new-link", "symlink", link=str(outside)), E("new-link/evil", data=b"x"),
        E("l/evil", data=b"x"), E("l/.wh.secret"),  # l: a lower layer's absolute symlink
        E("etc/up", "symlink", link="../../outside"), E("etc/up/evil", data=b"y"),
        E("etc/root", "symlink", link="/../../.."),
    ), str(target))
    assert exact(outside) == before, f"a write through a symlink left the target ({DOCS})"
    assert os.readlink(target / "usr" / "lib" / "os-release") == "../../../etc/os-release", (
        f"a relative symlink that climbs above / stays as it is: inside the container it ends at / ({DOCS})")
    assert (target / str(outside).lstrip("/") / "evil").read_bytes() == b"x", "absolute symlinks resolve inside the target"
    assert (target / "outside" / "evil").read_bytes() == b"y", "'..' stops at the target, as at /"


# ---------------------------------------------------------------------------------------------
# The times of directories, set last

def test_directory_times_are_set_inside_the_target(place):
    """`p/`, `p/keep/`, then `p` -> a host directory: the last pass, which sets directory times,
    must resolve `p/keep` again, inside the target, and not touch the host's keep. And a host
    directory that does not exist must not fail the layer (an oracle for what the host has)."""
    target, outside = place
    before = exact(outside)
    changeset.apply(make_tar(
        E("p", "dir"), E("p/keep", "dir", mtime=1), E("p/gone", "dir", mtime=1),
        E("p", "symlink", link=str(outside)),
        E("q", "dir"), E("q/keep", "dir", mtime=1), E("q", "symlink", link="../outside"),
    ), str(target))
    assert exact(outside) == before, (
        f"applying the layer set times outside the target ({DOCS}):\n{changes(before, exact(outside))}")
    assert os.readlink(target / "p") == str(outside)


def test_a_directory_gets_its_time_even_when_reached_through_a_symlink(place):
    target = place[0]
    changeset.apply(make_tar(E("e", "symlink", link="/etc"), E("e/sub", "dir", mtime=T + 1), E("d", "dir", mtime=T + 2),
                             E("d/f", data=b"written into d after d's own entry")), str(target))
    assert os.lstat(target / "etc" / "sub").st_mtime == T + 1, "e/sub is etc/sub: its time is set there"
    assert os.lstat(target / "d").st_mtime == T + 2, "a directory's time is set after its entries are written"


# ---------------------------------------------------------------------------------------------
# Refused before the first write: good entries come first, and must not have been applied

GOOD = (E("hello", data=b"hi"), E("etc/.wh.passwd"), E("a", "dir", mode=0o700), E("new/dir/f", data=b"x"))

HOSTILE = {
    "symlink loop": ("s/x", [E("s", "symlink", link="t"), E("t", "symlink", link="s"), E("s/x")]),
    "NUL in a PAX path": ("bad\0name", [E("placeholder", pax={"path": "bad\0name"})]),
    "name over NAME_MAX": ("d/" + "n" * 256, [E("d/" + "n" * 256)]),
    "path over PATH_MAX": ("/".join(["d" * 200] * 21), [E("/".join(["d" * 200] * 21))]),
    "hard link to a whiteout": ("alias", [E(".wh.gone"), E("alias", "link", link=".wh.gone")]),
    "hard link to itself": ("a/b", [E("a/b", "link", link="a/b")]),
    "a file as a parent": ("hello/x", [E("hello/x")]),
    "owner out of range": ("big", [E("big", uid=2**40)]),
    "time not a number": ("nan", [E("nan", pax={"mtime": "nan"})]),
    "device out of range": ("dev", [E("dev", "chr", devmajor=5000)]),
    "xattr outside every namespace": ("x", [E("x", pax={"SCHILY.xattr.bogus.x": "1"})]),
    "symlink to nothing": ("empty", [E("empty", "symlink", link="")]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_refused_before_the_first_write(place, case):
    entry, bad = HOSTILE[case]
    refused(place, make_tar(*GOOD, *bad), entry)


def test_a_failure_while_writing_is_undone(place):
    """What no check can foresee (here an ACL the kernel cannot parse; a full disk is another)
    fails half-way: everything the layer did before it must be undone."""
    target = place[0]
    for name in ("a", "etc"):
        os.setxattr(target / name, "user.kept", b"1")
    message = refused(place, make_tar(
        *GOOD, E("etc", "dir", mode=0o711, pax={"SCHILY.xattr.user.new": "2"}),
        E(".wh.l"), E("a", data=b"a file over a directory"), E("etc/.wh..wh..opq"),
        E("acl", pax={"SCHILY.xattr.system.posix_acl_access": "not an ACL"})), "acl")
    assert not [n for n in os.listdir(target) if n.startswith(".md-")], "no temporary file may stay behind"
    assert "cannot apply" in message or "refusing" in message


@pytest.mark.parametrize("data", [b"", b"not a tar at all" * 64, gzip.compress(b"not a tar" * 64),
                                  make_tar(E("cut", data=b"x" * 5000)).getvalue()[:2048]],
                         ids=["empty", "garbage", "gzip of garbage", "cut short"])
def test_a_broken_tar_is_one_clear_error(place, data):
    assert "tar" in refused(place, io.BytesIO(data))


def test_the_target_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("")
    for target in (tmp_path / "missing", tmp_path / "file"):
        with pytest.raises(MinidockerError, match="not a directory"):
            changeset.apply(make_tar(E("x")), str(target))
    assert sorted(os.listdir(tmp_path)) == ["file"], "apply makes nothing when it cannot apply"


# ---------------------------------------------------------------------------------------------
# Any layer at all: it stays inside, and either applies or changes nothing

OUT = "OUTSIDE"  # stands for the outside directory's absolute path, which hypothesis cannot know
_names = st.sampled_from(["a", "b", "a/b", "b/c", "a/b/c", "etc", "etc/passwd", "l", "l/x", "l/keep", "p", "p/keep"])
_links = st.sampled_from([OUT, OUT + "/keep", "/", "/etc", "..", "../..", "../../outside", "a", "l", "p", "b/..", "p/keep"])
_entries = st.one_of(
    st.tuples(_names, st.just("dir"), st.sampled_from([0, T + 5])),
    st.tuples(_names, st.just("file"), st.binary(max_size=3)),
    st.tuples(_names, st.just("symlink"), _links),
    st.tuples(_names, st.just("link"), _names),
    st.tuples(_names, st.just("whiteout"), st.none()),
    st.tuples(_names, st.just("opaque"), st.none()),
    st.tuples(_names, st.just("bad xattr"), st.none()),  # fails only while writing
)


def build(entries, outside):
    out = []
    for name, kind, arg in entries:
        parent, base = os.path.dirname(name), os.path.basename(name)
        if kind == "dir":
            out.append(E(name, "dir", mtime=arg))
        elif kind == "file":
            out.append(E(name, data=arg))
        elif kind in ("symlink", "link"):
            out.append(E(name, kind, link=arg.replace(OUT, str(outside))))
        elif kind in ("whiteout", "opaque"):
            out.append(E(os.path.join(parent, ".wh." + base if kind == "whiteout" else ".wh..wh..opq")))
        else:
            out.append(E(name, pax={"SCHILY.xattr.system.posix_acl_access": "x"}))
    return make_tar(*out)


@settings(max_examples=150)
@given(entries=st.lists(_entries, max_size=8))
def test_any_layer_stays_inside_and_applies_whole_or_not_at_all(tmp_path_factory, entries):
    harness.need_root()
    target, outside = make_place(tmp_path_factory.mktemp("layer"))
    before = exact(target), exact(outside)
    try:
        changeset.apply(build(entries, outside), str(target))
    except MinidockerError as e:
        assert exact(target) == before[0], f"a refused layer changed its target:\n{changes(before[0], exact(target))}"
        assert str(e).startswith("refusing") or any(kind == "bad xattr" for _, kind, _ in entries), (
            f"only the bad xattr cannot be foreseen; the rest must be refused before writing: {e}")
    assert exact(outside) == before[1], f"the layer reached outside its target:\n{changes(before[1], exact(outside))}"
    assert not [n for n in os.listdir(target) if n.startswith(".md-")], "apply left its own files behind"
