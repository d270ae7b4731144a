"""Chapter 03: the image store (an OCI image layout) and the unpacked layers (by chain ID).

API-level: the store is what every image command stands on. Each test has its own MINIDOCKER_ROOT.
See docs/03-images.md#the-store and #chain-ids.
"""

import gzip
import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import threading

import pytest
from hypothesis import given, settings, strategies as st

from minidocker.errors import MinidockerError
from minidocker.image import builtin, digest, layers, layout as layouts, media
from minidocker.unionfs.model import Union, is_opaque, is_whiteout

DOCS = "docs/03-images.md"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path))
    return layouts.Layout()


def _tar(entries) -> bytes:
    """A layer tar from (name, kind, data) with kind "file", "dir" or "link"."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, data
            else:
                info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    return out.getvalue()


def _image(store, tars, compress=gzip.compress, name=None):
    """Store an image made of these layer tars (lowest first); returns it."""
    with store.writing():
        descriptors = [store.put(compress(t), media.OCI_LAYER_GZIP) for t in tars]
        config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                  "rootfs": {"type": "layers", "diff_ids": [digest.of(t) for t in tars]}}
        manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                    "config": store.put_json(config, media.OCI_CONFIG), "layers": descriptors}
        descriptor = store.put_json(manifest, media.OCI_MANIFEST)
        if name:
            store.tag(name, descriptor)
        else:
            store.add(descriptor)
    return store.load(descriptor["digest"])


# -- the layout ---------------------------------------------------------------------------------

def test_the_store_is_an_oci_image_layout_other_tools_read(store, tmp_path):
    image = builtin.busybox(store)
    assert json.load(open(os.path.join(store.path, "oci-layout"))) == {"imageLayoutVersion": "1.0.0"}
    for digest_ in [image.manifest_digest, image.id] + [l["digest"] for l in image.layers]:
        with open(store.blob_path(digest_), "rb") as f:
            assert digest.of(f.read()) == digest_, f"a blob's file name is its sha256 ({DOCS}#the-store)"
    # oci-image-tool (the OCI's own validator) and skopeo read the store as it is.
    check = subprocess.run(["oci-image-tool", "validate", "--type", "image", store.path], capture_output=True, text=True)
    assert check.returncode == 0, f"oci-image-tool refuses the store: {check.stderr}"
    copy = subprocess.run(["skopeo", "copy", "--quiet", f"oci:{store.path}:{builtin.NAME}", f"dir:{tmp_path / 'copy'}"],
                          capture_output=True, text=True)
    assert copy.returncode == 0, f"skopeo cannot read the image by its ref.name: {copy.stderr}"
    assert (tmp_path / "copy" / digest.hex_of(image.id)).exists()


def test_the_builtin_busybox_image_is_reproducible(store, tmp_path, monkeypatch):
    first = builtin.busybox(store)
    monkeypatch.setenv("MINIDOCKER_ROOT", str(tmp_path / "again"))
    second = builtin.busybox(layouts.Layout())
    assert (first.id, first.manifest_digest) == (second.id, second.manifest_digest), (
        f"the same busybox must give the same image ID ({DOCS}#the-embedded-busybox)")
    assert first.config["config"]["Cmd"] == ["sh"] and first.names == [builtin.NAME]


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=4096), flip=st.integers(min_value=0))
def test_a_blob_is_visible_only_once_verified(tmp_path_factory, data, flip):
    store = layouts.Layout(str(tmp_path_factory.mktemp("layout")))
    right = digest.of(data)
    corrupt = bytearray(data or b"x")
    corrupt[flip % len(corrupt)] ^= 0xFF
    with pytest.raises(MinidockerError, match="digest mismatch|size mismatch"):
        with store.ingest(right, len(data)) as w:
            w.write(bytes(corrupt))
    assert not store.has_blob(right), f"a blob that failed verification must not be stored ({DOCS}#the-store)"
    assert os.listdir(store.ingest_dir) == [], "a refused blob leaves nothing in ingest/"
    with store.ingest(right, len(data)) as w:
        w.write(data)
    assert store.has_blob(right) and w.digest == right


def test_more_bytes_than_promised_stop_at_once(store):
    verifier = digest.Verifier(digest.of(b"abc"), 3)
    verifier.update(b"abc")
    with pytest.raises(MinidockerError, match="size mismatch"):
        verifier.update(b"d")  # a server that sends more than the descriptor said: stop, don't fill the disk


def test_a_killed_writer_leaves_nothing_visible(store):
    """SIGKILL in the middle of a blob: its ingest file stays, unlocked, and the next command removes it."""
    code = (f"import os, signal\nfrom minidocker.image import layout\nl = layout.Layout({store.path!r})\n"
            "with l.ingest() as w:\n    w.write(b'half a layer')\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert len(os.listdir(store.ingest_dir)) == 1 and os.listdir(store.blobs) == []
    with store.writing():  # every writer cleans first
        assert os.listdir(store.ingest_dir) == [], f"an orphaned ingest file must be cleaned ({DOCS}#the-store)"


def test_names_move_and_leave_dangling_images(store):
    old = _image(store, [_tar([("a", "file", b"1")])], name="docker.io/library/app:latest")
    new = _image(store, [_tar([("a", "file", b"2")])], name="docker.io/library/app:latest")
    by_id = {i.id: i for i in store.images()}
    assert by_id[new.id].names == ["docker.io/library/app:latest"]
    assert by_id[old.id].names == [], "the image the name moved away from stays, nameless (<none>), as in Docker"
    assert store.image("app").id == new.id and store.image(old.id[7:19]).id == old.id
    with pytest.raises(MinidockerError, match="No such image: nothing:latest"):
        store.image("nothing")


def test_garbage_collection_frees_what_nothing_names(store):
    shared = _tar([("base", "file", b"base")])
    kept = _image(store, [shared], name="docker.io/library/kept:latest")
    gone = _image(store, [shared, _tar([("top", "file", b"top")])], name="docker.io/library/gone:latest")
    layers.unpack(store, kept), layers.unpack(store, gone)
    store.untag("docker.io/library/gone:latest")
    store.remove(gone.manifest_digest)
    assert store.collect_garbage() > 0 and layers.collect_garbage(store) > 0
    assert not store.has_blob(gone.manifest_digest) and not store.has_blob(gone.layers[1]["digest"])
    assert store.has_blob(kept.layers[0]["digest"]), "a layer another image uses must stay"
    assert [os.path.isdir(d) for d in layers.directories(gone)] == [True, False]


# -- chain IDs and unpacked layers ---------------------------------------------------------------

def test_chain_ids_as_the_oci_spec_defines_them():
    a, b, c = (digest.of(x) for x in (b"a", b"b", b"c"))
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert layers.chain_ids([a, b, c]) == [a, ab, abc], f"ChainID(n) = sha256(ChainID(n-1) + ' ' + DiffID(n)) ({DOCS}#ex-03-chain-id)"


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=6), st.lists(st.binary(max_size=8), max_size=3))
def test_a_chain_id_names_a_layer_and_everything_below_it(below, more):
    diff_ids = [digest.of(x) for x in below]
    extended = layers.chain_ids(diff_ids + [digest.of(x) for x in more])
    assert extended[:len(diff_ids)] == layers.chain_ids(diff_ids), "layers added on top do not change the ones below"
    if len(set(diff_ids)) > 1 and diff_ids != diff_ids[::-1]:
        assert layers.chain_ids(diff_ids[::-1])[-1] != layers.chain_ids(diff_ids)[-1], "the order of layers matters"


def test_images_share_their_common_layers(store):
    base = _tar([("etc", "dir", None), ("etc/os", "file", b"base")])
    one = _image(store, [base, _tar([("one", "file", b"1")])])
    two = _image(store, [base, _tar([("two", "file", b"2")])], compress=lambda t: t)  # plain tar this time
    dirs_one, dirs_two = layers.unpack(store, one), layers.unpack(store, two)
    assert dirs_one[0] == dirs_two[0], f"one base layer, unpacked once, named by its chain ID ({DOCS}#chain-ids)"
    assert dirs_one[1] != dirs_two[1]
    assert os.listdir(os.path.join(os.environ["MINIDOCKER_ROOT"], "layers", "ingest")) == []


def test_deletions_stay_as_overlayfs_markers(store):
    base = _tar([("etc", "dir", None), ("etc/secret", "file", b"s"), ("etc/keep", "file", b"k"),
                 ("var", "dir", None), ("var/old", "file", b"o")])
    top = _tar([("etc", "dir", None), ("etc/.wh.secret", "file", b""), ("var", "dir", None),
                ("var/.wh..wh..opq", "file", b""), ("var/new", "file", b"n")])
    lower, upper = layers.unpack(store, _image(store, [base, top]))
    assert is_whiteout(os.lstat(os.path.join(upper, "etc/secret"))), "a .wh. entry becomes a 0:0 character device"
    assert is_opaque(os.path.join(upper, "var")), "an opaque marker becomes trusted.overlay.opaque=y"
    view = Union([upper, lower])  # chapter 02's model of how overlayfs stacks them
    assert (view.exists("etc/secret"), view.exists("etc/keep")) == (False, True)
    assert view.listdir("var") == ["new"]


def test_zstd_layers_unpack(store):
    from backports import zstd

    tar = _tar([("hello", "file", b"zstd")])
    (layer,) = layers.unpack(store, _image(store, [tar], compress=zstd.compress))
    assert open(os.path.join(layer, "hello"), "rb").read() == b"zstd"


def test_a_layer_that_is_not_its_diff_id_is_refused_and_leaves_nothing(store):
    image = _image(store, [_tar([("a", "file", b"1")])])
    image.config["rootfs"]["diff_ids"] = [digest.of(b"something else")]
    with pytest.raises(MinidockerError, match="digest mismatch"):
        layers.unpack(store, image)
    assert sorted(os.listdir(layers.root())) == ["ingest"] and os.listdir(os.path.join(layers.root(), "ingest")) == []


def test_a_hostile_layer_is_refused_and_leaves_nothing(store):
    image = _image(store, [_tar([("../escape", "file", b"x")])])
    with pytest.raises(MinidockerError, match="refusing layer entry"):
        layers.unpack(store, image)
    assert sorted(os.listdir(layers.root())) == ["ingest"]


def test_two_unpacks_at_once_both_succeed_and_store_the_layer_once(store):
    image = _image(store, [_tar([(f"f{i}", "file", b"x" * 1000) for i in range(200)])])
    results, errors = [], []

    def unpack():
        try:
            results.append(layers.unpack(store, layouts.Layout(store.path).load(image.manifest_digest)))
        except Exception as e:  # noqa: BLE001 - the test reports it
            errors.append(e)
    threads = [threading.Thread(target=unpack) for _ in range(3)]
    [t.start() for t in threads], [t.join() for t in threads]
    assert not errors and len({tuple(r) for r in results}) == 1
    assert sorted(os.listdir(layers.root())) == sorted(["ingest", digest.hex_of(layers.chain_ids(image.diff_ids)[0])])
    assert len(os.listdir(results[0][0])) == 200 and stat.S_ISDIR(os.lstat(results[0][0]).st_mode)
