"""Layer compression: a layer blob is a tar, plain, gzip- or zstd-compressed.

The media type says which (`…tar`, `…tar+gzip`, `…tar+zstd`), but archives from other tools do not
always say it right, so we look at the first bytes as tar(1) does: gzip starts with 1f 8b, zstd
with 28 b5 2f fd. Everything streams: a layer is decompressed as it is read, never whole in memory.
The *digest* of a layer blob is of its compressed bytes; the *diff_id* in the image config is of
the uncompressed tar — so one layer can travel compressed in different ways and stay the same layer.
"""

import gzip
import io

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def decompressed(fileobj) -> io.BufferedIOBase:
    """A reader of the uncompressed tar inside `fileobj` (a binary file object)."""
    reader = fileobj if hasattr(fileobj, "peek") else io.BufferedReader(fileobj)
    magic = reader.peek(4)[:4]
    if magic.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=reader, mode="rb")
    if magic == ZSTD_MAGIC:
        # Python 3.14 has compression.zstd; backports.zstd is that same module for 3.11.
        from backports.zstd import ZstdFile

        return ZstdFile(reader, mode="rb")
    return reader
