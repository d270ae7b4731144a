"""save and load: images in and out of one tar file, in the formats Docker writes and reads.

`docker save` has written its archives in three ways over the years, and `load` reads all three:

- **legacy** (Docker ≤ 24, skopeo's `docker-archive:`): `manifest.json` lists the images,
  `[{"Config": "<hex>.json", "RepoTags": ["busybox:latest"], "Layers": ["<dir>/layer.tar", …]}]`.
  Layers are plain tars; a layer two images share may be a symlink to the other image's file.
- **OCI image layout** (skopeo's `oci-archive:`, containerd's export): `oci-layout`, `index.json`
  and `blobs/sha256/<hex>`: the very format of our store (layout.py), in a tar.
- **combined** (Docker 25+): both at once. manifest.json's paths point into blobs/, so each blob
  is in the tar once, and old and new readers each find what they look for.

`save` writes the combined form. `load` must also read from a pipe (`docker save x | minidocker
load`), which can be read once and never seeked, while the file that says what the archive holds
(index.json, manifest.json) may come last. So each file is dealt with as it streams by:
blobs/sha256/<hex> goes straight into the store's ingest area and is verified against its name;
other big files (legacy layer tars) are ingested under the digest they turn out to have; small
ones (index.json, manifest.json, configs) are kept in memory. Nothing gets a name until the whole
archive is read and checked and every layer is unpacked; then, under the store's lock, the names
are written last. A load that fails or is killed leaves at most blobs that no name reaches, which
garbage collection frees: never a half image. See docs/03-images.md#save-and-load.
"""

import io
import json
import os
import posixpath
import re
import tarfile
import zlib

from minidocker.errors import MinidockerError
from minidocker.image import compression, digest as digests, layout as layouts, media, reference

INDEX_JSON, MANIFEST_JSON, OCI_LAYOUT = "index.json", "manifest.json", "oci-layout"
BLOB_NAME = re.compile(r"blobs/sha256/([0-9a-f]{64})")
SMALL = 1 << 20  # files up to this size are kept in memory; bigger ones go to the store at once
CHUNK = 1 << 20
HINT = "is it an archive written by `docker save` or `minidocker save`?"


def blob_path(digest: str) -> str:
    """Where a blob sits in an OCI layout, and so in the archive: blobs/sha256/<hex>."""
    return "blobs/sha256/" + digests.hex_of(digest)


# ---------------------------------------------------------------------------------------------
# save: images -> one tar, in Docker 25's combined form

def save(layout, names: list[str], out) -> None:
    """Write the images that `names` name (names, IDs or ID prefixes) to `out`, a binary file."""
    chosen = choose(layout, names)
    index, legacy, blobs = [], [], {}
    for image, refs in chosen:
        # --8<-- [start:save-entries]
        # index.json: one entry per tag, as Docker 25 writes it: the full name for containerd
        # and Docker, the bare tag as the OCI spec's ref.name (what `skopeo oci:DIR:TAG` matches).
        target = image.descriptor()
        os_arch = {k: image.config[k] for k in ("architecture", "os", "variant") if image.config.get(k)}
        for ref in refs or [None]:
            entry = dict(target)
            if ref:
                entry["annotations"] = {media.IMAGE_NAME: str(ref), media.REF_NAME: ref.tag}
            if os_arch:
                entry["platform"] = os_arch
            index.append(entry)
        # manifest.json: the same image for readers from before OCI layouts. Its paths point at the
        # same blobs, so nothing is written twice.
        legacy.append({"Config": blob_path(image.id),
                       "RepoTags": [ref.familiar() for ref in refs] or None,
                       "Layers": [blob_path(layer["digest"]) for layer in image.layers]})
        # --8<-- [end:save-entries]
        for d in (target, image.manifest["config"], *image.layers):
            blobs[d["digest"]] = d["size"]
    files = {
        OCI_LAYOUT: media.to_json(layouts.LAYOUT_VERSION),
        INDEX_JSON: media.to_json({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": index}),
        MANIFEST_JSON: media.to_json(legacy) + b"\n",
    }
    # Layers go out as the store holds them, gzip-compressed or plain: Docker's own loader
    # decompresses every layer of manifest.json before it checks the config's diff_id (so do
    # skopeo's docker-archive reader and containerd's importer), and index.json's manifest is then
    # the very manifest we stored, with its digest. Docker 25+ with the containerd store does the
    # same; with the older graph-driver store it writes plain tars, because it keeps no compressed copy.
    _write_tar(layout, files, blobs, out)


def choose(layout, names: list[str]) -> list[tuple]:
    """The images to save and, for each, the tags to save it under, in Docker's way: "busybox"
    alone means every tag of busybox; "busybox:1" that tag; an ID or "name@digest" no tag."""
    chosen: dict[str, tuple] = {}
    for text in names:
        for image, ref in _lookup(layout, text):
            _, refs = chosen.setdefault(image.manifest_digest, (image, []))
            if ref and ref not in refs:
                refs.append(ref)
    return list(chosen.values())


def _lookup(layout, text: str) -> list[tuple]:
    if text.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{64}", text):
        return [(layout.image(text), None)]
    written, full = reference.parse(text), reference.normalize(text)
    if written.tag is None and written.digest is None:
        tagged = []
        for image in layout.images():
            for name in image.names:
                ref = reference.parse(name)
                if ref.name == full.name and ref.tag and not ref.digest:
                    tagged.append((image, ref))
        return tagged or [(layout.image(text), None)]  # an ID prefix, or Docker's "No such image"
    return [(layout.image(text), None if full.digest else full)]


def _write_tar(layout, files: dict[str, bytes], blobs: dict[str, int], out) -> None:
    """A reproducible tar: sorted names, and no time, owner or mode that depends on the machine or
    the day. The same images give the same bytes, so an archive can itself be checksummed."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        for directory in ("blobs/", "blobs/sha256/"):
            tar.addfile(_entry(directory, 0, tarfile.DIRTYPE))
        for digest in sorted(blobs):
            # A blob is checked as it goes out: a store damaged on disk must not become an
            # archive that looks fine until someone loads it.
            with layout.open_blob(digest) as f:
                checked = _Checked(f, digests.Verifier(digest, blobs[digest]))
                tar.addfile(_entry(blob_path(digest), blobs[digest]), checked)
                checked.verifier.verify(f"blob {digest} in the image store")
        for name in sorted(files):
            tar.addfile(_entry(name, len(files[name])), io.BytesIO(files[name]))


def _entry(name: str, size: int, kind=tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 0  # Docker sets its archive's times to the epoch too
    return info


class _Checked:
    """A file reader that feeds what it reads to a digest Verifier."""

    def __init__(self, f, verifier):
        self.f, self.verifier = f, verifier

    def read(self, n: int = -1) -> bytes:
        chunk = self.f.read(n)
        self.verifier.update(chunk)
        return chunk


# ---------------------------------------------------------------------------------------------
# load: one tar -> images in the store

class _File:
    """One regular file of the archive: its size and digest, and its bytes when it is small (a
    big one is already a verified blob in the store)."""

    def __init__(self, size: int, digest: str, data: bytes | None = None):
        self.size, self.digest, self.data = size, digest, data


class _Archive:
    """What a streamed archive held: files by name, and its links (name -> the name they point to)."""

    def __init__(self, layout):
        self.layout = layout
        self.files: dict[str, _File] = {}
        self.by_digest: dict[str, _File] = {}
        self.links: dict[str, str] = {}

    def file(self, name: str, where: str) -> _File:
        name = _safe(name)
        for _ in range(16):  # links to links: a loop ends here
            if name in self.files:
                return self.files[name]
            if name not in self.links:
                break
            name = self.links[name]
        raise MinidockerError(f"invalid archive: {where} names {name!r}, which the archive does not hold", HINT)

    def blob(self, descriptor: dict, what: str) -> _File:
        """The blob a descriptor points at. Content addressing makes its place in the archive
        irrelevant (blobs/sha256/<hex> in an OCI layout, <hex>.json in a legacy one): any file with
        that digest will do, and so will the store's own copy when the archive leaves it out."""
        digest = digests.check(descriptor.get("digest"))
        found = self.by_digest.get(digest)
        if found is None:
            if not self.layout.has_blob(digest):
                raise MinidockerError(f"invalid archive: the {what} {digest} is missing", HINT)
            with self.layout.open_blob(digest) as f:
                found = _File(f.seek(0, 2), digest)
        if found.size != descriptor.get("size"):
            raise MinidockerError(f"invalid archive: the {what} {digest[:19]}… has {found.size} bytes, "
                                  f"its descriptor says {descriptor.get('size')}", HINT)
        return found

    def read(self, found: _File) -> bytes:
        if found.data is not None:
            return found.data
        with self.layout.open_blob(found.digest) as f:
            return f.read()

    def head(self, found: _File) -> bytes:
        """A file's first bytes, where a compressed stream says what it is (its "magic")."""
        if found.data is not None:
            return found.data[:4]
        with self.layout.open_blob(found.digest) as f:
            return f.read(4)

    def json(self, found: _File, what: str):
        try:
            return json.loads(self.read(found))
        except ValueError:
            raise MinidockerError(f"invalid archive: the {what} is not JSON", HINT) from None


def load(layout, fileobj) -> list[str]:
    """Load every image of the archive in `fileobj`; returns Docker's lines ("Loaded image: …")."""
    from minidocker.image import layers

    # The lease: blobs this load stores before they have a name are not garbage to a concurrent
    # `image prune`. Taking it also cleans what killed writers left in the ingest area.
    with layout.writing():
        archive = read_archive(layout, fileobj)
        try:
            found = images_in(archive)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as e:
            raise MinidockerError(f"invalid archive: unexpected content ({type(e).__name__}: {e})", HINT) from None
        images = [(_store(layout, archive, *one), refs) for *one, refs in found]
        for image, _ in images:
            layers.unpack(layout, image)  # every layer checked against its diff_id, and unpacked
        return _name(layout, images)


def read_archive(layout, fileobj) -> _Archive:
    """Read the tar stream once, front to back (see the module's docstring)."""
    archive = _Archive(layout)
    try:
        # "r|*": a stream, maybe gzip-, bzip2- or xz-compressed, as `docker load` accepts.
        with tarfile.open(fileobj=fileobj, mode="r|*", tarinfo=_Entry) as tar:
            for member in tar:
                name = _safe(member.name)
                if member.issym():  # relative to its own directory
                    archive.links[name] = _safe(posixpath.join(posixpath.dirname(name), member.linkname))
                elif member.islnk():  # a hard link names another entry from the archive's top
                    archive.links[name] = _safe(member.linkname)
                elif member.isreg():
                    found = archive.files[name] = _take(layout, tar.extractfile(member), member.size, name)
                    archive.by_digest[found.digest] = found
                # Directories say nothing we need; devices and fifos have no place in an image archive.
            if not getattr(tar, "ended", False):
                raise tarfile.ReadError("unexpected end of data: the archive is cut short")
    except (tarfile.TarError, EOFError, zlib.error) as e:  # truncated, or not a tar at all
        raise MinidockerError(f"invalid archive: {e or type(e).__name__}", HINT) from None
    if not archive.files:
        raise MinidockerError("invalid archive: it holds no files", HINT)
    return archive


class _Entry(tarfile.TarInfo):
    """tarfile ends its members quietly both at the end-of-archive marker (a zero block) and where
    the data runs out; the second is a truncated archive, and a load must say so, not guess."""

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            tar.ended = True
            raise


def _safe(name: str) -> str:
    """A name inside the archive, or a refusal. We never write the archive's files to disk by
    their names, but a name that leaves the archive (absolute, ../) is a hostile archive."""
    clean = posixpath.normpath(name)
    if name.startswith("/") or clean == ".." or clean.startswith("../"):
        raise MinidockerError(f"invalid archive: unsafe path {name!r}", "an archive's paths must stay inside it")
    return clean


# --8<-- [start:take]
def _take(layout, f, size: int, name: str) -> _File:
    """One regular file, as it streams by: kept (small), or ingested into the store (big). A file
    named blobs/sha256/<hex> is verified against that name, either way."""
    named = BLOB_NAME.fullmatch(name)
    expected = "sha256:" + named[1] if named else None
    if size <= SMALL:
        data = f.read(size)
        verifier = digests.Verifier(expected, size)
        verifier.update(data)
        verifier.verify(f"invalid archive: {name}")
        return _File(size, verifier.digest, data)
    with layout.ingest(expected, size) as w:
        while chunk := f.read(CHUNK):
            w.write(chunk)
    return _File(size, w.digest)
# --8<-- [end:take]


def images_in(archive: _Archive) -> list[tuple]:
    """(manifest file, manifest, names) for each image of the archive: those of index.json (OCI and
    Docker 25+), then those of manifest.json that index.json does not list (Docker ≤ 24)."""
    found: dict[str, tuple] = {}  # by manifest digest: Docker 25 lists an image once per tag
    by_config: dict[str, list] = {}  # config digest -> that image's names

    def add(manifest_file: _File, manifest: dict, refs: list) -> None:
        _, _, names = found.setdefault(manifest_file.digest, (manifest_file, manifest, []))
        names.extend(r for r in refs if r not in names)
        by_config.setdefault(manifest["config"]["digest"], names)

    if INDEX_JSON in archive.files:
        index = archive.json(archive.files[INDEX_JSON], INDEX_JSON)
        for entry in index["manifests"]:
            add(*_one_platform(archive, entry), _names_of(entry.get("annotations") or {}))
    if MANIFEST_JSON in archive.files:
        items = archive.json(archive.files[MANIFEST_JSON], MANIFEST_JSON)
        if not isinstance(items, list):
            raise MinidockerError("invalid archive: manifest.json is not a list of images", HINT)
        for item in items:
            refs = [_tag(text) for text in item.get("RepoTags") or []]
            config = archive.file(item["Config"], MANIFEST_JSON)
            if config.digest in by_config:  # the same image as an index.json entry: add its tags
                names = by_config[config.digest]
                names.extend(r for r in refs if r not in names)
                continue
            manifest = _manifest_for(archive, config, [archive.file(p, MANIFEST_JSON) for p in item["Layers"]])
            data = media.to_json(manifest)
            add(_File(len(data), digests.of(data), data), manifest, refs)
    if INDEX_JSON not in archive.files and MANIFEST_JSON not in archive.files:
        raise MinidockerError("invalid archive: neither index.json nor manifest.json is in it", HINT)
    return list(found.values())


def _one_platform(archive: _Archive, entry: dict) -> tuple[_File, dict]:
    """An index.json entry's manifest; for an index (a multi-platform image), this machine's."""
    for _ in range(4):  # indexes nest (an index of indexes); not deeper than this
        manifest_file = archive.blob(entry, "manifest")
        manifest = archive.json(manifest_file, "manifest")
        kind = manifest.get("mediaType") or entry.get("mediaType")
        if kind not in media.INDEXES and "manifests" not in manifest:
            return manifest_file, manifest
        here = {"os": "linux", "architecture": _go_arch()}
        fits = [m for m in manifest["manifests"]
                if all((m.get("platform") or {}).get(k) == v for k, v in here.items())]
        if not fits and len(manifest["manifests"]) != 1:
            raise MinidockerError(f"no image for linux/{here['architecture']} in the archive's index",
                                  "save the image for this machine's platform")
        entry = (fits or manifest["manifests"])[0]
    raise MinidockerError("invalid archive: indexes nested too deep", HINT)


def _go_arch() -> str:
    """This machine's architecture in Go's words, which images use."""
    from minidocker.image.builtin import ARCHITECTURES

    return ARCHITECTURES.get(os.uname().machine, os.uname().machine)


def _manifest_for(archive: _Archive, config: _File, layer_files: list[_File]) -> dict:
    """A legacy image has no manifest: make the one a registry would hold. The config is kept
    byte for byte, so the image ID (its digest) is the one Docker showed."""
    # --8<-- [start:ex-03-legacy-manifest]
    # Build an OCI manifest: the config's descriptor (media.OCI_CONFIG, config.digest, config.size)
    # and one descriptor per layer file, its media type from its first bytes: gzip (1f 8b) is
    # OCI_LAYER_GZIP, zstd (28 b5 2f fd) OCI_LAYER_ZSTD, else OCI_LAYER. archive.head(f) reads them.
    layer_descriptors = []
    for layer in layer_files:
        head = archive.head(layer)
        if head.startswith(compression.GZIP_MAGIC):
            media_type = media.OCI_LAYER_GZIP
        elif head.startswith(compression.ZSTD_MAGIC):
            media_type = media.OCI_LAYER_ZSTD
        else:
            media_type = media.OCI_LAYER
        layer_descriptors.append({"mediaType": media_type, "digest": layer.digest, "size": layer.size})
    return {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
            "config": {"mediaType": media.OCI_CONFIG, "digest": config.digest, "size": config.size},
            "layers": layer_descriptors}
    # --8<-- [end:ex-03-legacy-manifest]


def _names_of(annotations: dict) -> list:
    """An index.json entry's name. containerd and Docker write the full name under their key; the
    OCI spec's ref.name is often a bare tag ("latest"), a name only when it holds a / or a :."""
    text = annotations.get(media.IMAGE_NAME) or annotations.get(media.REF_NAME) or ""
    return [_tag(text)] if "/" in text or ":" in text else []


def _tag(text: str):
    """A name from the archive, normalised; Docker loads only names with a tag."""
    try:
        ref = reference.normalize(text)
    except MinidockerError as e:
        raise MinidockerError(f"invalid archive: the name {text!r}: {e}", HINT) from None
    if ref.digest:
        raise MinidockerError(f'invalid archive: invalid tag "{text}"', "an image is loaded under a name:tag")
    return ref


def _store(layout, archive: _Archive, manifest_file: _File, manifest: dict) -> layouts.Image:
    """Check one image whole and store the blobs that are still in memory; returns the Image."""
    if (manifest.get("mediaType") or media.OCI_MANIFEST) not in media.MANIFESTS:
        raise MinidockerError(f"invalid archive: unsupported manifest type {manifest.get('mediaType')!r}", HINT)
    config_file = archive.blob(manifest["config"], "config")
    config = archive.json(config_file, "config")
    diff_ids = config["rootfs"]["diff_ids"]
    layer_files = [archive.blob(d, "layer") for d in manifest["layers"]]
    if len(layer_files) != len(diff_ids):  # Docker's words
        raise MinidockerError(f"invalid manifest, layers length mismatch: expected {len(layer_files)}, "
                              f"got {len(diff_ids)}", HINT)
    # The manifest last: once it is in the store, everything it points at is there too.
    for found in (*layer_files, config_file, manifest_file):
        if found.data is not None:
            layout.put(found.data, "")  # put verifies the bytes again, as every write to the store
    return layout.load(manifest_file.digest)


# --8<-- [start:name-last]
def _name(layout, images: list[tuple]) -> list[str]:
    """The last step: give the images their names, under the store's lock."""
    lines = []
    with layout.lock():
        before = {name: image.id for image in layout.images() for name in image.names}
        for image, refs in images:
            if not refs:
                layout.add(image.descriptor())
                lines.append(f"Loaded image ID: {image.id}")
            for ref in refs:
                old = before.get(str(ref))
                if old and old != image.id:  # Docker says so, and the old image becomes <none>
                    lines.append(f"The image {ref.familiar()} already exists, renaming the old one "
                                 f"with ID {old} to empty string")
                layout.tag(str(ref), image.descriptor())
                lines.append(f"Loaded image: {ref.familiar()}")
    return lines
# --8<-- [end:name-last]
