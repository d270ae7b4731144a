"""What the engine tells about images: ImageInspect (`image inspect`), the list (`images`) and
the history (`history`), in the Docker Engine API's shapes.

Docker's answers name an image three ways, and they are easy to mix up (docs/03-images.md#names):
- **Id**: the digest of the image's *config* blob. Two names of the same config are one image.
- **RepoTags**: the names that point at it, as people write them ("busybox:latest": Docker's
  "familiar" form, without docker.io/library/).
- **RepoDigests**: NAME@<digest of the *manifest*>, the name a registry resolves to these exact
  bytes. minidocker's store works as Docker's containerd image store does: every named image has
  one, pulled or made here.

An OCI config has no "parent" field: the image a `commit` started from is found again by content,
as the image whose history and layers are a prefix of this one's (`parent_of`).
"""

import os
import re
import time
from datetime import datetime

from minidocker import store
from minidocker.errors import MinidockerError
from minidocker.image import reference
from minidocker.image.layout import Image, Layout

NO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time, which Docker prints for "never"


# ---------------------------------------------------------------------------------------------
# small shared pieces

def timestamp(text: str) -> float:
    """An RFC 3339 time ("2024-05-01T10:00:00.123456789Z", or with +02:00) as Unix seconds.
    Go writes nanoseconds; Python's parser takes at most microseconds, so the rest is cut."""
    if not text:
        return 0.0
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    if not match:
        return 0.0
    zone = "+00:00" if match[3] == "Z" else match[3]
    when = datetime.fromisoformat(match[1] + (match[2] or "")[:7] + zone)
    return when.timestamp()


def familiar(name: str) -> str:
    """docker.io/library/busybox:latest -> busybox:latest (Docker's FamiliarString)."""
    return reference.parse(name).familiar()


def repo_tags(image: Image) -> list[str]:
    return [familiar(n) for n in image.names if "@" not in n]


def repo_digests(image: Image) -> list[str]:
    """One NAME@MANIFEST-DIGEST per repository that names the image."""
    found = []
    for name in image.names:
        ref = reference.parse(name)
        digested = f"{ref.familiar_name}@{ref.digest or image.manifest_digest}"
        if digested not in found:
            found.append(digested)
    return found


def chain_ids(image: Image) -> list[str]:
    from minidocker.image import layers

    return layers.chain_ids(image.diff_ids)


def size(image: Image) -> int:
    """The image's size as `images` shows it: its layers unpacked (what it costs on disk to run
    it). A layer not unpacked yet counts as its blob's size."""
    from minidocker.image import layers

    total = 0
    for chain_id, descriptor in zip(chain_ids(image), image.layers):
        try:
            total += layers.size(chain_id)
        except (OSError, MinidockerError):
            total += descriptor.get("size", 0)
    return total


def parent_of(image: Image, images: list[Image]) -> Image | None:
    """The image this one was made from by one step (a commit): its history is ours without the
    last entry, and its layers are ours without the one that step added (if it added one)."""
    history = image.config.get("history") or []
    if not history:
        return None
    last_adds_layer = not history[-1].get("empty_layer")
    expected_layers = image.diff_ids[:-1] if last_adds_layer else image.diff_ids
    for other in images:
        if other.config.get("history") == history[:-1] and other.diff_ids == expected_layers:
            return other
    return None


# ---------------------------------------------------------------------------------------------
# image inspect

def inspect(text: str, layout: Layout | None = None) -> dict:
    """GET /images/{name}/json: Docker's ImageInspect."""
    layout = layout or Layout()
    image = layout.image(text)
    parent = parent_of(image, layout.images())
    config = image.config
    history = config.get("history") or []
    return {
        "Id": image.id,
        "RepoTags": repo_tags(image),
        "RepoDigests": repo_digests(image),
        "Parent": parent.id if parent else "",
        "Comment": history[-1].get("comment", "") if history else "",
        "Created": config.get("created") or NO_TIME,
        "DockerVersion": "",
        "Author": config.get("author", ""),
        "Config": config.get("config") or {},
        "Architecture": config.get("architecture", ""),
        **({"Variant": config["variant"]} if config.get("variant") else {}),
        "Os": config.get("os", ""),
        "Size": size(image),
        "GraphDriver": _graph_driver(image),
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": NO_TIME},
        # Docker's containerd image store adds the manifest's descriptor: what a registry has.
        "Descriptor": image.descriptor(),
    }


def _graph_driver(image: Image) -> dict:
    """Where the layers are unpacked, as overlay2 shows it: the top layer is UpperDir, the ones
    below it LowerDir (topmost first, as overlayfs's lowerdir= lists them)."""
    from minidocker.image import layers

    dirs = layers.directories(image) if image.diff_ids else []
    if not dirs:
        return {"Name": "overlay2", "Data": None}
    data = {"UpperDir": dirs[-1]}
    if len(dirs) > 1:
        data["LowerDir"] = ":".join(reversed(dirs[:-1]))
    return {"Name": "overlay2", "Data": data}


# --8<-- [start:inspect-fallback]
def inspect_image_or_none(text: str) -> dict | None:
    """For `minidocker inspect NAME`: Docker looks for a container first, then for an image of
    that name. None when there is no such image (the caller reports "No such object")."""
    if not os.path.exists(os.path.join(store.root(), "images", "index.json")):
        return None  # no image store yet (a machine that never had an image): nothing to look in
    try:
        return inspect(text)
    except MinidockerError:
        return None
# --8<-- [end:inspect-fallback]


# ---------------------------------------------------------------------------------------------
# images: the list

FILTERS = ("dangling", "reference", "label", "before", "since")


def parse_filters(words: list[str]) -> dict[str, list[str]]:
    """--filter KEY=VALUE, repeatable, checked as dockerd checks them."""
    found: dict[str, list[str]] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise MinidockerError(f"bad format of filter (expected name=value): {word}", "e.g. --filter dangling=true")
        key = key.strip().lower()
        if key not in FILTERS:
            raise MinidockerError(f"invalid filter '{key}'", f"the image filters are: {', '.join(FILTERS)}")
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise MinidockerError(f"invalid filter 'dangling={value}'", "dangling=true or dangling=false")
        found.setdefault(key, []).append(value)
    return found


def _go_path_match(pattern: str, text: str) -> bool:
    """Go's path.Match, which Docker's reference filter uses: * and ? never match a "/"."""
    regex, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            regex += "[^/]*"
        elif c == "?":
            regex += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                return False  # Go: ErrBadPattern, which matches nothing
            body = pattern[i + 1:end]
            regex += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            regex += re.escape(pattern[i])
        else:
            regex += re.escape(c)
        i += 1
    return re.fullmatch(regex, text) is not None


def _reference_matches(pattern: str, name: str) -> bool:
    """Docker's FamiliarMatch: the pattern against "busybox:latest" or against "busybox"."""
    ref = reference.parse(name)
    return _go_path_match(pattern, ref.familiar()) or _go_path_match(pattern, ref.familiar_name)


def list_images(all: bool = False, filters: dict[str, list[str]] | None = None,
                layout: Layout | None = None) -> list[dict]:
    """GET /images/json: Docker's ImageSummary per image, newest first."""
    layout = layout or Layout()
    filters = filters or {}
    images = layout.images()
    bounds = {key: [timestamp(layout.image(v).created) for v in filters.get(key, [])] for key in ("before", "since")}
    parents = {p.id for p in (parent_of(i, images) for i in images) if p}
    summaries = []
    for image in images:
        names = [n for n in image.names if "@" not in n]
        if "dangling" in filters:
            wanted = filters["dangling"][-1].lower() in ("true", "1")
            if wanted != (not image.names):
                continue
        elif not all and not image.names and image.id in parents:
            continue  # an unnamed image others were made from: Docker's "intermediate" image
        if "reference" in filters:
            names = [n for n in names if any(_reference_matches(p, n) for p in filters["reference"])]
            if not names:
                continue
        if not _labels_match(image, filters.get("label", [])):
            continue
        created = timestamp(image.created)
        if any(created >= b for b in bounds["before"]) or any(created <= b for b in bounds["since"]):
            continue
        digested = repo_digests(image)
        if "reference" in filters:  # only the repositories the pattern let through
            repos = {reference.parse(n).familiar_name for n in names}
            digested = [d for d in digested if d.split("@", 1)[0] in repos]
        summaries.append({
            "Id": image.id, "ParentId": "",
            "RepoTags": [familiar(n) for n in names],
            "RepoDigests": digested,
            "Created": int(created), "Size": size(image), "SharedSize": -1,
            "Labels": (image.config.get("config") or {}).get("Labels") or {}, "Containers": -1,
        })
    summaries.sort(key=lambda s: s["Created"], reverse=True)
    return summaries


def _labels_match(image: Image, wanted: list[str]) -> bool:
    labels = (image.config.get("config") or {}).get("Labels") or {}
    for item in wanted:
        key, eq, value = item.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# history

def history(text: str, layout: Layout | None = None) -> list[dict]:
    """GET /images/{name}/history: one entry per step of the config's history, newest first.
    Id is the image that step made when we have it here, else "<missing>", as Docker says."""
    from minidocker.image import layers

    layout = layout or Layout()
    image = layout.image(text)
    images = layout.images()
    steps = image.config.get("history") or []
    ids = chain_ids(image)
    rows, layer = [], 0
    for i, step in enumerate(steps):
        size_of = 0
        if not step.get("empty_layer"):
            if layer >= len(ids):
                raise MinidockerError(f"image {image.id[7:19]}: too many non-empty layers in History section",
                                      "the image's config is inconsistent")
            try:
                size_of = layers.size(ids[layer])
            except (OSError, MinidockerError):
                size_of = image.layers[layer].get("size", 0) if layer < len(image.layers) else 0
            layer += 1
        made = _image_at(steps[:i + 1], image.diff_ids[:layer], images)
        rows.append({"Id": made.id if made else "<missing>", "Created": int(timestamp(step.get("created", ""))),
                     "CreatedBy": step.get("created_by", ""), "Tags": repo_tags(made) if made else [],
                     "Size": size_of, "Comment": step.get("comment", "")})
    if rows:
        rows[-1]["Id"] = image.id
    return rows[::-1]


def _image_at(steps: list[dict], diff_ids: list[str], images: list[Image]) -> Image | None:
    for other in images:
        if (other.config.get("history") or []) == steps and other.diff_ids == diff_ids:
            return other
    return None


def since(seconds: float) -> str:
    """"2 minutes ago", as the docker CLI's CreatedSince words it."""
    from minidocker.container.inspect import human_duration

    return f"{human_duration(time.time() - seconds)} ago"
