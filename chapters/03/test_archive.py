"""Chapter 03: `save` and `load`. An archive minidocker writes is what Docker 25+ writes (an OCI
layout and Docker's manifest.json in one tar), and other tools read it; an archive Docker ≤ 24,
skopeo or an OCI tool wrote loads with the same image ID; a bad archive is one clear error and
leaves nothing half-made in the store. No dockerd runs here: "Docker reads it" is checked through
skopeo's docker-archive reader (the same format rules) and by the format itself.
See docs/03-images.md#save-and-load.
"""

import gzip
import io
import itertools
import json
import os
import pty
import signal
import subprocess
import sys
import tarfile

import pytest
from hypothesis import given, settings, strategies as st

import harness
from minidocker.errors import MinidockerError
from minidocker.image import archive, builtin, digest, layers, layout as layouts, media, reference

DOCS = "docs/03-images.md#save-and-load"
BUSYBOX_ID_LINE = "Loaded image: busybox:latest"


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """fresh() -> the store of a new, empty MINIDOCKER_ROOT (the CLI under test uses it too)."""
    count = itertools.count()

    def make():
        root = tmp_path / f"root{next(count)}"
        root.mkdir()
        monkeypatch.setenv("MINIDOCKER_ROOT", str(root))
        return layouts.Layout()
    return make


def layer(files: dict[str, bytes]) -> bytes:
    """A reproducible layer tar of regular files."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def make_image(store, tars, name=None, compress=lambda t: gzip.compress(t, mtime=0), cmd="sh"):
    """Store an image of these layer tars (lowest first), named or not; returns it."""
    with store.writing():
        blobs = [compress(t) for t in tars]
        descriptors = [store.put(b, media.OCI_LAYER_GZIP if b[:2] == b"\x1f\x8b" else media.OCI_LAYER) for b in blobs]
        config = {"architecture": builtin.ARCHITECTURES[os.uname().machine], "os": "linux",
                  "config": {"Cmd": [cmd]}, "rootfs": {"type": "layers", "diff_ids": [digest.of(t) for t in tars]}}
        manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                    "config": store.put_json(config, media.OCI_CONFIG), "layers": descriptors}
        descriptor = store.put_json(manifest, media.OCI_MANIFEST)
        store.tag(str(reference.normalize(name)), descriptor) if name else store.add(descriptor)
    return store.load(descriptor["digest"])


def tar_of(files: dict, links: dict = (), gzipped=False) -> bytes:
    """An archive from {name: bytes} and {name: symlink target}, in the order given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gzipped else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


def saved(store, *names) -> bytes:
    out = io.BytesIO()
    archive.save(store, list(names), out)
    return out.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() if m.isreg() else None for m in tar}


def visible(store) -> tuple:
    """What a user of the store can see: its index entries, and the ingest area's leftovers."""
    return store.entries(), sorted(os.listdir(store.ingest_dir))


# -- save ---------------------------------------------------------------------------------------

def test_save_writes_dockers_combined_form(fresh):
    store = fresh()
    image = builtin.busybox(store)
    data = saved(store, "busybox")
    files = members(data)
    assert list(files) == sorted(files), f"the archive's entries are sorted, for a reproducible tar ({DOCS})"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {(m.mtime, m.uid, m.gid) for m in tar} == {(0, 0, 0)}, f"no time or owner of this machine in the archive ({DOCS})"
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    [entry] = index["manifests"]
    assert entry["digest"] == image.manifest_digest, f"index.json points at the stored manifest, unchanged ({DOCS})"
    assert entry["annotations"] == {media.IMAGE_NAME: "docker.io/library/busybox:latest", media.REF_NAME: "latest"}, \
        f"Docker 25 names an entry by its full name and its tag ({DOCS})"
    [item] = json.loads(files["manifest.json"])
    assert item["RepoTags"] == ["busybox:latest"], f"manifest.json has Docker's familiar names ({DOCS})"
    assert item["Config"] == "blobs/sha256/" + image.id[7:], f"manifest.json points into blobs/ ({DOCS})"
    assert item["Layers"] == ["blobs/sha256/" + l["digest"][7:] for l in image.layers]
    for name, content in files.items():
        if name.startswith("blobs/sha256/") and content is not None:
            assert digest.of(content) == "sha256:" + name.rsplit("/", 1)[1], f"{name}: a blob is named by its digest"
    assert saved(store, "busybox") == data, f"the same image saves to the same bytes ({DOCS})"


def test_saved_busybox_loads_into_a_fresh_root_with_the_same_id(fresh):
    store = fresh()
    image = builtin.busybox(store)
    data = saved(store, "busybox:latest")
    other = fresh()
    older = make_image(other, [layer({"old": b"1"})], "busybox:latest")
    assert archive.load(other, io.BytesIO(data)) == [
        f"The image busybox:latest already exists, renaming the old one with ID {older.id} to empty string",
        BUSYBOX_ID_LINE], f"load says when a name moves to the loaded image, in Docker's words ({DOCS})"
    assert [i.names for i in other.images() if i.id == older.id] == [[]], "the old image stays, dangling"
    loaded = other.image("busybox")
    assert (loaded.id, loaded.manifest_digest, loaded.names) == (image.id, image.manifest_digest, image.names), \
        f"load gives back the same image: its ID is its config's digest ({DOCS})"
    assert all(os.path.isdir(d) for d in layers.directories(loaded)), "load unpacks the layers, so `run` finds them"


def test_two_images_sharing_a_layer_store_it_once_and_untagged_loads_by_id(fresh):
    store = fresh()
    base = layer({"etc/base": b"base\n"})
    one = make_image(store, [base], "one:1")
    two = make_image(store, [base, layer({"two": b"2\n"})])  # no name: saved by its ID
    data = saved(store, "one", two.id[7:19])
    files = members(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = [m.name for m in tar if m.isreg()]
    assert len(names) == len(set(names)), f"an entry is written twice: {names}"
    shared = {one.manifest_digest, two.manifest_digest, one.id, two.id, *(l["digest"] for l in one.layers + two.layers)}
    assert {n for n in names if n.startswith("blobs/")} == {archive.blob_path(d) for d in shared} and len(shared) == 6, \
        f"each blob is written once, the shared layer too ({DOCS})"
    assert [i["RepoTags"] for i in json.loads(files["manifest.json"])] == [["one:1"], None]
    assert archive.load(fresh(), io.BytesIO(data)) == ["Loaded image: one:1", f"Loaded image ID: {two.id}"], \
        f"an untagged image is reported by its ID, as Docker does ({DOCS})"


# -- other tools read what we write, we read what they write -------------------------------------

def run(*argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"`{' '.join(argv)}` failed: {out.stderr.strip()}"
    return out.stdout


def test_skopeo_and_oci_tools_read_the_archive(fresh, tmp_path):
    store = fresh()
    image = builtin.busybox(store)
    path = tmp_path / "busybox.tar"
    path.write_bytes(saved(store, "busybox"))
    # skopeo's docker-archive: reader follows manifest.json (Docker's legacy reader's rules: it
    # decompresses each layer and checks it against the config's diff_id); oci-archive: the OCI layout.
    for source in (f"docker-archive:{path}", f"oci-archive:{path}:latest"):
        copy = tmp_path / source.split(":")[0]
        run("skopeo", "copy", "--quiet", source, f"oci:{copy}:x")
        manifest = json.loads((copy / "blobs/sha256" / json.loads((copy / "index.json").read_text())["manifests"][0]["digest"][7:]).read_text())
        assert manifest["config"]["digest"] == image.id, f"{source}: skopeo sees another image ID ({DOCS})"
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    run("tar", "-xf", str(path), "-C", str(extracted))
    # (Debian's oci-image-tool has no `--type imageLayout`: `--type image` on a directory checks the layout.)
    run("oci-image-tool", "validate", "--type", "image", str(extracted))
    assert "latest" in run("umoci", "ls", "--layout", str(extracted)).split(), f"umoci lists the image by its tag ({DOCS})"


def test_an_archive_skopeo_writes_as_docker_24_did_loads_with_the_same_id(fresh, tmp_path):
    store = fresh()
    image = builtin.busybox(store)
    path = tmp_path / "legacy.tar"
    run("skopeo", "copy", "--quiet", f"oci:{store.path}:{builtin.NAME}", f"docker-archive:{path}:example.com/bb:v1")
    files = members(path.read_bytes())
    assert "manifest.json" in files and "index.json" not in files, "skopeo wrote the legacy form"
    other = fresh()
    with open(path, "rb") as f:
        assert archive.load(other, f) == ["Loaded image: example.com/bb:v1"]
    assert other.image("example.com/bb:v1").id == image.id, f"a legacy archive keeps the image ID ({DOCS})"


@pytest.mark.parametrize("compress", ["gzip", "zstd", "plain"])
def test_a_hand_built_oci_archive_loads(fresh, compress):
    """An OCI layout tar as an OCI tool writes it: an index that points at a multi-platform index,
    ref.name holding the name, a compressed layer, ./-prefixed names, blobs before index.json."""
    from backports import zstd

    tar = layer({"hello": b"hi\n"})
    blob = {"gzip": gzip.compress, "zstd": zstd.compress, "plain": bytes}[compress](tar)
    config = media.to_json({"architecture": builtin.ARCHITECTURES[os.uname().machine], "os": "linux",
                            "rootfs": {"type": "layers", "diff_ids": [digest.of(tar)]}})
    manifest = media.to_json({"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                              "config": {"mediaType": media.OCI_CONFIG, "digest": digest.of(config), "size": len(config)},
                              "layers": [{"mediaType": media.OCI_LAYER_GZIP, "digest": digest.of(blob), "size": len(blob)}]})
    platforms = [{"mediaType": media.OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 1,
                  "platform": {"architecture": "riscv1", "os": "linux"}},  # not here: never read
                 {"mediaType": media.OCI_MANIFEST, "digest": digest.of(manifest), "size": len(manifest),
                  "platform": {"architecture": builtin.ARCHITECTURES[os.uname().machine], "os": "linux"}}]
    inner = media.to_json({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": platforms})
    index = media.to_json({"schemaVersion": 2, "manifests": [
        {"mediaType": media.OCI_INDEX, "digest": digest.of(inner), "size": len(inner),
         "annotations": {media.REF_NAME: "example.com/hello:1"}}]})
    files = {f"./blobs/sha256/{digest.of(b)[7:]}": b for b in (blob, config, manifest, inner)}
    data = tar_of({**files, "./oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "./index.json": index})
    store = fresh()
    assert archive.load(store, io.BytesIO(data)) == ["Loaded image: example.com/hello:1"]
    image = store.image("example.com/hello:1")
    assert image.id == digest.of(config), f"the image ID is the config's digest ({DOCS})"
    with open(os.path.join(layers.directories(image)[0], "hello"), "rb") as f:
        assert f.read() == b"hi\n", "the layer is unpacked"


def test_a_docker_24_archive_with_a_shared_layer_as_a_symlink_loads_from_a_pipe(fresh, md):
    """Docker ≤ 24: <hex>.json configs, <dir>/layer.tar layers, and a layer two images share
    written once, the other image's directory holding a symlink to it. No manifest: load makes one."""
    base, top = layer({"base": b"b\n"}), layer({"top": b"t\n"})
    configs = [media.to_json({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": ids}})
               for ids in ([digest.of(base)], [digest.of(base), digest.of(top)])]
    manifest = [{"Config": f"{digest.of(c)[7:]}.json", "RepoTags": tags, "Layers": paths} for c, tags, paths in zip(
        configs, (["base:1"], ["top:1", "top:latest"]), (["aaa/layer.tar"], ["bbb/layer.tar", "ccc/layer.tar"]))]
    data = tar_of({"aaa/layer.tar": base, "ccc/layer.tar": gzip.compress(top),  # Docker's loader takes gzip too
                   **{f"{digest.of(c)[7:]}.json": c for c in configs},
                   "manifest.json": json.dumps(manifest).encode()}, links={"bbb/layer.tar": "../aaa/layer.tar"})
    store = fresh()
    out = md("load", input=data, binary=True)
    assert out.returncode == 0, f"load from a pipe failed: {harness.explain(out)} ({DOCS})"
    assert out.stdout.decode().splitlines() == ["Loaded image: base:1", "Loaded image: top:1", "Loaded image: top:latest"]
    assert store.image("top").id == digest.of(configs[1]), f"the legacy config is kept byte for byte ({DOCS})"
    assert [l["mediaType"] for l in store.image("top").layers] == [media.OCI_LAYER, media.OCI_LAYER_GZIP], \
        f"the manifest made for a legacy image says which layer is compressed ({DOCS}#ex-03-legacy-manifest)"


def test_save_and_load_through_the_cli(fresh, md, tmp_path):
    store = fresh()
    image = builtin.busybox(store)
    out = md("save", "-o", tmp_path / "bb.tar", "busybox")
    assert out.returncode == 0 and out.stdout == "", harness.explain(out)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == [], "save leaves no temporary file"
    fresh()
    out = md("load", "-i", tmp_path / "bb.tar")
    assert (out.returncode, out.stdout) == (0, BUSYBOX_ID_LINE + "\n"), harness.explain(out)
    out = md("image", "inspect", "--format", "{{.Id}}", "busybox")
    assert out.stdout.strip() == image.id, f"the loaded image has the saved ID ({DOCS}) {harness.explain(out)}"
    piped = md("save", "busybox", binary=True)
    assert piped.stdout == (tmp_path / "bb.tar").read_bytes(), "save to a pipe writes the same archive as -o"
    # Docker will not write a tar to a terminal.
    terminal, other_end = pty.openpty()
    try:
        out = subprocess.run([sys.executable, "-m", "minidocker", "save", "busybox"], stdout=other_end,
                             stderr=subprocess.PIPE, text=True, env=harness.cli_env(), timeout=60)
    finally:
        os.close(terminal)
        os.close(other_end)
    assert out.returncode == 125 and "cowardly refusing to save to a terminal" in out.stderr, \
        f"save to a terminal: {out.stderr} ({DOCS})"


# -- bad input: one clear line, nothing half-made -------------------------------------------------

def _good(store) -> bytes:
    """A small archive of a two-layer image, good:1."""
    make_image(store, [layer({"f": b"x" * 3000}), layer({"g": os.urandom(500)})], "good:1")
    return saved(store, "good:1")


def _bad_archives(good: bytes) -> dict[str, bytes]:
    files = members(good)
    blob = max((n for n in files if n.startswith("blobs/sha256/") and files[n]), key=lambda n: len(files[n]))
    corrupt = dict(files, **{blob: files[blob][:-1] + bytes([files[blob][-1] ^ 1])})
    items = json.loads(files["manifest.json"])
    items[0]["Layers"][0] = "blobs/sha256/" + "e" * 64
    missing = {n: c for n, c in files.items() if n not in ("index.json",) and c is not None}
    missing["manifest.json"] = json.dumps(items).encode()
    regular = {n: c for n, c in files.items() if c is not None}
    return {
        "truncated": good[: len(good) // 2],
        "a corrupt blob": tar_of({n: c for n, c in corrupt.items() if c is not None}),
        "manifest.json names a missing file": tar_of(missing),
        "a ../ path": tar_of({**regular, "../evil": b"x"}),
        "an absolute path": tar_of({**regular, "/etc/evil": b"x"}),
        "a symlink out": tar_of(regular, links={"blobs/sha256/" + "f" * 64: "../../../etc/passwd"}),
        "garbage": os.urandom(4096),
        "empty": b"",
        "a tar of nothing useful": tar_of({"hello.txt": b"hi"}),
    }


def test_a_bad_archive_is_one_clear_error_and_leaves_nothing(fresh, md):
    source = fresh()
    good = _good(source)
    bad = _bad_archives(good)
    # Layers that unpack refuses (chapter 02's rules), and one that is not what its diff_id says.
    make_image(source, [layer({"../escape": b"x"})], "hostile:1")
    bad["a hostile layer"] = saved(source, "hostile:1")
    liar = make_image(source, [layer({"a": b"a"})], "liar:1")
    config = dict(liar.config, rootfs={"type": "layers", "diff_ids": ["sha256:" + "1" * 64]})
    bad["a layer that is not its diff_id"] = tar_of({
        "manifest.json": json.dumps([{"Config": "c.json", "RepoTags": ["liar:1"], "Layers": ["l.tar"]}]).encode(),
        "c.json": media.to_json(config), "l.tar": layer({"a": b"a"})})
    store = fresh()
    before = visible(store)
    for what, data in bad.items():
        with pytest.raises(MinidockerError) as refused:
            archive.load(store, io.BytesIO(data))
        assert any(w in str(refused.value) for w in ("invalid archive", "mismatch", "layer")), f"{what}: {refused.value}"
        assert visible(store) == before, f"{what}: a refused load left something in the store ({DOCS})"
        out = md("load", input=data, binary=True)
        err = out.stderr.decode()
        assert out.returncode == 125 and err.count("\n") == 1 and err.startswith("minidocker: "), \
            f"{what}: not one clear line: {harness.explain(out)} ({DOCS})"
        assert visible(store) == before, f"{what}: a refused CLI load left something ({DOCS})"


@settings(max_examples=40)
@given(cut=st.floats(0, 1), gzipped=st.booleans())
def test_a_load_cut_anywhere_succeeds_or_fails_cleanly(fresh, cut, gzipped):
    store = fresh()
    good = _good(store)
    data = gzip.compress(good, mtime=0) if gzipped else good  # docker load also takes a gzipped archive
    data = data[: int(len(data) * cut)]
    other = fresh()
    try:
        lines = archive.load(other, io.BytesIO(data))
    except MinidockerError:
        assert visible(other) == ([], []), f"a cut archive at {len(data)} bytes left a half image ({DOCS})"
    else:
        assert lines == ["Loaded image: good:1"] and other.image("good:1"), "a load that succeeds loads all"


def test_load_killed_half_way_leaves_no_half_image(fresh, md):
    store = fresh()
    big = make_image(store, [layer({"big": os.urandom(3 << 20)})], "big:1", compress=bytes)  # > archive.SMALL
    data = saved(store, "big")
    other = fresh()
    loader = harness.popen_cli("load", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        loader.stdin.write(data[: len(data) // 2])  # the big layer is half-way into the ingest area
        loader.stdin.flush()
        harness.wait_until(lambda: os.listdir(other.ingest_dir), "the load to start writing a blob")
    finally:
        loader.send_signal(signal.SIGKILL)
        loader.communicate()
    assert other.entries() == [], f"a killed load named an image ({DOCS})"
    out = md("load", input=data, binary=True)  # the next command cleans what the killed one left
    assert out.returncode == 0, harness.explain(out)
    assert os.listdir(other.ingest_dir) == [], f"the next load cleaned the ingest area ({DOCS})"
    assert other.image("big:1").id == big.id
