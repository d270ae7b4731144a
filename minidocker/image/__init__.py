"""Images (镜像): read-only, layered root filesystems in the OCI image format (chapter 03).

An image is never modified. It is a stack of layers, each the changes of one step; a change makes
a new layer on top, and so a new image. Everything in it is named by the digest of its bytes, so
every copy anywhere (a registry, an archive, this disk) can be checked. The modules, in the order
docs/03-images.md builds them:

- `digest.py`, `media.py`, `compression.py`: content addressing, the blobs' media types, and
  layer tars plain, gzip or zstd;
- `reference.py`: names, Docker's grammar (`busybox` is docker.io/library/busybox:latest);
- `layout.py`: the store, an OCI image layout (blobs verified before they are visible, names last);
- `layers.py`: the layers unpacked for overlayfs, once per chain ID, shared between images;
- `builtin.py`: the embedded busybox image, made here from the host's static busybox;
- `defaults.py`: `run IMAGE`, the image config's defaults combined with the command line;
- `commit.py`: a container's upper directory becomes a new layer and a new image;
- `inspect.py`, `remove.py`: `images`, `image inspect`, `history`; `tag`, `rmi`, `image prune`;
- `archive.py`: `save` and `load`, Docker's archive format;
- `registry.py`, `auth.py`, `pull.py`, `push.py`, `progress.py`: the registry HTTP API (the OCI
  distribution spec), its token auth, and Docker's progress lines.
"""
