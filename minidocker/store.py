"""Storage that every object store shares: where state lives, atomic files, locks, ids and names.

Containers, images, networks and volumes each keep a directory under $MINIDOCKER_ROOT
(default /var/lib/minidocker, as Docker has /var/lib/docker):

    containers/<id>/   images/ (an OCI image layout)   networks/   volumes/<name>/

Two rules keep that state whole whatever happens (a crash, a kill, two commands at once):
- **atomic writes**: a file is written under a temporary name and renamed over the old one.
  rename(2) within one filesystem is atomic, so a reader sees the old file or the new one, never
  half of one;
- **locks**: a change that must not interleave with another one (two `create --name web` at once)
  holds an flock(2) on the store's `.lock` file. The kernel drops the lock when its holder dies,
  so a killed command never leaves the store locked.
"""

import contextlib
import fcntl
import json
import os
import random
import secrets
import tempfile
from datetime import datetime, timezone

from minidocker.errors import MinidockerError


def root() -> str:
    return os.environ.get("MINIDOCKER_ROOT", "/var/lib/minidocker")


def require_root() -> None:
    """Namespaces, mounts and cgroups need root: say so first, rather than fail later with an
    EPERM from some syscall half-way through."""
    if os.geteuid() != 0:
        raise MinidockerError("permission denied: containers need root", "run minidocker with sudo")


def directory(kind: str) -> str:
    """The store for one kind of object, e.g. directory("containers"), made on first use."""
    require_root()
    path = os.path.join(root(), kind)
    os.makedirs(path, exist_ok=True)
    return path


def now() -> str:
    """Docker's timestamp format: RFC 3339 in UTC with nanoseconds."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


# --8<-- [start:atomic-write]
def write_json(path: str, data) -> None:
    # A unique temp name in the same directory: rename only works within one filesystem, and two
    # writers must not share one temp file.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".md-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)  # rename is atomic: readers see the old file or the new one
    except BaseException:
        os.unlink(tmp)
        raise
# --8<-- [end:atomic-write]


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


@contextlib.contextmanager
def lock(directory: str):
    """Hold the store's lock: one writer at a time in `directory`."""
    with open(os.path.join(directory, ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def new_id() -> str:
    """A 64-hex-digit id, like Docker's container ids (256 random bits: never a collision)."""
    return secrets.token_hex(32)


# Docker names a container from an adjective and a famous scientist or engineer.
_ADJECTIVES = "brave calm eager gentle happy jolly keen lucid merry nifty quirky serene tender vivid witty zen".split()
_NAMES = "babbage curie dijkstra euler hopper kernighan lamport lovelace noether ritchie thompson torvalds turing wozniak".split()


def generate_name(taken: set[str]) -> str:
    while True:
        name = f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}"
        if name not in taken:
            return name
        name += str(random.randint(0, 9))
        if name not in taken:
            return name
