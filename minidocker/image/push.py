"""`push`: an image from the store to a registry, as `docker push` does it.

For the config and each layer, the cheapest way that works:
1. `HEAD /v2/NAME/blobs/DIGEST`: the registry has it already ("Layer already exists"): a blob is
   named by its content, so the same digest is the same bytes, whoever uploaded them.
2. a cross-repository mount, when we know the blob came from another repository of the same
   registry (the image has a name there): `POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=OTHER`.
   201 means linked, without one byte sent ("Mounted from OTHER"); 202 means the registry
   declined (no access to OTHER, say) and started an ordinary upload instead.
3. an upload: `POST /v2/NAME/blobs/uploads/` gives a Location, and one `PUT LOCATION?digest=D`
   sends the whole blob ("monolithic"; the chunked PATCH way is for resuming huge layers).

The manifest goes last, `PUT /v2/NAME/manifests/TAG`, with its exact bytes: a registry refuses a
manifest that names a blob it does not have, and the tag must never point at a half image.
See docs/03-images.md#push.
"""

import os
import urllib.parse

from minidocker.errors import MinidockerError
from minidocker.image import reference
from minidocker.image.layout import Layout
from minidocker.image.progress import Progress
from minidocker.image.pull import CHUNK, short
from minidocker.image.registry import EXIT_PULL, Registry, RegistryError, scope


class Uploader:
    def __init__(self, registry: Registry, repository: str, layout: Layout, progress: Progress, mount_from: list[str]):
        self.registry, self.repository, self.layout = registry, repository, layout
        self.progress, self.mount_from = progress, mount_from
        self.scopes = (scope(repository, "pull", "push"),)

    # --8<-- [start:upload]
    def __call__(self, descriptor: dict, show: bool = True) -> None:
        digest, id = descriptor["digest"], short(descriptor["digest"])
        say = self.progress.update if show else (lambda *a: None)
        exists = self.registry.request("HEAD", f"/v2/{self.repository}/blobs/{digest}", scopes=self.scopes,
                                       ok=(200, 404))
        exists.read()
        if exists.status == 200:
            return say(id, "Layer already exists")
        location = None
        for other in self.mount_from:
            query = urllib.parse.urlencode({"mount": digest, "from": other})
            answer = self.registry.request("POST", f"/v2/{self.repository}/blobs/uploads/?{query}", body=b"",
                                           scopes=self.scopes + (scope(other, "pull"),), ok=(201, 202))
            answer.read()
            if answer.status == 201:
                return say(id, f"Mounted from {other}")
            location = answer.headers["Location"]  # declined: an ordinary upload has begun
            break
        if location is None:
            answer = self.registry.request("POST", f"/v2/{self.repository}/blobs/uploads/", body=b"",
                                           scopes=self.scopes, ok=(202,))
            answer.read()
            location = answer.headers["Location"]
        url = urllib.parse.urljoin(self.registry.url(f"/v2/{self.repository}/blobs/uploads/"), location)
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        size = os.path.getsize(self.layout.blob_path(digest))
        answer = self.registry.request("PUT", url, scopes=self.scopes, body=self._chunks(digest, id, size, say),
                                       headers={"Content-Type": "application/octet-stream",
                                                "Content-Length": str(size)}, ok=(201,))
        answer.read()
        say(id, "Pushed")
    # --8<-- [end:upload]

    def _chunks(self, digest: str, id: str, size: int, say):
        sent = 0
        with self.layout.open_blob(digest) as f:
            while chunk := f.read(CHUNK):
                sent += len(chunk)
                say(id, "Pushing", sent, size)
                yield chunk


def push(text: str, quiet: bool = False, out=None, progress: Progress | None = None,
         credentials: tuple[str, str] | None = None) -> str:
    """Push the image named `text`; returns the manifest's digest. `progress` and `credentials`
    as pull's."""
    ref = reference.normalize(text)
    if ref.digest:
        raise MinidockerError(f"cannot push a digest reference: {text}", "push NAME[:TAG]", exit_code=EXIT_PULL)
    layout = Layout()
    try:
        image = layout.image(str(ref))
    except MinidockerError:
        raise MinidockerError(f"An image does not exist locally with the tag: {ref.familiar_name}",
                              f"tag one first: minidocker tag IMAGE {ref.familiar()}", exit_code=EXIT_PULL) from None
    progress = progress or Progress(out, quiet)
    registry = Registry(ref.domain, credentials)
    # Other repositories of the same registry this image has a name in: its blobs are there.
    mount_from = sorted({reference.normalize(n).path for n in image.names
                         if reference.normalize(n).domain == ref.domain} - {ref.path})
    try:
        progress.line(f"The push refers to repository [{ref.name}]")
        upload = Uploader(registry, ref.path, layout, progress, mount_from)
        layers = list({d["digest"]: d for d in reversed(image.layers)}.values())  # top first, as Docker shows
        for d in layers:
            progress.update(short(d["digest"]), "Preparing")
        for d in layers:
            upload(d)
        upload(image.manifest["config"], show=False)
        with layout.open_blob(image.manifest_digest) as f:
            data = f.read()
        media_type = image.manifest.get("mediaType") or image.descriptor()["mediaType"]
        answer = registry.request("PUT", f"/v2/{ref.path}/manifests/{ref.tag}", scopes=upload.scopes, body=data,
                                  headers={"Content-Type": media_type}, ok=(201,))
        answer.read()
    except RegistryError as e:
        raise MinidockerError(e.what, _hint(e, ref), exit_code=EXIT_PULL) from None
    finally:
        registry.close()
    progress.line(f"{ref.tag}: digest: {image.manifest_digest} size: {len(data)}")
    return image.manifest_digest


def _hint(e: RegistryError, ref) -> str:
    if e.status in (401, 403):
        return f"minidocker login {ref.domain}"
    if e.code == "MANIFEST_BLOB_UNKNOWN":
        return "the registry lacks a blob the manifest names"
    return ""
