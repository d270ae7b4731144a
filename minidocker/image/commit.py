"""`commit`: a container's changes become a new image. The image it came from is never touched.

    upper directory ──changeset──▶ layer tar ──gzip──▶ blob     (diff_id = sha256 of the tar)
    parent's config + the container's Config (+ -c changes)
        + history entry + the new diff_id ──────────▶ config blob (its digest: the image ID)
    parent's layers + the new one, the config ──────▶ manifest blob ──▶ index.json (the name)

The container's writable layer (its overlay's upper directory, chapter 02) holds exactly what it
changed: new and modified files, and deletions as whiteouts. changeset.create turns that into an
OCI layer tar; the layer is hashed twice while it streams, once as a tar (the diff_id, which the
config lists) and once compressed (the blob's digest, which the manifest lists). The new config
is the parent's, with the container's Config, one more history entry and one more diff_id; the
new manifest is the parent's layers plus ours. Only the last step, naming it in index.json,
makes the image visible. See docs/03-images.md#commit.

Docker's choices kept here: the new image's Config is the *container's* (so a `run busybox sh -c
…` commits an image whose Cmd is that sh -c); the history entry's created_by is the container's
Cmd; a container that changed nothing adds no layer (an "empty_layer" history entry); a running
container is paused while its upper directory is read, so the layer is one moment's state.
"""

import gzip
import hashlib
import json
import os
import posixpath
import shlex
import tarfile

from minidocker import store
from minidocker.errors import MinidockerError
from minidocker.image import media, reference
from minidocker.image.layout import Layout

DOCS = "see docs/03-images.md#commit"
# The Dockerfile instructions `commit -c` accepts (Docker: CMD|ENTRYPOINT|ENV|EXPOSE|LABEL|
# ONBUILD|USER|VOLUME|WORKDIR; ONBUILD has no place in an OCI config, so not here).
CHANGES = ("cmd", "entrypoint", "env", "expose", "label", "user", "volume", "workdir")
# The Config fields an OCI image config carries (the rest of a container's Config, Hostname,
# Tty, AttachStdin…, describes one container, not an image).
IMAGE_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal")


# ---------------------------------------------------------------------------------------------
# -c/--change: a Dockerfile instruction applied to the config

def apply_changes(config: dict, lines: list[str]) -> dict:
    """The config after each `-c` line, in Dockerfile syntax: CMD ["a","b"] (exec form) or
    CMD a b (shell form: ["/bin/sh", "-c", "a b"]), ENV K=V…, WORKDIR /x, and so on."""
    config = json.loads(json.dumps(config))  # a deep copy: the parent's config stays as it was
    cmd_set = False
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        if not word:
            continue
        instruction, rest = word.lower(), rest.strip()
        if instruction not in CHANGES:
            raise MinidockerError(f"{instruction} is not a valid change command", f"use one of: {', '.join(c.upper() for c in CHANGES)}")
        if instruction == "cmd":
            config["Cmd"], cmd_set = command_form(rest), True
        elif instruction == "entrypoint":
            config["Entrypoint"] = command_form(rest)
            if not cmd_set:  # as in a Dockerfile: a new ENTRYPOINT drops a Cmd not set in this build
                config["Cmd"] = None
        elif instruction in ("env", "label"):
            pairs = key_values(instruction.upper(), rest)
            if instruction == "env":
                names = {k for k, _ in pairs}
                config["Env"] = [e for e in config.get("Env") or [] if e.split("=", 1)[0] not in names]
                config["Env"] += [f"{k}={v}" for k, v in pairs]
            else:
                config["Labels"] = {**(config.get("Labels") or {}), **dict(pairs)}
        elif instruction == "workdir":
            # A relative WORKDIR is relative to the one before, as in a Dockerfile.
            config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", _one(rest, "WORKDIR")))
        elif instruction == "user":
            config["User"] = _one(rest, "USER")
        elif instruction == "expose":
            config["ExposedPorts"] = {**(config.get("ExposedPorts") or {}), **{p: {} for p in exposed_ports(rest)}}
        elif instruction == "volume":
            paths = _json_list(rest) if rest.startswith("[") else rest.split()
            if not paths or not all(paths):
                raise MinidockerError("VOLUME specified can not be an empty string", DOCS)
            config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
    return config


def command_form(text: str) -> list[str]:
    """A CMD or ENTRYPOINT: a JSON array of strings is the exec form, anything else the shell
    form, which Docker runs as /bin/sh -c TEXT."""
    if text.startswith("["):
        words = _json_list(text)
        if words is not None:
            return words
    if not text:
        raise MinidockerError("an empty command in a change", 'give one, e.g. CMD ["sh"]')
    return ["/bin/sh", "-c", text]


def _json_list(text: str) -> list[str] | None:
    """The exec form, when `text` is a JSON array of strings (else Docker takes the shell form)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def key_values(what: str, text: str) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: `K=V K2="two words"`, or the old `K the rest of the line`."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise MinidockerError(f"{what} {text}: {e}", DOCS) from None
    if not words:
        raise MinidockerError(f"{what} requires at least one argument", f"{what} NAME=VALUE")
    if "=" not in words[0]:  # the legacy form: one name, and everything after it is the value
        name, _, value = text.partition(" ")
        if not value.strip():
            raise MinidockerError(f"{what} names can not be blank" if not name else f"{what} must have two arguments",
                                  f"{what} NAME=VALUE")
        return [(name, value.strip())]
    pairs = []
    for word in words:
        name, eq, value = word.partition("=")
        if not eq or not name:
            raise MinidockerError(f"{what} {text}: {word!r} is not NAME=VALUE", DOCS)
        pairs.append((name, value))
    return pairs


def _one(text: str, what: str) -> str:
    if not text:
        raise MinidockerError(f"{what} requires exactly one argument", DOCS)
    return text


def exposed_ports(text: str) -> list[str]:
    """EXPOSE 80 443/udp 8000-8001 -> ["80/tcp", "443/udp", "8000/tcp", "8001/tcp"]."""
    found = []
    for word in text.split():
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        first, _, last = port.partition("-")
        if not first.isdigit() or (last and not last.isdigit()) or proto not in ("tcp", "udp", "sctp"):
            raise MinidockerError(f"invalid containerPort: {word}", "EXPOSE PORT[/tcp|udp|sctp]")
        found += [f"{p}/{proto}" for p in range(int(first), int(last or first) + 1)]
    if not found:
        raise MinidockerError("EXPOSE requires at least one argument", "EXPOSE 80/tcp")
    return found


# ---------------------------------------------------------------------------------------------
# the layer

class _Tee:
    """What tarfile writes: hashed as a tar (the diff_id), then gzip'ed into the blob's writer."""

    def __init__(self, gz):
        self.gz, self.hash, self.offset = gz, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.offset += len(data)
        return self.gz.write(data)

    def tell(self) -> int:
        return self.offset


def write_layer(layout: Layout, upperdir: str) -> tuple[dict, str]:
    """The upper directory as a gzip'ed OCI layer blob: (its descriptor, its diff_id). It streams:
    the tar is never whole in memory or on disk, only the compressed blob is written."""
    from minidocker.unionfs import changeset

    spec = _container_spec(upperdir)
    with layout.ingest() as blob:
        # mtime=0: the gzip header holds no clock, so the same changes give the same blob.
        # Level 6, Go's (and so Docker's) default: 9 costs twice the time for ~1% of size.
        with gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=6, mtime=0) as gz:
            tee = _Tee(gz)
            if spec.get("linux", {}).get("uidMappings"):
                _in_container_ids(lambda out: changeset.create(upperdir, out), tee, spec)
            else:
                changeset.create(upperdir, tee)
    return {"mediaType": media.OCI_LAYER_GZIP, "digest": blob.digest, "size": blob.size}, "sha256:" + tee.hash.hexdigest()


def _container_spec(upperdir: str) -> dict:
    """The OCI config of the container whose writable layer `upperdir` is ({} for a builder's
    staging directory). Read here, not passed in: the builder's RUN steps commit through
    child_config too, with only the upper directory in hand."""
    container_dir = os.path.dirname(os.path.abspath(upperdir))
    if os.path.dirname(container_dir) != store.directory("containers"):
        return {}
    try:
        return store.read_json(os.path.join(container_dir, "config.json"))
    except FileNotFoundError:
        return {}


# --8<-- [start:in-container-ids]
def _in_container_ids(write_tar, out, spec: dict) -> None:
    """A remapped container's files are on disk as the host sees them (root: 100000). Docker
    commits them as the container sees them (0), so that the image is like any other, whatever
    engine runs it next. write_tar(file) writes the changeset's tar in a thread, into a pipe; each
    member is copied on to `out` with its header's ids shifted back (userns.to_container)."""
    import threading

    from minidocker.security import userns

    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    failed: list[BaseException] = []

    def writer() -> None:
        try:
            with open(write_end, "wb") as pipe:
                write_tar(_Counted(pipe))
        except BaseException as e:  # BrokenPipeError too, when the reader below gave up first
            failed.append(e)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with open(read_end, "rb") as pipe:
            with tarfile.open(fileobj=pipe, mode="r|") as tar, \
                    tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as shifted:
                for info in tar:
                    if not _kernel_whiteout(info.name):
                        userns.header_to_container(info, spec)
                    shifted.addfile(info, tar.extractfile(info) if info.isreg() else None)
            while pipe.read(1 << 16):
                pass  # tarfile stops at the end-of-archive blocks; the padding after them is still coming
    finally:
        thread.join()  # the read end is closed by now: a writer still writing gets EPIPE and ends
        if failed and not isinstance(failed[0], BrokenPipeError):
            raise failed[0]  # the cause (the reader saw only a tar cut short)
# --8<-- [end:in-container-ids]


def _kernel_whiteout(name: str) -> bool:
    """A deletion's marker, .wh.NAME: overlayfs made its whiteout as the host's root (the overlay's
    mounter), so its ids are the host's already, as in any commit; Docker leaves them too. (The
    opaque marker is not one: changeset writes it with its directory's owner.)"""
    from minidocker.unionfs.changeset import OPAQUE, WHITEOUT

    base = posixpath.basename(name)
    return base.startswith(WHITEOUT) and base != OPAQUE


class _Counted:
    """A pipe with a tell(), which tarfile asks of what it writes to (a pipe cannot seek)."""

    def __init__(self, pipe):
        self.pipe, self.offset = pipe, 0

    def write(self, data: bytes) -> int:
        self.offset += len(data)
        return self.pipe.write(data)

    def tell(self) -> int:
        return self.offset


# ---------------------------------------------------------------------------------------------
# the config

def has_changes(upperdir: str) -> bool:
    """A container that never started has no upper directory yet: no changes either."""
    return os.path.isdir(upperdir) and bool(os.listdir(upperdir))


def child_config(layout: Layout, upperdir: str, parent: dict, config: dict, created_by: str,
                 author: str = "", comment: str = "") -> tuple[dict | None, dict]:
    """The new layer (None when the container changed nothing) and the new image config."""
    # --8<-- [start:ex-03-commit]
    # The container's changes become one more layer, unless there are none: then Docker adds
    # no layer, only a history entry marked empty_layer. The new config is the parent's, with
    # the new Config, creation time and author, the history entry, and the new diff_id last.
    layer, diff_id = write_layer(layout, upperdir) if has_changes(upperdir) else (None, None)
    created = store.now()
    step = {"created": created, "created_by": created_by}
    step.update({k: v for k, v in (("author", author), ("comment", comment)) if v})
    if layer is None:
        step["empty_layer"] = True
    child = {**parent, "created": created, "config": config,
             "rootfs": {"type": "layers", "diff_ids": list(parent.get("rootfs", {}).get("diff_ids", []))},
             "history": list(parent.get("history") or []) + [step]}
    child.pop("author", None)
    if author:
        child["author"] = author
    if diff_id:
        child["rootfs"]["diff_ids"].append(diff_id)
    return layer, child
    # --8<-- [end:ex-03-commit]


def _image_config(container_config: dict, parent_env: list[str]) -> dict:
    """The container's Config, narrowed to what an image config holds. The engine put PATH,
    HOSTNAME and HOME (and TERM with -t) in the container's Env for its process; an image keeps
    them only where its parent had them (Docker's container Config never holds HOSTNAME)."""
    config = {k: container_config[k] for k in IMAGE_FIELDS if container_config.get(k) not in (None, "", [], {})}
    engine_added = ("HOSTNAME=", "HOME=", "TERM=")
    env = [e for e in config.get("Env") or [] if not e.startswith(engine_added) or e in parent_env]
    if env:
        config["Env"] = env
    else:
        config.pop("Env", None)
    return config


# ---------------------------------------------------------------------------------------------
# commit

def commit(container: str, repo_tag: str | None = None, author: str = "", comment: str = "",
           changes: list[str] = (), pause: bool = True, layout: Layout | None = None) -> dict:
    """POST /commit?container=&repo=&tag=&author=&comment=&changes=&pause=: {"Id": image ID}."""
    from minidocker.container import lifecycle
    from minidocker.image import layers

    name = reference.normalize(repo_tag) if repo_tag else None  # a bad name: refused before any work
    if name and name.digest:
        raise MinidockerError("refusing to create a tag with a digest reference", "commit CONTAINER NAME[:TAG]")
    c = lifecycle.find(container)
    if not c.record.get("Image"):
        raise MinidockerError(f"cannot commit container {c.name}: it runs from a --rootfs directory, not an image",
                              "commit needs a container made by `run IMAGE`")
    layout = layout or Layout()
    with layout.writing():  # a lease: the blobs we store are no garbage before the name points at them
        try:
            parent = layout.load(_manifest_of(layout, c.record["Image"]))
        except MinidockerError:
            raise MinidockerError(f"cannot commit container {c.name}: its image {c.record['Image'][7:19]} is gone",
                                  "it was removed with rmi -f") from None
        config = apply_changes(_image_config(c.record["Config"], (parent.config.get("config") or {}).get("Env") or []),
                               list(changes))
        created_by = " ".join(c.record["Config"].get("Cmd") or [])
        paused = pause and c.state["Running"] and not c.state.get("Paused")
        if paused:
            lifecycle.pause(c.id)  # frozen: no file changes while we read the upper directory
        try:
            layer, child = child_config(layout, c.upperdir, parent.config, config, created_by, author, comment)
        finally:
            if paused:
                lifecycle.unpause(c.id)
        config_descriptor = layout.put_json(child, media.OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": media.OCI_MANIFEST, "config": config_descriptor,
                    "layers": [_oci_layer(d) for d in parent.layers] + ([layer] if layer else [])}
        descriptor = layout.put_json(manifest, media.OCI_MANIFEST)
        # Unpacked now, so `run NEW` is ready at once (the parent's layers are there already).
        layers.unpack(layout, layout.load(descriptor["digest"]))
        if name:
            layout.tag(str(name), descriptor)
        else:
            layout.add(descriptor)  # no name: a dangling image, <none> in `images`
    return {"Id": config_descriptor["digest"]}


def _manifest_of(layout: Layout, image_id: str) -> str:
    for image in layout.images():
        if image.id == image_id:
            return image.manifest_digest
    raise MinidockerError(f"No such image: {image_id}")


def _oci_layer(descriptor: dict) -> dict:
    """A parent's layer under its OCI media type (the same bytes: Docker's types name the same
    formats), so the new manifest is all OCI."""
    kinds = {media.DOCKER_LAYER_GZIP: media.OCI_LAYER_GZIP, media.DOCKER_LAYER: media.OCI_LAYER}
    return {**descriptor, "mediaType": kinds.get(descriptor["mediaType"], descriptor["mediaType"])}
