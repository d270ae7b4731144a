"""Digests: content addressing. A blob's name is the sha256 of its bytes, "sha256:<64 hex>".

A name computed from the content makes every copy checkable: whoever holds the digest can verify
that the bytes are the ones meant, whichever registry, archive or disk they came from. So nothing
is trusted before its digest is checked, and the check runs *while* the bytes stream in (a layer
can be gigabytes: it is never held in memory, and never read twice).
See docs/03-images.md#content-addressing.
"""

import hashlib
import re

from minidocker.errors import MinidockerError

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check(digest: str) -> str:
    """A digest we can use as a file name: sha256 and 64 lower-case hex digits, nothing else (a
    digest comes from strangers, and "sha256:../../etc" must never reach os.path.join)."""
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise MinidockerError(f"invalid digest {str(digest)[:80]!r}", "a digest is sha256: and 64 hex digits")
    return digest


def hex_of(digest: str) -> str:
    return check(digest).split(":", 1)[1]


class Verifier:
    """Hashes bytes as they pass; `verify` then says whether they were the bytes expected."""

    def __init__(self, expected: str | None = None, size: int | None = None):
        self.expected = check(expected) if expected else None
        self.expected_size = size
        self.hash = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        # --8<-- [start:ex-03-verify-digest]
        # Count and hash each chunk as it goes by. Stop at once when more bytes come than the
        # descriptor promised: a hostile server could otherwise stream forever into our disk.
        self.size += len(chunk)
        if self.expected_size is not None and self.size > self.expected_size:
            raise MinidockerError(f"size mismatch: more than the {self.expected_size} bytes expected",
                                  "the source sent more than its descriptor says")
        self.hash.update(chunk)
        # --8<-- [end:ex-03-verify-digest]

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()

    def verify(self, what: str) -> None:
        """Refuse bytes that are not the ones the descriptor named (one line: what and which)."""
        if self.expected_size is not None and self.size != self.expected_size:
            raise MinidockerError(f"{what}: size mismatch: got {self.size} bytes, expected {self.expected_size}",
                                  "the transfer was cut short or the source is corrupt; nothing was stored")
        if self.expected and self.digest != self.expected:
            raise MinidockerError(f"{what}: digest mismatch: got {self.digest[:19]}…, expected {self.expected[:19]}…",
                                  "the content is not what its digest names; nothing was stored")
