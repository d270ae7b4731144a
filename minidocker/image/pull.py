"""`pull`: an image from a registry into the store, as `docker pull` does it.

    tag ──GET manifest──> index? ──pick our platform──> manifest ──> config + layers (3 at a time)
        ──> every blob verified as it streams, into ingest/, renamed into blobs/
        ──> layers unpacked ──> the name written into index.json, last

The order is the safety: nothing is named before everything it needs is stored and verified, so
an error or a SIGKILL half-way leaves only unnamed blobs (garbage, collected later) and files in
ingest/ (cleaned by the next command). Two pulls of one image at once both work: each writes its
own ingest files, the renames land the same bytes under the same name, and the index entry is
written under the store's lock. See docs/03-images.md#pull.
"""

import http.client
import json
import platform as host
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from minidocker.errors import MinidockerError
from minidocker.image import digest as digests, media, reference
from minidocker.image.layout import Image, Layout
from minidocker.image.progress import Progress
from minidocker.image.registry import EXIT_PULL, Registry, RegistryError, scope

MAX_CONCURRENT_DOWNLOADS = 3  # dockerd's --max-concurrent-downloads default
MANIFEST_LIMIT = 4 << 20  # containerd refuses manifests over 4 MiB: a manifest is a few kB
CHUNK = 1 << 20
ACCEPT = ", ".join((media.OCI_INDEX, media.DOCKER_LIST, media.OCI_MANIFEST, media.DOCKER_MANIFEST))
LAYER_TYPES = (media.OCI_LAYER, media.OCI_LAYER_GZIP, media.OCI_LAYER_ZSTD, media.DOCKER_LAYER,
               media.DOCKER_LAYER_GZIP)


def pull_error(message: str, hint: str = "") -> MinidockerError:
    return MinidockerError(message, hint, exit_code=EXIT_PULL)


# -- platforms ----------------------------------------------------------------------------------

# Python's platform.machine() names -> Go's GOARCH (and variant), the names images use.
_ARCH = {"x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
         "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "i686": ("386", ""), "i386": ("386", ""),
         "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", "")}


def host_platform() -> dict:
    arch, variant = _ARCH.get(host.machine(), (host.machine(), ""))
    return {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}


def parse_platform(text: str) -> dict:
    """`--platform os/arch[/variant]`, e.g. linux/arm64/v8."""
    parts = text.lower().split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise MinidockerError(f'"{text}": unknown operating system or architecture: invalid argument',
                              "--platform takes os/arch[/variant], e.g. linux/arm64")
    return {"os": parts[0], "architecture": parts[1], **({"variant": parts[2]} if len(parts) == 3 else {})}


def format_platform(p: dict) -> str:
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)


def select_platform(manifests: list[dict], want: dict) -> dict:
    """The descriptor, among an index's `manifests`, of the image for the platform `want`."""
    # --8<-- [start:ex-03-platform]
    # Each entry carries a "platform": {"os", "architecture", "variant"?}. OS and architecture
    # must be equal; a variant counts only when one is wanted (linux/arm/v7 is not linux/arm/v6).
    # Among several that match, the first wins: an index lists its preferred entries first.
    for candidate in manifests:
        p = candidate.get("platform") or {}
        if p.get("os") != want["os"] or p.get("architecture") != want["architecture"]:
            continue
        if want.get("variant") and p.get("variant") != want["variant"]:
            continue
        return candidate
    raise pull_error(f"no matching manifest for {format_platform(want)} in the manifest list entries",
                     "see which platforms the image has: --platform os/arch[/variant]")
    # --8<-- [end:ex-03-platform]


# -- manifests ----------------------------------------------------------------------------------

def fetch_manifest(registry: Registry, repository: str, ref: str) -> tuple[bytes, str, str]:
    """(the bytes as received, media type, digest) of a manifest or index; `ref` a tag or digest.

    The bytes are kept exactly: a digest names bytes, and a manifest parsed and written out again
    is other bytes (spacing, key order), with another digest. By digest, the bytes must hash to
    it; by tag, to the digest the registry says (Docker-Content-Digest) when it says one."""
    response = registry.request("GET", f"/v2/{repository}/manifests/{ref}", scopes=(scope(repository, "pull"),),
                                headers={"Accept": ACCEPT})
    data = response.read(MANIFEST_LIMIT + 1)
    if len(data) > MANIFEST_LIMIT:
        response.close()
        raise pull_error(f"manifest {repository}:{ref} is larger than {MANIFEST_LIMIT} bytes", "refused")
    got = digests.of(data)
    expected = ref if ref.startswith("sha256:") else response.headers.get("Docker-Content-Digest")
    if expected and expected != got:
        raise pull_error(f"manifest verification failed for digest {expected}",
                         f"the registry sent bytes whose digest is {got}")
    media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
    if media_type not in media.MANIFESTS + media.INDEXES:
        try:  # a registry that says only application/json: the document says what it is
            media_type = json.loads(data).get("mediaType", "")
        except (ValueError, AttributeError):
            media_type = ""
    if media_type not in media.MANIFESTS + media.INDEXES:
        raise pull_error(f"unsupported manifest media type {media_type or '(none)'}",
                         "minidocker reads OCI and Docker v2 schema 2 manifests and indexes")
    return data, media_type, got


def _checked(manifest: dict) -> dict:
    """Refuse a manifest whose descriptors we cannot use before downloading anything."""
    try:
        for d in [manifest["config"], *manifest["layers"]]:
            digests.check(d["digest"])
            if not isinstance(d["size"], int) or d["size"] < 0:
                raise ValueError(f"bad size {d['size']!r}")
        for layer in manifest["layers"]:
            if layer.get("mediaType") not in LAYER_TYPES:
                raise ValueError(f"unsupported layer media type {layer.get('mediaType')}")
    except (KeyError, TypeError, ValueError, MinidockerError) as e:
        raise pull_error(f"invalid manifest: {e}", "the registry sent a manifest minidocker cannot use") from None
    return manifest


# -- blobs --------------------------------------------------------------------------------------

def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


class Download:
    """One blob from the registry into the store, verified as it streams."""

    def __init__(self, registry: Registry, repository: str, layout: Layout, progress: Progress, stop: threading.Event):
        self.registry, self.repository, self.layout = registry, repository, layout
        self.progress, self.stop = progress, stop

    # --8<-- [start:download]
    def __call__(self, descriptor: dict, show: bool = True) -> None:
        digest, size = descriptor["digest"], descriptor["size"]
        id = short(digest)
        if self.layout.has_blob(digest):
            return self.progress.update(id, "Already exists") if show else None
        if show:
            self.progress.update(id, "Downloading", 0, size)
        try:
            response = self.registry.request("GET", f"/v2/{self.repository}/blobs/{digest}",
                                             scopes=(scope(self.repository, "pull"),), follow=True)
        except RegistryError as e:
            if e.status != 404:
                raise
            raise pull_error(f"blob {digest}: {e.what}",
                             "the manifest names a blob the registry does not have; nothing was stored") from None
        # ingest() hashes every chunk as it is written, and on leaving checks the digest and the
        # size: only then is the file renamed into blobs/. An exception deletes it.
        with self.layout.ingest(digest, size) as writer:
            try:
                while chunk := response.read(CHUNK):
                    if self.stop.is_set():  # another layer failed: the pull is over
                        raise pull_error(f"blob {digest}: download cancelled")
                    writer.write(chunk)
                    if show:
                        self.progress.update(id, "Downloading", writer.size, size)
            except (http.client.HTTPException, OSError) as e:
                raise pull_error(f"blob {digest}: {e or type(e).__name__}", "the download failed; nothing was stored")
            finally:
                response.close()
            if writer.size < size:  # the server closed the connection before the end
                raise pull_error(f"blob {digest}: unexpected EOF after {writer.size} of {size} bytes",
                                 "the download was cut short; nothing was stored")
            if show:
                self.progress.update(id, "Verifying Checksum")
        if show:
            self.progress.update(id, "Download complete")
    # --8<-- [end:download]


# --8<-- [start:download-all]
def download_and_unpack(download: Download, manifest: dict, config: dict, progress: Progress) -> None:
    """A few layers download at a time (Docker's 3: more connections rarely go faster), while
    this thread unpacks them in order, each as soon as it and every layer below it are here:
    layer 1 is extracting while layers 2-4 still download, as in Docker's output."""
    from minidocker.image import layers

    unique = list({d["digest"]: d for d in manifest["layers"]}.values())
    missing = [d for d in unique if not download.layout.has_blob(d["digest"])]
    for d in unique:
        progress.update(short(d["digest"]), "Pulling fs layer" if d in missing else "Already exists")
    for d in missing[MAX_CONCURRENT_DOWNLOADS:]:
        progress.update(short(d["digest"]), "Waiting")
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    with ThreadPoolExecutor(MAX_CONCURRENT_DOWNLOADS, thread_name_prefix="md-pull") as pool:
        futures = {d["digest"]: pool.submit(download, d) for d in missing}
        try:
            for i, d in enumerate(manifest["layers"]):
                future = futures.get(d["digest"])
                while future and not future.done():  # ...and stop at the first failure anywhere
                    wait([f for f in futures.values() if not f.done()], return_when=FIRST_COMPLETED)
                    _raise_first_error(futures.values())
                _raise_first_error(futures.values())
                fetched = d in missing and d not in manifest["layers"][:i]
                if fetched:
                    progress.update(short(d["digest"]), "Extracting")
                # The image made of the layers so far: unpack() does what is not unpacked yet.
                below = Image(manifest["config"]["digest"], "", 0, {"layers": manifest["layers"][: i + 1]},
                              {"rootfs": {"diff_ids": diff_ids[: i + 1]}})
                layers.unpack(download.layout, below)  # verifies the layer's diff_id as it unpacks
                if fetched:
                    progress.update(short(d["digest"]), "Pull complete")
        except BaseException:
            download.stop.set()  # the downloads still running end at their next chunk
            for f in futures.values():
                f.cancel()
            raise
# --8<-- [end:download-all]


def _raise_first_error(futures) -> None:
    for f in futures:
        if f.done() and not f.cancelled() and f.exception():
            raise f.exception()


# -- pull ---------------------------------------------------------------------------------------

def pull(text: str, platform: str | None = None, quiet: bool = False, out=None,
         progress: Progress | None = None, credentials: tuple[str, str] | None = None) -> Image:
    """`progress`: where updates go (the daemon's JSON messages); `credentials`: the client's
    (the daemon gets them in X-Registry-Auth) instead of those `login` stored."""
    registry = None
    try:
        ref = reference.normalize(text)
        want = parse_platform(platform) if platform else host_platform()
        layout = Layout()
        registry = Registry(ref.domain, credentials)
        return _pull(ref, want, layout, registry, progress or Progress(out, quiet))
    except RegistryError as e:
        raise _explain(e, ref) from None
    except MinidockerError as e:
        e.exit_code = EXIT_PULL  # docker pull fails with 1, whatever failed
        raise
    finally:
        if registry:
            registry.close()


def _pull(ref, want: dict, layout: Layout, registry: Registry, progress: Progress) -> Image:
    repository, wanted = ref.path, ref.digest or ref.tag
    progress.line(f"{wanted}: Pulling from {repository}")
    with layout.writing():  # a lease: garbage collection waits until our blobs are named
        data, media_type, resolved = fetch_manifest(registry, repository, wanted)
        if media_type in media.INDEXES:
            chosen = select_platform(json.loads(data).get("manifests", []), want)
            data, media_type, _ = fetch_manifest(registry, repository, digests.check(chosen["digest"]))
            if media_type not in media.MANIFESTS:
                raise pull_error(f"{format_platform(want)} entry of the index is not an image manifest")
        manifest = _checked(json.loads(data))
        manifest_digest = digests.of(data)
        name = str(ref)
        before = next((e["digest"] for e in layout.entries()
                       if e.get("annotations", {}).get(media.IMAGE_NAME) == name), None)

        # Up to date: the name points at this manifest already, and every blob is here.
        everything = [manifest_digest, manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])]
        up_to_date = before == manifest_digest and all(layout.has_blob(d) for d in everything)
        download = Download(registry, repository, layout, progress, threading.Event())
        download(manifest["config"], show=False)
        config = layout.read_json(manifest["config"]["digest"])
        if len(config.get("rootfs", {}).get("diff_ids", [])) != len(manifest["layers"]):
            raise pull_error("invalid image: the config's rootfs.diff_ids and the manifest's layers differ in number")
        if up_to_date:
            from minidocker.image import layers

            layers.unpack(layout, layout.load(manifest_digest))  # in case they were removed
        else:
            download_and_unpack(download, manifest, config, progress)
        with layout.ingest(manifest_digest, len(data)) as w:
            w.write(data)
        image = layout.load(manifest_digest)
        layout.tag(name, {"mediaType": media_type, "digest": manifest_digest, "size": len(data)})
    image.names.append(name)
    progress.line(f"Digest: {resolved}")
    if up_to_date:
        progress.line(f"Status: Image is up to date for {ref.familiar()}")
    else:
        progress.line(f"Status: Downloaded newer image for {ref.familiar()}")
    return image


def _explain(e: RegistryError, ref) -> MinidockerError:
    """Docker's words for what a user most often meets."""
    if e.code == "MANIFEST_UNKNOWN":
        return pull_error(f"manifest for {ref.familiar()} not found: {e.what}", "check the tag: is it pushed?")
    if e.code in ("UNAUTHORIZED", "DENIED", "NAME_UNKNOWN") and "incorrect username" not in e.what:
        return pull_error(f"pull access denied for {ref.familiar_name}, repository does not exist or may require "
                          f"'docker login': {e.what}", "minidocker login " + ref.registry)
    return e
