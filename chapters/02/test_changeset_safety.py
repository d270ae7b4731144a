"""Chapter 02: a layer comes from strangers. Applying one never writes, links or deletes outside
its target, and a refused layer leaves the target exactly as it was (docs/02-unionfs.md#safety)."""

import importlib
import io
import os
import tarfile

import pytest

from minidocker.unionfs import changeset
from minidocker.errors import MinidockerError

layertrees = importlib.import_module("chapters.02.layertrees")  # "02" is no Python name


def make_tar(*entries) -> io.BytesIO:
    """entries: (name, "file", data) | (name, "dir") | (name, "symlink", target) | (name, "link", target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, *rest in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "file":
                info.size = len(rest[0])
                tar.addfile(info, io.BytesIO(rest[0]))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "link": tarfile.LNKTYPE}[kind]
            info.linkname = rest[0] if rest else ""
            tar.addfile(info)
    buf.seek(0)
    return buf


@pytest.fixture
def place(tmp_path):
    """A target directory holding a lower layer, and next to it an outside directory with a secret."""
    target, outside = tmp_path / "target", tmp_path / "outside"
    (target / "etc").mkdir(parents=True)
    (target / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    outside.mkdir()
    (outside / "secret").write_text("do not touch")
    return target, outside


def refused(place, tar):
    target, outside = place
    before = (layertrees.snapshot_dir(str(target)), layertrees.snapshot_dir(str(outside)))
    with pytest.raises(MinidockerError) as e:
        changeset.apply(tar, str(target))
    after = (layertrees.snapshot_dir(str(target)), layertrees.snapshot_dir(str(outside)))
    assert after[1] == before[1], f"the layer changed a directory outside its target: {after[1]}"
    assert after[0] == before[0], (
        f"a refused layer must leave the target as it was (check every entry before writing any):\n"
        f"{layertrees.diff(before[0], after[0])}")
    assert not os.path.lexists(target.parent / "evil"), "the layer wrote next to its target"
    return str(e.value)


def test_dot_dot_in_a_name(place):
    assert "'..'" in refused(place, make_tar(("../evil", "file", b"x")))
    refused(place, make_tar(("etc/../../evil", "file", b"x")))


def test_an_absolute_name(place):
    refused(place, make_tar((str(place[1] / "evil"), "file", b"x")))


def test_a_symlink_pointing_out(place):
    refused(place, make_tar(("escape", "symlink", "../outside"), ("escape/evil", "file", b"x")))
    refused(place, make_tar(("etc/escape", "symlink", "../../outside")))


def test_a_hard_link_pointing_out(place):
    refused(place, make_tar(("stolen", "link", "../outside/secret")))
    refused(place, make_tar(("stolen", "link", str(place[1] / "secret"))))


def test_a_whiteout_above_the_layer(place):
    refused(place, make_tar((".wh..", "file", b"")))
    refused(place, make_tar(("etc/.wh...", "file", b"")))
    refused(place, make_tar(("../.wh.outside", "file", b"")))


def test_nothing_half_written(place):
    """The bad entry comes last: the good ones before it must not have been applied either."""
    refused(place, make_tar(("hello", "file", b"hi"), (".wh.etc", "file", b""), ("../evil", "file", b"x")))


def test_symlinks_are_followed_as_inside_the_container(place):
    """Absolute symlinks are normal in a root filesystem (/bin/sh -> /bin/busybox). They resolve
    from the target, as they will inside the container: never from the host's root."""
    target, outside = place
    os.symlink(str(outside), target / "old-link")  # a lower layer already has one
    changeset.apply(make_tar(
        ("new-link", "symlink", str(outside)), ("new-link/evil", "file", b"x"),
        ("old-link/evil", "file", b"x"), ("old-link/.wh.secret", "file", b""),
        ("etc/up", "symlink", "/../../.."),
    ), str(target))
    assert sorted(os.listdir(outside)) == ["secret"], "a write through a symlink left the target"
    inside = target / str(outside).lstrip("/")
    assert (inside / "evil").read_bytes() == b"x", "absolute symlinks resolve inside the target"
