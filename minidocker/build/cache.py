"""The build cache: the classic builder's rule for reusing a step, and where we remember the answers.

Docker's classic builder asks one question before each step: *is there already an image whose
parent is the image I am on, and whose config, with this step's command in it, is the one I am
about to make?* If so, the step is skipped and that image becomes the current one (" ---> Using
cache"). The "command" is what the step would leave in the container's Cmd:

    RUN echo hi              ["/bin/sh", "-c", "echo hi"]           (with build args in use:
                                                                     ["|1", "V=2", "/bin/sh", ...])
    ENV A=1                  ["/bin/sh", "-c", "#(nop) ", "ENV A=1"]
    COPY app /srv            ["/bin/sh", "-c", "#(nop) COPY file:<checksum> in /srv "]

So the key says what the step does, never what it *did*: a RUN of `apt-get update` hits the cache
next week too, and the files a COPY reads enter the key only through their checksum. Because
the parent is part of the key, a miss at one step is a miss at every step after it: each later
step has a new parent. That is why the order of a Dockerfile's instructions matters (the things
that change least go first). See docs/06-build.md#the-cache.

Where the answers live. Docker finds candidates by walking the children of the parent image in its
image store (each image records its parent and the "container_config" it was made with). An OCI
layout records neither, so we keep a small index beside it, `$MINIDOCKER_ROOT/build/cache.json`:
key -> the image's ID and manifest digest. An entry is only a hint: it is used only while the
store still holds that image (an `rmi` or `image prune` makes the entry stale, and a stale entry
is a miss). One read of the index and one of index.json answer every step of a build, which
keeps a fully cached rebuild fast.
"""

import hashlib
import json
import os

from minidocker import store


def cache_key(parent_id: str, config: dict) -> str:
    """The key of a step: its parent image's ID and the config it makes, with the step's command in
    Cmd. Two steps with the same key make the same image."""
    # --8<-- [start:ex-06-cache-key]
    # The config as canonical JSON (sorted keys, no spaces: the same dict gives the same bytes,
    # whatever order its keys were set in), after the parent's ID ("" for FROM scratch), hashed.
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(f"{parent_id}\n{canonical}".encode()).hexdigest()
    # --8<-- [end:ex-06-cache-key]


class Cache:
    """The index, read once per build; `lookup` validates each hit against the image store."""

    def __init__(self, layout, enabled: bool = True):
        self.layout, self.enabled = layout, enabled
        self.path = os.path.join(store.directory("build"), "cache.json")
        self._entries: dict | None = None
        self._manifests: set[str] | None = None

    def _load(self) -> dict:
        if self._entries is None:
            try:
                self._entries = store.read_json(self.path)
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def lookup(self, key: str) -> dict | None:
        """{"id", "manifest"} of the image a step with `key` made before, if the store still has it."""
        if not self.enabled:
            return None
        entry = self._load().get(key)
        if not entry:
            return None
        if self._manifests is None:  # what index.json names: the images that exist now
            self._manifests = {e["digest"] for e in self.layout.entries()}
        return entry if entry["manifest"] in self._manifests else None

    def record(self, key: str, image_id: str, manifest_digest: str) -> None:
        """Remember a step's image (with --no-cache too: the next build may use it, as Docker's)."""
        with store.lock(os.path.dirname(self.path)):  # two builds at once: no entry lost
            try:
                entries = store.read_json(self.path)
            except (OSError, ValueError):
                entries = {}
            entries[key] = {"id": image_id, "manifest": manifest_digest}
            store.write_json(self.path, entries)
        self._load()[key] = entries[key]
        if self._manifests is not None:
            self._manifests.add(manifest_digest)
