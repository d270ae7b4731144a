"""`docker diff CONTAINER`: what a container changed in its filesystem, as `docker diff` shows it.

Everything a container changes lands in its upper directory, so the list of changes is a walk of
that directory, compared with the image's layers below it:

    A /etc/new       added: in the upper directory, not in the layers below
    C /etc/passwd    changed: in the upper directory, and below it too (copied up, then written)
    D /bin/vi        deleted: a whiteout

A directory that was only copied up on the way to a change (same mode, size and mtime as below)
is not a change itself; but the parent directory of an added or deleted entry always is, as in
Docker. One Docker quirk is kept too: a directory that was deleted and made again (an opaque
directory) is shown as deleted, `D /dir`, followed by what it now holds, `A /dir/new`.
"""

import os
import stat

from minidocker.unionfs.model import Union, is_opaque, is_whiteout


# --8<-- [start:changes]
def changes(upperdir: str, lowerdirs: list[str]) -> list[tuple[str, str]]:
    """[(kind, path)] for the upper directory `upperdir` over `lowerdirs` (top-most first), kind
    being "A", "C" or "D" and path absolute in the container, sorted by path."""
    below = Union(lowerdirs)  # the image as it was, without the container's layer
    found: dict[str, str] = {}
    changed_dirs = set()
    for dirpath, dirnames, filenames in os.walk(upperdir):
        for name in dirnames + filenames:
            real = os.path.join(dirpath, name)
            path = os.path.relpath(real, upperdir)
            st = os.lstat(real)
            was = below.lstat(path) if below.exists(path) else None
            if is_whiteout(st) or (stat.S_ISDIR(st.st_mode) and was and is_opaque(real)):
                kind = "D"
            elif was is None:
                kind = "A"
            elif stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(was.st_mode) and _same_dir(st, was):
                continue  # only copied up because something below it changed
            else:
                kind = "C"
            found[path] = kind
            if stat.S_ISDIR(st.st_mode):
                changed_dirs.add(path)
            parent = os.path.dirname(path)
            if kind != "C" and parent and parent not in changed_dirs:
                found[parent] = "C"
                changed_dirs.add(parent)
    return [(kind, "/" + path) for path, kind in sorted(found.items())]
# --8<-- [end:changes]


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    # overlayfs gives a copied-up directory the mode and times of the original.
    return (a.st_mode, a.st_size, a.st_mtime_ns) == (b.st_mode, b.st_size, b.st_mtime_ns)
