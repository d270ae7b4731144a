"""Chapter 02: the overlay mount itself (minidocker/unionfs/overlay.py): N layers, the one-page limit on
mount options, and a clean unmount."""

import importlib
import os

import pytest

import harness
from minidocker.unionfs import overlay

layertrees = importlib.import_module("chapters.02.layertrees")  # "02" is no Python name
DOCS = "docs/02-unionfs.md"


def _mounts_under(path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def test_mount_shows_the_layers_and_writes_to_upper(tmp_path):
    harness.need_root()
    lowers = [layertrees.build(str(tmp_path / f"l{i}"), {f"from-{i}": ("file", 0o644, b"%d" % i)}) for i in range(3)]
    with layertrees.mounted(lowers, str(tmp_path / "upper"), str(tmp_path / "work"), str(tmp_path / "mnt")) as mnt:
        assert sorted(os.listdir(mnt)) == ["from-0", "from-1", "from-2"], f"every lower layer shows ({DOCS}#ex-02-mount)"
        with open(os.path.join(mnt, "new"), "w") as f:
            f.write("hello")
    assert not _mounts_under(tmp_path), f"unmount() must leave no mount behind ({DOCS}#ex-02-mount)"
    assert (tmp_path / "upper" / "new").read_text() == "hello", "a write lands in the upper directory"
    assert not any((tmp_path / f"l{i}" / "new").exists() for i in range(3)), "lower layers are never written"


def test_many_layers_past_the_one_page_limit(tmp_path):
    """200 layers with long paths make an options string of ~15 KB, far past the page that
    mount(2) copies: the kernel would see a truncated layer list."""
    harness.need_root()
    lowers = []
    for i in range(200):
        layer = tmp_path / f"layer-{i:03d}-{'x' * 48}"
        layer.mkdir()
        (layer / f"f{i:03d}").write_text(str(i))
        lowers.append(str(layer))
    (tmp_path / lowers[0] / "f199").write_text("top")  # the top-most layer must still win
    assert len(overlay.options(lowers, str(tmp_path / "upper"), str(tmp_path / "work"))) > 4096
    with layertrees.mounted(lowers, str(tmp_path / "upper"), str(tmp_path / "work"), str(tmp_path / "mnt")) as mnt:
        names = os.listdir(mnt)
        top = open(os.path.join(mnt, "f199")).read()
    assert len(names) == 200, f"all 200 layers must be mounted, saw {len(names)} files ({DOCS}#many-layers)"
    assert top == "top", f"the layers must keep their order ({DOCS}#many-layers)"


def test_a_read_only_union(tmp_path):
    """No upper directory: a read-only view of an image, even of a single layer."""
    harness.need_root()
    for n in (1, 2):
        lowers = [layertrees.build(str(tmp_path / f"{n}-l{i}"), {f"f{i}": ("file", 0o644, b"")}) for i in range(n)]
        with layertrees.mounted(lowers, None, None, str(tmp_path / "mnt")) as mnt:
            assert len(os.listdir(mnt)) == n
            with pytest.raises(OSError):
                open(os.path.join(mnt, "new"), "w").close()


def test_layer_paths_with_commas_and_colons(tmp_path):
    """overlayfs splits its options at ',' and its layers at ':': such paths must be escaped."""
    harness.need_root()
    odd = layertrees.build(str(tmp_path / "a,b:c"), {"odd": ("file", 0o644, b"")})
    plain = layertrees.build(str(tmp_path / "plain"), {"plain": ("file", 0o644, b"")})
    with layertrees.mounted([odd, plain], None, None, str(tmp_path / "mnt")) as mnt:
        assert sorted(os.listdir(mnt)) == ["odd", "plain"]
