"""Containers on disk: ids, names, records, state, locks, and recovery after a crash.

    $MINIDOCKER_ROOT/containers/<id>/
        config.json      the OCI runtime spec the runtime consumes
        container.json   Docker's view: Id, Name, Created, Config, HostConfig (what `inspect` shows)
        state.json       State: Status, Running, Pid, ExitCode, OOMKilled, StartedAt, FinishedAt
        <id>-json.log    the output, one JSON object per line (Docker's json-file log format)
        upper/ work/ merged/   the writable layer when the rootfs is an overlay (chapter 02): over
                         an image's layers ($MINIDOCKER_ROOT/layers/…, chapter 03) or a --rootfs DIR:O

Every file is written atomically (a temp file, then rename), so a crash leaves the old version or
the new one, never half of one. Creation and removal hold a lock on the containers directory.
"""

import functools
import os

from minidocker import store
from minidocker.runtime import process_start_time
from minidocker.errors import MinidockerError


def containers_dir() -> str:
    return store.directory("containers")


class Container:
    """One container on disk. (A plain class: `dataclasses` costs every command ~7 ms to import.)"""

    def __init__(self, id: str, dir: str, record: dict, state: dict):
        self.id, self.dir = id, dir
        self.record = record  # container.json
        self.state = state  # state.json

    @property
    def name(self) -> str:
        return self.record["Name"].lstrip("/")

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @functools.cached_property
    def spec(self) -> dict:
        """The OCI config; it never changes after create, so it is read once."""
        return store.read_json(os.path.join(self.dir, "config.json"))

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, f"{self.id}-json.log")

    @property
    def upperdir(self) -> str | None:
        overlay = self.spec.get("minidocker", {}).get("overlay")
        return overlay["upperdir"] if overlay else None

    @property
    def lowerdirs(self) -> list[str]:
        overlay = self.spec.get("minidocker", {}).get("overlay")
        return overlay["lowerdirs"] if overlay else []

    def save_state(self, **changes) -> None:
        self.state.update(changes)
        store.write_json(os.path.join(self.dir, "state.json"), self.state)


def new_state() -> dict:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}


def create(record: dict, spec_for) -> Container:
    """Make a container's directory atomically: built under a temp name, then renamed.

    `spec_for(container_dir)` returns its OCI spec (it needs the final path for the overlay).
    """
    with store.lock(containers_dir()):
        base = containers_dir()
        for entry in os.listdir(base):  # what a create killed half-way left behind
            if entry.startswith(".tmp-"):
                _remove_tree(os.path.join(base, entry))
        taken = {c.name for c in all_containers()}
        name = record.get("Name") or store.generate_name(taken)
        if name in taken:
            raise MinidockerError(f'Conflict. The container name "/{name}" is already in use',
                                  "remove that container or choose another --name")
        cid = store.new_id()  # 64 hex digits, like Docker's ids
        final, tmp = os.path.join(base, cid), os.path.join(base, f".tmp-{cid}")
        os.makedirs(tmp)
        record.update(Id=cid, Name=f"/{name}", Created=store.now())
        record["Config"]["Hostname"] = record["Config"]["Hostname"] or cid[:12]
        store.write_json(os.path.join(tmp, "config.json"), spec_for(final, record))
        store.write_json(os.path.join(tmp, "container.json"), record)
        store.write_json(os.path.join(tmp, "state.json"), new_state())
        os.rename(tmp, final)
    return load_dir(final)


def load_dir(path: str) -> Container:
    return Container(os.path.basename(path), path, store.read_json(os.path.join(path, "container.json")),
                     store.read_json(os.path.join(path, "state.json")))


def all_containers() -> list[Container]:
    base = containers_dir()
    found = []
    for entry in sorted(os.listdir(base)):
        if entry.startswith("."):
            continue
        try:
            found.append(load_dir(os.path.join(base, entry)))
        except (FileNotFoundError, NotADirectoryError):  # removed while we looked
            continue
    return found


def supervised(container_id: str) -> bool:
    """Whether the container's state names a supervisor now: read afresh, for the stale sweep,
    which must not trust a list of containers read a moment earlier."""
    try:
        return bool(store.read_json(os.path.join(containers_dir(), container_id, "state.json")).get("SupervisorPid"))
    except (FileNotFoundError, NotADirectoryError):
        return False  # no record: nothing supervises it


def find(ref: str) -> Container:
    """A container by name, full id, or unique id prefix, as Docker resolves them."""
    everyone = all_containers()
    for c in everyone:
        if ref in (c.id, c.name, f"/{c.name}"):
            return c
    matches = [c for c in everyone if ref and c.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise MinidockerError(f"multiple IDs found with provided prefix: {ref}", "give more of the id")
    raise MinidockerError(f"No such container: {ref}", "see `minidocker ps -a`")


def images_in_use() -> set[str]:
    """The IDs of the images that containers were created from (any state): `rmi` refuses to
    delete one of these without -f, as Docker does."""
    return {c.record["Image"] for c in all_containers() if c.record.get("Image")}


def layers_in_use() -> set[str]:
    """The read-only layer directories under containers' overlays (their spec's lowerdirs): layer
    garbage collection must keep these, whatever became of the image that brought them."""
    return {d for c in all_containers() for d in c.lowerdirs}


def remove_dir(c: Container) -> None:
    with store.lock(containers_dir()):
        # Renamed first: a crash in the middle of rmtree leaves a .tmp- dir that the next
        # create cleans, not a half-deleted container that `ps` would try to read.
        doomed = os.path.join(containers_dir(), f".tmp-rm-{c.id}")
        os.rename(c.dir, doomed)
        _remove_tree(doomed)


def _remove_tree(path: str) -> None:
    import shutil  # here, not at the top: only a removal needs it, and every import slows `run`

    shutil.rmtree(path, ignore_errors=True)


def alive(pid: int, start_time: int | None) -> bool:
    return bool(pid) and start_time is not None and process_start_time(pid) == start_time
