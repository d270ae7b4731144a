"""COPY, ADD and WORKDIR: a layer written straight from files, without running a container.

A RUN step needs a container: only the program knows what it will change. A COPY does not: the
builder knows exactly which files go where, so it writes them into an empty *staging* directory,
laid out as the image's root, and that directory becomes the layer, exactly as a container's
upper directory does in `commit` (the same changeset.create, the same gzip'ed blob). No process
runs, no overlay is mounted for the destination, and the files keep their modes and times:

    context/app/main.py ──┐                       staging/srv/app/main.py
    context/app/util.py ──┼─ COPY app /srv/app ─▶ staging/srv/app/util.py ──▶ layer tar ──▶ blob
                          │                       staging/srv/          (the parent, with the
                          │                                              image's own mode/owner)

Two details Docker gets right and so must we:
- a parent directory the image has already (say /srv) is written into the layer too (a tar entry
  for every directory on the way); it must carry the image's mode and owner, or the layer would
  change them (overlayfs's copy-up does the same for a container);
- the owner: files from the context belong to root (uid 0) in the image whatever their owner on
  the host; `--chown=USER:GROUP` picks another, looked up in the image's /etc/passwd and
  /etc/group; `COPY --from` keeps the owners the files had in the other stage.

The cache key of a COPY is a checksum of the copied files' content and metadata (owner, mode,
type, link target; never the modification time, so `touch` or a fresh `git clone` keeps the
cache), computed before anything is copied. See docs/06-build.md#copy-and-add.
"""

import contextlib
import glob
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile

from minidocker import store
from minidocker.errors import MinidockerError

DOCS = "see docs/06-build.md#copy-and-add"


# ---------------------------------------------------------------------------------------------
# an image's files, read-only (for COPY --from, the parents' metadata, --chown's names)

@contextlib.contextmanager
def image_root(image):
    """The image's merged filesystem at a temporary directory: a read-only overlay of its layers
    (an empty directory for an image with none, FROM scratch). Unmounted on the way out."""
    from minidocker.image import layers
    from minidocker.image.layout import Layout
    from minidocker.unionfs import overlay

    work = scratch_dir("root-")
    mounted = False
    try:
        if image is not None and image.diff_ids:
            directories = layers.unpack(Layout(), image)
            overlay.mount(directories[::-1], None, None, work)  # top-most first, as overlayfs wants
            mounted = True
        yield work
    finally:
        if mounted:
            overlay.unmount(work)
        os.rmdir(work)


def scratch_dir(prefix: str) -> str:
    """A new directory for the builder's own work, on the store's filesystem (a layer's files are
    then renamed, not copied, and the host's /tmp may be small)."""
    import tempfile

    return tempfile.mkdtemp(prefix=prefix, dir=store.directory("build"))


# ---------------------------------------------------------------------------------------------
# sources: globs inside a root, never outside it

def resolve_sources(root: str, patterns: list[str], what: str) -> list[str]:
    """The paths (relative to `root`) the source patterns name, as Docker resolves them: the
    pattern is cleaned and taken inside the root (`../x` and `/x` both mean root/x, Docker's
    "forbidden path outside the build context" for a symlink that leads out), globs included."""
    found = []
    for pattern in patterns:
        if pattern.startswith(("http://", "https://")):
            raise MinidockerError(f"{what} failed: cannot download {pattern}: this minidocker has no network for ADD",
                                  "download it first and COPY the file from the context")
        clean = posixpath.normpath("/" + pattern).lstrip("/") or "."
        if glob.has_magic(clean):
            matches = sorted(os.path.relpath(m, root) for m in glob.glob(os.path.join(root, clean)))
        else:
            matches = [clean] if os.path.lexists(os.path.join(root, clean)) else []
        if not matches:
            raise MinidockerError(f"{what} failed: file not found in build context or excluded by .dockerignore: "
                                  f"stat {pattern}: file does not exist", DOCS)
        for rel in matches:
            real = os.path.realpath(os.path.join(root, rel))
            if real != os.path.realpath(root) and not real.startswith(os.path.realpath(root) + os.sep):
                raise MinidockerError(f"{what} failed: forbidden path outside the build context: {pattern} ()", DOCS)
            found.append(rel)
    return found


def checksum(root: str, rel: str) -> str:
    """Docker's cache string for one source: "file:<hex>" or "dir:<hex>", a hash of every entry's
    name, type, mode, owner, link target and content (tarsum's fields, without the mtime)."""
    top = os.path.join(root, rel)
    h = hashlib.sha256()
    entries = [top] if not os.path.isdir(top) else [top] + sorted(
        os.path.join(d, n) for d, dirs, files in os.walk(top) for n in dirs + files)
    for path in entries:
        st = os.lstat(path) if path != top else os.stat(path)
        name = os.path.relpath(path, top)
        h.update(f"{name}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode):o}\0{st.st_uid}\0{st.st_gid}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode())
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        h.update(b"\0")
    return ("dir:" if os.path.isdir(top) else "file:") + h.hexdigest()


def sources_checksum(root: str, sources: list[str]) -> str:
    """One source: its own checksum; several: "multi:" and a hash of theirs, as Docker does."""
    sums = [checksum(root, rel) for rel in sources]
    if len(sums) == 1:
        return sums[0]
    return "multi:" + hashlib.sha256(",".join(sums).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# staging: the layer's files

def copy_tree(source: str, target: str, owner: tuple[int, int] | None) -> None:
    """Copy `source` (a file, a symlink or a whole directory) to `target`, keeping its type, mode
    and modification time; the owner is `owner`, or the source's own when it is None."""
    # --8<-- [start:ex-06-copy-layer]
    # Walk `source` (itself first, then everything under it), make each entry at the same place
    # under `target` (a symlink as a symlink, a directory with makedirs, a file's bytes copied),
    # then give it its owner (os.lchown), its mode (not for a symlink) and its times. Directory
    # times last: writing into a directory changes its mtime.
    entries = [source]
    if os.path.isdir(source) and not os.path.islink(source):
        entries += sorted(os.path.join(d, n) for d, dirs, files in os.walk(source) for n in dirs + files)
    for src in entries:
        dst = os.path.join(target, os.path.relpath(src, source)) if src != source else target
        st = os.lstat(src)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISDIR(st.st_mode):
            os.makedirs(dst, exist_ok=True)
        else:
            shutil.copyfile(src, dst)
        uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
        os.lchown(dst, uid, gid)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dst, stat.S_IMODE(st.st_mode))
    for src in reversed(entries):  # children before their directory
        dst = os.path.join(target, os.path.relpath(src, source)) if src != source else target
        st = os.lstat(src)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    # --8<-- [end:ex-06-copy-layer]


def make_parents(staging: str, image_dir: str, path: str, owner: tuple[int, int]) -> None:
    """Every directory on the way to `path` (absolute, in the image) in the staging directory:
    with the image's own mode, owner and time where the image has it, else 0755 and `owner`."""
    current = staging
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        theirs = os.path.join(image_dir, os.path.relpath(current, staging))
        if os.path.lexists(current):
            continue
        if os.path.isdir(theirs) and not os.path.islink(theirs):
            st = os.stat(theirs)
            os.mkdir(current)
            os.chown(current, st.st_uid, st.st_gid)
            os.chmod(current, stat.S_IMODE(st.st_mode))
            os.utime(current, ns=(st.st_atime_ns, st.st_mtime_ns))
        elif os.path.lexists(theirs):
            raise MinidockerError(f"cannot copy to {path}: /{os.path.relpath(current, staging)} is not a directory in the image", DOCS)
        else:
            os.mkdir(current, 0o755)
            os.chmod(current, 0o755)
            os.chown(current, *owner)


def is_archive(path: str) -> bool:
    """ADD unpacks a local tar (plain, gzip, bzip2, xz), recognised by its content, not its name."""
    if not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        with tarfile.open(path, "r:*"):
            return True
    except (tarfile.TarError, OSError, EOFError):
        return False


def extract(archive: str, target: str) -> None:
    """A local tar from ADD, unpacked into `target` (a directory of the image): through chapter 02's
    changeset.apply, which refuses names that lead out of the target."""
    from minidocker.unionfs import changeset

    os.makedirs(target, exist_ok=True)
    with open(archive, "rb") as f:
        changeset.apply(f, target)


def copy(root: str, sources: list[str], dest: str, staging: str, image_dir: str,
         owner: tuple[int, int] | None, unpack_archives: bool, what: str) -> None:
    """Docker's COPY/ADD rules, into `staging`. `dest` is absolute. A directory source copies its
    *contents*; a destination ending in "/" (or that the image has as a directory, or several
    sources) is a directory, files go in under their own names."""
    into_dir = dest.endswith("/") or len(sources) > 1 or os.path.isdir(os.path.join(image_dir, dest.lstrip("/")))
    if len(sources) > 1 and not dest.endswith("/"):
        raise MinidockerError(f"When using {what} with more than one source file, the destination must be a directory and end with a /", DOCS)
    parents_owner = owner or (0, 0)
    for rel in sources:
        src = os.path.join(root, rel)
        if os.path.isdir(src) and not os.path.islink(src):
            target = dest
        elif unpack_archives and is_archive(src):
            make_parents(staging, image_dir, dest, parents_owner)
            extract(src, os.path.join(staging, dest.lstrip("/")))
            continue
        else:
            target = posixpath.join(dest, posixpath.basename(rel)) if into_dir else dest
        make_parents(staging, image_dir, posixpath.dirname(target.rstrip("/")) or "/", parents_owner)
        final = os.path.join(staging, target.strip("/"))
        if os.path.isdir(src) and not os.path.islink(src):
            make_parents(staging, image_dir, target, parents_owner)
            for name in sorted(os.listdir(src)):
                copy_tree(os.path.join(src, name), os.path.join(final, name), owner)
        else:
            if os.path.lexists(final) and not os.path.isdir(final):
                os.unlink(final)
            copy_tree(src, final, owner)


def chown_ids(spec: str, image_dir: str) -> tuple[int, int]:
    """--chown=USER[:GROUP], names looked up in the image's /etc/passwd and /etc/group (numbers as
    they are); a USER alone gives its own uid as gid too, as Docker does."""
    user, _, group = spec.partition(":")

    def look_up(name: str, file: str, what: str) -> int:
        if name.isdigit():
            return int(name)
        try:
            with open(os.path.join(image_dir, "etc", file)) as f:
                for line in f:
                    fields = line.rstrip("\n").split(":")
                    if len(fields) > 2 and fields[0] == name:
                        return int(fields[2])
        except OSError:
            pass
        raise MinidockerError(f"unable to convert uid/gid chown string to host mapping: can't find {what} {name} "
                              f"in the image's /etc/{file}", "give numbers: --chown=1000:1000")

    uid = look_up(user, "passwd", "uid for user")
    gid = look_up(group or user, "group", "gid for group") if group or not user.isdigit() else uid
    return uid, gid
