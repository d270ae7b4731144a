"""Unpacked layers: each layer of each image, as a directory overlayfs can stack.

A container needs its image's layers as directories (the overlay's lowerdirs, chapter 02). Two
images built on the same base share its layers, so a layer is unpacked once and named by its
*chain ID*, as Docker's layer store does:

    layers/<chain id hex>/diff          the layer's files, its deletions kept as overlayfs markers
    layers/<chain id hex>/layer.json    {"chainID", "diffID", "parent", "size"}
    layers/ingest/                      layers being unpacked; renamed into place once whole

Why the chain ID and not the layer's own digest: a layer's tar only makes sense on top of the
layers below it (a whiteout deletes *their* file). The same tar over another base is another
filesystem, so the name of an unpacked layer must say what is below it too.
See docs/03-images.md#chain-ids.
"""

import contextlib
import errno
import fcntl
import json
import os

from minidocker import store
from minidocker.errors import MinidockerError
from minidocker.image import digest as digests
from minidocker.image.layout import claim, clean_orphans


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ID of each layer: the first layer's is its diff_id; each next one is the digest
    of "<chain ID below> <its diff_id>" (the OCI image spec's definition)."""
    # --8<-- [start:ex-03-chain-id]
    # Return the chain ID of each layer, lowest first: the first is its diff_id, every next one
    # digest.of(f"{chain ID below} {diff_id}".encode()).
    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append(digests.of(f"{chain[-1]} {diff_id}".encode()))
    return chain
    # --8<-- [end:ex-03-chain-id]


def root() -> str:
    return store.directory("layers")


def path_of(chain_id: str) -> str:
    return os.path.join(root(), digests.hex_of(chain_id))


def directories(image) -> list[str]:
    """The image's layer directories, lowest first (overlayfs wants them the other way round)."""
    return [os.path.join(path_of(c), "diff") for c in chain_ids(image.diff_ids)]


def unpack(layout, image) -> list[str]:
    """Make sure every layer of `image` is unpacked; returns `directories(image)`."""
    if len(image.layers) != len(image.diff_ids):
        raise MinidockerError(f"image {image.id[7:19]} is invalid: {len(image.layers)} layers but "
                              f"{len(image.diff_ids)} diff_ids in its config", "pull or load it again")
    chain = chain_ids(image.diff_ids)
    for i, (descriptor, diff_id) in enumerate(zip(image.layers, image.diff_ids)):
        if not os.path.isdir(os.path.join(path_of(chain[i]), "diff")):
            _unpack_one(layout, descriptor, diff_id, chain[i], chain[i - 1] if i else "")
    return directories(image)


# --8<-- [start:unpack]
def _unpack_one(layout, descriptor: dict, diff_id: str, chain_id: str, parent: str) -> None:
    # Imported here: a `run` of an image whose layers are unpacked needs none of them (~17 ms).
    import shutil

    from minidocker.image import compression
    from minidocker.unionfs import changeset

    ingest = os.path.join(root(), "ingest")
    os.makedirs(ingest, exist_ok=True)
    clean_orphans(ingest)  # what a killed unpack left
    tmp, fd = claim(ingest, _new_directory)  # locked: no cleaner takes it while we work
    try:
        os.mkdir(os.path.join(tmp, "diff"), 0o755)
        with layout.open_blob(descriptor["digest"]) as blob:
            # The diff_id is the digest of the *uncompressed* tar: hash it as it is read.
            tar = _Hashing(compression.decompressed(blob), digests.Verifier(diff_id))
            changeset.apply(tar, os.path.join(tmp, "diff"), markers=True)
            tar.drain()
            tar.verifier.verify(f"layer {descriptor['digest'][7:19]} (diff_id {diff_id[7:19]})")
        meta = {"chainID": chain_id, "diffID": diff_id, "parent": parent,
                "size": _disk_usage(os.path.join(tmp, "diff"))}
        store.write_json(os.path.join(tmp, "layer.json"), meta)
        try:
            os.rename(tmp, path_of(chain_id))  # whole, or not there at all
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            # Another pull unpacked the same layer first: theirs is as good as ours.
    except MinidockerError:
        raise
    except Exception as e:  # a gzip or zstd stream that is cut short or corrupt (zlib.error...)
        raise MinidockerError(f"cannot unpack layer {descriptor['digest'][7:19]}: {e}",
                              "the layer blob is corrupt: pull or load the image again") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)
# --8<-- [end:unpack]


class _Hashing:
    """A reader that hashes what passes through it (tarfile reads the layer; we see every byte)."""

    def __init__(self, reader, verifier):
        self.reader, self.verifier = reader, verifier

    def read(self, size: int = -1) -> bytes:
        data = self.reader.read(size)
        self.verifier.update(data)
        return data

    def seekable(self) -> bool:
        return False

    def drain(self) -> None:
        """Read what tarfile left after the end-of-archive blocks: it counts in the diff_id."""
        while self.read(1 << 20):
            pass


def _new_directory(path: str) -> int:
    os.mkdir(path, 0o700)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _disk_usage(path: str) -> int:
    """The size Docker shows for a layer: the apparent size of its files and links, each inode
    once (a hard link is not a second copy). Directories do not count: their size is the
    filesystem's bookkeeping (4096 on ext4, something else on tmpfs), not the layer's content."""
    total, seen = 0, set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total


def size(chain_id: str) -> int:
    """The unpacked size of one layer (0 when it is not unpacked)."""
    try:
        with open(os.path.join(path_of(chain_id), "layer.json")) as f:
            return json.load(f)["size"]
    except (OSError, ValueError, KeyError):
        return 0


def collect_garbage(layout, used_by_containers: set[str] = frozenset()) -> int:
    """Remove every unpacked layer that no image in `layout` and no container needs
    (`used_by_containers`: the layer directories containers run on). Returns the bytes freed."""
    import shutil

    with open(os.path.join(layout.path, ".lease"), "a") as lease:
        fcntl.flock(lease, fcntl.LOCK_EX)  # no pull or load is half-way (layout.writing)
        keep = {digests.hex_of(c) for image in layout.images() for c in chain_ids(image.diff_ids)}
        keep |= {os.path.basename(os.path.dirname(os.path.normpath(d))) for d in used_by_containers}
        freed = 0
        for name in os.listdir(root()):
            if name != "ingest" and name not in keep:
                freed += size("sha256:" + name) if digests.DIGEST_RE.fullmatch("sha256:" + name) else 0
                shutil.rmtree(os.path.join(root(), name), ignore_errors=True)
        return freed
