"""Media types: what a blob is, written beside its digest wherever a descriptor points at it.

A descriptor ({"mediaType", "digest", "size"}) is the image format's pointer. The digest says which
bytes, the size how many to expect, the media type how to read them. Docker's own types (v2 schema
2) came first; the OCI image spec standardised the same structure under new names, and registries
and tools accept both. minidocker writes OCI types and reads both.
"""

import json

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = DOCKER_LAYER + ".gzip"

MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)  # one image for one platform
INDEXES = (OCI_INDEX, DOCKER_LIST)  # a list of manifests, one per platform

# Annotations on the entries of an OCI layout's index.json. ref.name is the OCI spec's name for an
# entry (skopeo's `oci:DIR:NAME` looks it up); containerd and Docker 25+ also write the full
# image name under their own key. minidocker writes the full normalised name under both.
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"


def to_json(obj) -> bytes:
    """The exact bytes a manifest or config is stored (and hashed) as. JSON has many spellings of
    one object, and a digest names bytes, not objects: so an object is serialised once, here, and
    from then on only its bytes are copied — never parsed and re-serialised."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
