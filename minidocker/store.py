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
import time

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
    """Docker's (and runc's) timestamp format: RFC 3339 in UTC with nanoseconds."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


# --8<-- [start:atomic-write]
def write_text(path: str, text: str) -> None:
    # A unique temp name in the same directory: rename only works within one filesystem, and two
    # writers must not share one temp file (O_EXCL: fail rather than open someone else's).
    tmp = os.path.join(os.path.dirname(path), f".md-{os.urandom(8).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)  # rename is atomic: readers see the old file or the new one
    except BaseException:
        os.unlink(tmp)
        raise
# --8<-- [end:atomic-write]


def write_json(path: str, data) -> None:
    write_text(path, json.dumps(data, indent=2))


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
    return os.urandom(32).hex()  # what secrets.token_hex(32) does, without importing it


# Docker names a container from an adjective and a famous scientist or engineer.
_ADJECTIVES = "brave calm eager gentle happy jolly keen lucid merry nifty quirky serene tender vivid witty zen".split()
_NAMES = "babbage curie dijkstra euler hopper kernighan lamport lovelace noether ritchie thompson torvalds turing wozniak".split()


def generate_name(taken: set[str]) -> str:
    while True:
        name = f"{_pick(_ADJECTIVES)}_{_pick(_NAMES)}"
        if name not in taken:
            return name
        name += str(_pick(range(10)))
        if name not in taken:
            return name


def _pick(choices):
    """random.choice, from the kernel's random bytes: the random module's import would cost more
    start-up time than all the rest of this module."""
    return choices[int.from_bytes(os.urandom(4), "little") % len(choices)]
