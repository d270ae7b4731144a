"""The embedded default image: busybox:latest, built here from the host's static busybox.

A fresh machine with no network can still `minidocker run --rm busybox echo hi`: the image is made
locally, as a real one-layer OCI image (a layer tar, a config, a manifest), and stored like any
pulled image. It is reproducible: every entry's time is the busybox binary's own, and the gzip
header carries no time, so the same busybox package gives the same image ID on every machine.
"""

import gzip
import io
import os
import tarfile
import time

from minidocker import rootfs
from minidocker.image import digest as digests, layers, media

NAME = "docker.io/library/busybox:latest"
DIRECTORIES = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700,
               "run": 0o755, "sbin": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
               "usr/sbin": 0o755, "var": 0o755}
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
                 "s390x": "s390x", "riscv64": "riscv64"}  # the kernel's names -> Go's (OCI's) names


def busybox(layout):
    """The busybox image, built and stored first if the store has none."""
    try:
        return layout.image(NAME)
    except Exception:
        pass
    with layout.writing():
        mtime = int(os.stat(rootfs.BUSYBOX).st_mtime)
        tar = _layer_tar(mtime)
        blob = _gzip(tar)
        layer = layout.put(blob, media.OCI_LAYER_GZIP)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
        config = {
            "created": created,
            "architecture": ARCHITECTURES.get(os.uname().machine, os.uname().machine),
            "os": "linux",
            "config": {"Env": [f"PATH={rootfs.PATH}"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [digests.of(tar)]},
            "history": [{"created": created, "created_by": f"minidocker: the host's {rootfs.BUSYBOX} (busybox-static)"}],
        }
        manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                    "config": layout.put_json(config, media.OCI_CONFIG), "layers": [layer]}
        descriptor = layout.put_json(manifest, media.OCI_MANIFEST)
        image = layout.load(descriptor["digest"])
        layers.unpack(layout, image)  # ready to run before it has a name
        layout.tag(NAME, descriptor)
    return layout.image(NAME)


def _layer_tar(mtime: int) -> bytes:
    """The layer: the same tree as `minidocker rootfs` builds, as a tar with fixed times and order."""
    applets = rootfs.applets()  # raises one clear line when there is no static busybox
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind, mode, data=b"", link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname, info.size = kind, mode, mtime, link, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for name, mode in sorted(DIRECTORIES.items()):
            add(name, tarfile.DIRTYPE, mode)
        with open(rootfs.BUSYBOX, "rb") as f:
            add("bin/busybox", tarfile.REGTYPE, 0o755, f.read())
        for name, text in sorted({"etc/passwd": rootfs.PASSWD, "etc/group": rootfs.GROUP}.items()):
            add(name, tarfile.REGTYPE, 0o644, text.encode())
        for applet in sorted(set(applets) - {"bin/busybox"}):
            add(applet, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
    return out.getvalue()


def _gzip(data: bytes) -> bytes:
    out = io.BytesIO()
    # No time in the header: reproducible. Level 6, zlib's and Go's default (Docker's): level 9,
    # Python's default, takes three times as long for 1% less.
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as z:
        z.write(data)
    return out.getvalue()
