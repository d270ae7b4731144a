"""The image store: an OCI image layout, the same directory format `skopeo`, `umoci` and Docker's
`save` use, so other tools read $MINIDOCKER_ROOT/images as it is.

    images/
      oci-layout            {"imageLayoutVersion": "1.0.0"}: "this directory is an OCI layout"
      index.json            the entry points: one descriptor per named (or dangling) image
      blobs/sha256/<hex>    every manifest, config and layer, named by its digest
      ingest/               blobs being written; renamed into blobs/ once verified

Three rules keep it whole whatever happens (see docs/03-images.md#the-store):
- **verify, then publish.** A blob is written under ingest/, checked against its digest and size,
  and only then renamed into blobs/ (one atomic rename). blobs/ never holds a wrong byte.
- **the name last.** index.json changes only after every blob an image needs is in place: a
  killed pull leaves blobs nobody names (freed by the next garbage collection), never a half image.
- **locks from the kernel.** index.json changes under an flock; a writer of blobs holds a shared
  "lease" that garbage collection, holding it exclusively, waits for. A dead process's locks
  vanish with it, so a SIGKILL never leaves the store locked, and its ingest files are recognised
  as orphans: nobody holds their lock.
"""

import contextlib
import errno
import fcntl
import json
import os

from minidocker import store
from minidocker.errors import MinidockerError
from minidocker.image import digest as digests, media

LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
CHUNK = 1 << 20


class Layout:
    def __init__(self, path: str | None = None):
        self.path = path or store.directory("images")
        self.blobs = os.path.join(self.path, "blobs", "sha256")
        self.ingest_dir = os.path.join(self.path, "ingest")
        self._depth = 0  # lock() held by this object: nested `with lock()` must not deadlock
        os.makedirs(self.blobs, exist_ok=True)
        os.makedirs(self.ingest_dir, exist_ok=True)
        if not os.path.exists(os.path.join(self.path, "index.json")):
            with self.lock():
                if not os.path.exists(os.path.join(self.path, "index.json")):
                    store.write_json(os.path.join(self.path, "oci-layout"), LAYOUT_VERSION)
                    self._write_index([])

    # -- blobs -------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs, digests.hex_of(digest))

    def has_blob(self, digest: str) -> bool:
        return os.path.exists(self.blob_path(digest))

    def open_blob(self, digest: str):
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise MinidockerError(f"blob {digest} is missing from the image store",
                                  "the image is incomplete: pull or load it again") from None

    def read_json(self, digest: str):
        with self.open_blob(digest) as f:
            return json.load(f)

    # --8<-- [start:ingest]
    @contextlib.contextmanager
    def ingest(self, expected: str | None = None, size: int | None = None):
        """Write one blob: `with layout.ingest(digest, size) as w: w.write(chunk)...`. On a clean
        exit the bytes are verified and renamed into blobs/; on an exception they are deleted."""
        writer = _Writer(self.ingest_dir, expected, size)
        try:
            yield writer
            writer.file.flush()
            os.fsync(writer.file.fileno())  # on disk before its name says it is there
            writer.verifier.verify(f"blob {expected or writer.digest}")
            os.rename(writer.path, self.blob_path(writer.digest))  # the same bytes, if already there
        finally:
            writer.file.close()  # drops the lock; an ingest file still there is garbage now
            with contextlib.suppress(FileNotFoundError):
                os.unlink(writer.path)
    # --8<-- [end:ingest]

    def put(self, data: bytes, media_type: str) -> dict:
        with self.ingest() as w:
            w.write(data)
        return {"mediaType": media_type, "digest": w.digest, "size": w.size}

    def put_json(self, obj, media_type: str) -> dict:
        return self.put(media.to_json(obj), media_type)

    def clean_ingest(self) -> None:
        """Delete what killed writers left in ingest/: files and directories no one holds a lock on."""
        clean_orphans(self.ingest_dir)

    # -- index.json --------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self):
        """One writer of index.json at a time (re-entrant within this object)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with store.lock(self.path):
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0

    @contextlib.contextmanager
    def writing(self):
        """A lease for a pull, load or commit: blobs it stores before it names them are not
        garbage. Garbage collection takes the lease exclusively, so it waits for writers to end."""
        with open(os.path.join(self.path, ".lease"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            self.clean_ingest()
            yield

    def entries(self) -> list[dict]:
        with open(os.path.join(self.path, "index.json")) as f:
            return json.load(f).get("manifests", [])

    def _write_index(self, entries: list[dict]) -> None:
        index = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": entries}
        store.write_json(os.path.join(self.path, "index.json"), index)

    def tag(self, name: str, descriptor: dict) -> None:
        """Name an image (`name` is a full reference: docker.io/library/busybox:latest). The image
        that had the name before keeps an unnamed entry: it is "dangling" (<none>), as in Docker."""
        with self.lock():
            entries = self.entries()
            for e in entries:
                if _name_of(e) == name:
                    e.pop("annotations", None)
            entry = {k: descriptor[k] for k in ("mediaType", "digest", "size")}
            entry["annotations"] = {media.IMAGE_NAME: name, media.REF_NAME: name}
            self._write_index(_without_redundant(entries + [entry]))

    def untag(self, name: str) -> dict | None:
        """Remove a name; the image stays (dangling) until `remove`. Returns its descriptor."""
        with self.lock():
            entries = self.entries()
            found = next((e for e in entries if _name_of(e) == name), None)
            if found:
                found.pop("annotations")
                self._write_index(_without_redundant(entries))
            return found

    def add(self, descriptor: dict) -> None:
        """An image without a name (`commit` with no REPOSITORY, say): a dangling entry."""
        with self.lock():
            entry = {k: descriptor[k] for k in ("mediaType", "digest", "size")}
            self._write_index(_without_redundant(self.entries() + [entry]))

    def remove(self, manifest_digest: str) -> None:
        """Forget an image: every entry of its manifest. Its blobs go at the next collection."""
        with self.lock():
            self._write_index([e for e in self.entries() if e["digest"] != manifest_digest])

    # -- images ------------------------------------------------------------------------------

    def images(self) -> list["Image"]:
        by_manifest: dict[str, Image] = {}
        for e in self.entries():
            if e.get("mediaType") not in media.MANIFESTS:
                continue  # an index entry: minidocker stores one platform's manifest per image
            image = by_manifest.get(e["digest"])
            if image is None:
                with contextlib.suppress(MinidockerError, OSError, ValueError, KeyError):
                    image = by_manifest[e["digest"]] = self.load(e["digest"])
            if image and _name_of(e):
                image.names.append(_name_of(e))
        return list(by_manifest.values())

    def load(self, manifest_digest: str) -> "Image":
        manifest = self.read_json(manifest_digest)
        config_digest = manifest["config"]["digest"]
        size = os.path.getsize(self.blob_path(manifest_digest))
        return Image(config_digest, manifest_digest, size, manifest, self.read_json(config_digest))

    def image(self, text: str) -> "Image":
        """An image by name ("busybox", "host:5000/a/b:t", "name@sha256:…"), by ID ("sha256:…"),
        or by a unique prefix of its ID, as Docker looks them up."""
        from minidocker.image import reference

        images = self.images()
        if digests.DIGEST_RE.fullmatch(text):
            found = [i for i in images if i.id == text]
        else:
            try:
                ref = str(reference.normalize(text))
            except MinidockerError:
                ref = None  # not a name: maybe an ID
            found = [i for i in images if ref in i.names]
            if ref and "@" in ref and not found:  # name@sha256:…, a pulled manifest's digest
                found = [i for i in images if i.manifest_digest == ref.split("@")[1]]
            if not found and all(c in "0123456789abcdef" for c in text):
                found = [i for i in images if i.id.startswith("sha256:" + text)]
                if len({i.id for i in found}) > 1:
                    raise MinidockerError(f"ambiguous image ID {text}", "give more digits of the ID")
        if not found:
            raise MinidockerError(f"No such image: {_shown(text)}", "see `minidocker images`")
        return found[0]

    # -- garbage -----------------------------------------------------------------------------

    def reachable(self) -> set[str]:
        """Every blob some index entry leads to: manifests (and indexes), configs, layers."""
        seen: set[str] = set()
        todo = [e for e in self.entries()]
        while todo:
            d = todo.pop()
            if d["digest"] in seen:
                continue
            seen.add(d["digest"])
            if d.get("mediaType") in media.MANIFESTS + media.INDEXES and self.has_blob(d["digest"]):
                doc = self.read_json(d["digest"])
                todo += doc.get("manifests", []) + doc.get("layers", [])
                if "config" in doc:
                    todo.append(doc["config"])
        return seen

    def collect_garbage(self) -> int:
        """Delete every blob no entry reaches; returns the bytes freed. Waits for writers' leases."""
        with open(os.path.join(self.path, ".lease"), "a") as lease:
            # The lease before the index lock, in the order writers take them (writing(), then
            # tag()): the other order deadlocks with a writer about to name its image.
            fcntl.flock(lease, fcntl.LOCK_EX)
            with self.lock():
                keep = {digests.hex_of(d) for d in self.reachable() if digests.DIGEST_RE.fullmatch(d)}
                freed = 0
                for name in os.listdir(self.blobs):
                    if name not in keep:
                        path = os.path.join(self.blobs, name)
                        freed += os.lstat(path).st_size
                        os.unlink(path)
                return freed


class Image:
    """One image as the engine sees it: its ID is the digest of its config (as Docker's). (A plain
    class: importing dataclasses costs every `run` ~7 ms.)"""

    def __init__(self, id: str, manifest_digest: str, manifest_size: int, manifest: dict, config: dict,
                 names: list[str] | None = None):
        self.id, self.manifest_digest, self.manifest_size = id, manifest_digest, manifest_size
        self.manifest, self.config = manifest, config
        self.names = [] if names is None else names

    @property
    def layers(self) -> list[dict]:
        return self.manifest.get("layers", [])

    @property
    def diff_ids(self) -> list[str]:
        return self.config.get("rootfs", {}).get("diff_ids", [])

    @property
    def created(self) -> str:
        return self.config.get("created", "")

    def descriptor(self) -> dict:
        """The pointer to its manifest, as index.json and registries hold it."""
        return {"mediaType": self.manifest.get("mediaType", media.OCI_MANIFEST),
                "digest": self.manifest_digest, "size": self.manifest_size}


def _name_of(entry: dict) -> str | None:
    return entry.get("annotations", {}).get(media.IMAGE_NAME)


def _without_redundant(entries: list[dict]) -> list[dict]:
    """A nameless entry is kept only for a manifest nothing else names, once (the dangling image)."""
    named = {e["digest"] for e in entries if _name_of(e)}
    kept, nameless = [], set()
    for e in entries:
        if not _name_of(e):
            if e["digest"] in named or e["digest"] in nameless:
                continue
            nameless.add(e["digest"])
        kept.append(e)
    return kept


def _shown(text: str) -> str:
    """Docker says "No such image: busybox:latest": the name as typed, with its default tag."""
    if ":" not in text.rsplit("/", 1)[-1] and "@" not in text and not all(c in "0123456789abcdef" for c in text):
        return text + ":latest"
    return text


# -- ingest files: owned while locked --------------------------------------------------------

class _Writer:
    """An ingest file, flock'ed for as long as its writer lives."""

    def __init__(self, directory: str, expected: str | None, size: int | None):
        self.verifier = digests.Verifier(expected, size)
        self.path, fd = claim(directory, lambda p: os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.verifier.update(data)
        self.file.write(data)

    @property
    def digest(self) -> str:
        return self.verifier.digest

    @property
    def size(self) -> int:
        return self.verifier.size


def claim(directory: str, make):
    """Make a new entry in an ingest directory and lock it: `make(path)` returns an open file
    descriptor (of a new file, or of a new directory). A cleaner that got the lock first may have
    deleted the entry between our make and our flock; then its link count is 0: try again."""
    while True:
        path = os.path.join(directory, os.urandom(8).hex())
        try:
            fd = make(path)
        except FileNotFoundError:  # a new directory, removed by a cleaner before we opened it
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return path, fd
        os.close(fd)


def clean_orphans(directory: str) -> None:
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer lives
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                os.close(fd)
                continue
            raise
        try:
            if os.path.isdir(path):
                import shutil  # here: a `run` never needs it (~2 ms of every start)

                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
