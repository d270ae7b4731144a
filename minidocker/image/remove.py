"""Names and removal: `tag`, `rmi` (untag versus delete) and `image prune`.

A name is only a pointer (an entry of index.json) to a manifest; an image may have many, or none
(then it is "dangling", shown as <none>). So removing an image is two steps, as in Docker:

1. **untag**: `rmi busybox` removes the *name*. If another name still points at the image, that
   is all: "Untagged: busybox:latest", and the image stays.
2. **delete**: when the last name goes (or the image is named by its ID), the image itself is
   forgotten: "Deleted: sha256:…". Its blobs and unpacked layers are freed by a garbage
   collection that keeps everything another image or a container still uses.

A container depends on its image: `rmi` refuses to take away the last name of an image a
container uses (it would leave a <none> image that nobody can name), unless forced; and it never
deletes an image a running container uses. See docs/03-images.md#rmi.
"""

import os

from minidocker.errors import MinidockerError
from minidocker.image import reference
from minidocker.image.inspect import familiar
from minidocker.image.layout import Image, Layout


def tag(source: str, target: str, layout: Layout | None = None) -> None:
    """POST /images/{name}/tag: one more name for the image `source` names."""
    layout = layout or Layout()
    image = layout.image(source)
    ref = reference.normalize(target)
    if ref.digest:
        raise MinidockerError("refusing to create a tag with a digest reference",
                              "a digest names content; a tag is a name you choose: NAME[:TAG]")
    layout.tag(str(ref), image.descriptor())


def _users(image: Image) -> list:
    """The containers created from `image`, in any state (their records name its ID)."""
    from minidocker.container import lifecycle

    return [c for c in lifecycle.all_containers() if c.record.get("Image") == image.id]


def _is_id(text: str, image: Image) -> bool:
    """Was the image named by its ID (or an ID prefix) rather than by a name? (isImageIDPrefix)"""
    hexid = image.id.split(":", 1)[1]
    return image.id.startswith(text) or hexid.startswith(text)


def _conflict(what: str, force: str, why: str) -> MinidockerError:
    return MinidockerError(f"conflict: unable to delete {what} ({force}) - {why}",
                           "see docs/03-images.md#rmi")


# --8<-- [start:rmi]
def remove(text: str, force: bool = False, layout: Layout | None = None) -> list[dict]:
    """DELETE /images/{name}?force=: untag, then delete when no name is left. Returns Docker's
    answer, a list of {"Untagged": name} and {"Deleted": id}."""
    layout = layout or Layout()
    done: list[dict] = []
    with layout.lock():
        image = layout.image(text)
        users = _users(image)
        if not _is_id(text, image):
            name = str(reference.normalize(text))
            if not force and len(image.names) == 1 and users:
                raise MinidockerError(
                    f'conflict: unable to remove repository reference "{text}" (must force) - container '
                    f"{users[0].short_id} is using its referenced image {image.id[7:19]}",
                    "remove the container first, or -f to untag it anyway")
            for gone in [name] + _digest_names_left_alone(image, name):
                layout.untag(gone)
                done.append({"Untagged": familiar(gone)})
            if len(image.names) > len(done) or users:
                return done  # other names remain, or a container needs it: it stays (<none> if unnamed)
        else:
            running = [c for c in users if c.state["Running"]]
            if running:
                raise _conflict(image.id[7:19], "cannot be forced",
                                f"image is being used by running container {running[0].short_id}")
            if users and not force:
                raise _conflict(image.id[7:19], "must be forced",
                                f"image is being used by stopped container {users[0].short_id}")
            if len({n for n in image.names if "@" not in n}) > 1 and not force:
                raise _conflict(image.id[7:19], "must be forced", "image is referenced in multiple repositories")
            for name in image.names:
                layout.untag(name)
                done.append({"Untagged": familiar(name)})
        layout.remove(image.manifest_digest)
        done.append({"Deleted": image.id})
    collect_garbage(layout)
    return done
# --8<-- [end:rmi]


def _digest_names_left_alone(image: Image, name: str) -> list[str]:
    """When a repository's last tag on the image goes, its NAME@DIGEST names go with it."""
    repo = reference.parse(name).name
    same_repo = [n for n in image.names if n != name and reference.parse(n).name == repo]
    if any("@" not in n for n in same_repo):
        return []
    return same_repo


def prune(all: bool = False, layout: Layout | None = None) -> dict:
    """POST /images/prune: delete the dangling images (with all=True: every image no container
    uses). Returns {"ImagesDeleted": [...], "SpaceReclaimed": bytes}, as dockerd does."""
    from minidocker.container import records

    layout = layout or Layout()
    done: list[dict] = []
    with layout.lock():
        used = records.images_in_use()
        for image in layout.images():
            if image.id in used or (image.names and not all):
                continue
            for name in image.names:
                layout.untag(name)
                done.append({"Untagged": familiar(name)})
            layout.remove(image.manifest_digest)
            done.append({"Deleted": image.id})
    return {"ImagesDeleted": done, "SpaceReclaimed": collect_garbage(layout)}


def collect_garbage(layout: Layout) -> int:
    """Free the blobs no image reaches, then the unpacked layers no image and no container needs
    (a container keeps its layers even after its image is gone). Returns the bytes freed."""
    from minidocker.container import records
    from minidocker.image import layers

    freed = layout.collect_garbage()
    freed += layers.collect_garbage(layout, records.layers_in_use())
    remove_remapped_copies()
    return freed


def remove_remapped_copies() -> None:
    """A user-namespace remapping's copies of the layers just freed (chapter 08), if it made any:
    they are copies of what is gone."""
    from minidocker import store

    if any(name[:1].isdigit() for name in os.listdir(store.root())):  # a UID.GID/: imported only then
        from minidocker.security import remapped_files

        remapped_files.remove_copies_of_gone_layers()
