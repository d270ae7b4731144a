"""The image commands: images, image {ls, inspect, rm, prune, history, tag, save, load, pull, push},
tag, rmi, history, commit (and save, load, whose work is cli/archive.py's).

As cli/container.py, a thin translation: flags become the engine function's arguments
(minidocker/image/), and its answer is printed as the docker CLI prints it: the lists through the
same Go-template tables as `ps` (container/formatting.py), so `--format` works as in Docker.
"""

import json
import sys
import time

from minidocker.cli import confirm, each, print_error
from minidocker.errors import MinidockerError


def _truncated_id(image_id: str) -> str:
    """The docker CLI's stringid.TruncateID: no "sha256:", 12 hex digits."""
    return image_id.split(":", 1)[-1][:12]


def _bool_flag(p, *flags: str, help: str) -> None:
    """A Go bool flag, true by default: `-p`, and `--pause=false` as the docker CLI takes it.
    (argparse's nargs="?" would take the next word, the container, as the value.) argparse looks
    a whole word up among the option strings before it splits at "=", so each spelling of the
    value is an option string of its own, hidden from the help."""
    import argparse

    dest = flags[-1].lstrip("-").replace("-", "_")
    p.add_argument(*flags, dest=dest, action="store_const", const=True, default=True, help=help)
    for value, words in ((False, ("false", "False", "FALSE", "f", "F", "0")), (True, ("true", "True", "TRUE", "t", "T", "1"))):
        p.add_argument(*[f"{flag}={word}" for flag in flags for word in words], dest=dest,
                       action="store_const", const=value, help=argparse.SUPPRESS)


# ---------------------------------------------------------------------------------------------
# images

IMAGES_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                  "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGESTS_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def cmd_images(args) -> int:
    from minidocker.container import formatting
    from minidocker.image.inspect import list_images, parse_filters

    filters = parse_filters(args.filter)
    if args.repository:  # `images busybox` is --filter reference=busybox
        filters.setdefault("reference", []).append(args.repository)
    if args.quiet:
        format = "{{.ID}}"
    else:
        format = args.format or (IMAGES_DIGESTS_TABLE if args.digests else IMAGES_TABLE)
    rows = [row for summary in list_images(all=args.all, filters=filters)
            for row in image_rows(summary, trunc=not args.no_trunc, digests=args.digests)]
    sys.stdout.write(formatting.write(format, rows, IMAGES_HEADERS))
    return 0


def image_rows(summary: dict, trunc: bool, digests: bool) -> list[dict]:
    """One row per repository and tag, as the docker CLI's image formatter makes them: a
    dangling image is one <none> <none> row; a repository known only by digest gets a <none> tag."""
    from minidocker.container.formatting import human_size
    from minidocker.image.inspect import since

    def row(repo: str, tag: str, digest: str) -> dict:
        return {"ID": _truncated_id(summary["Id"]) if trunc else summary["Id"], "Repository": repo, "Tag": tag,
                "Digest": digest, "CreatedSince": since(summary["Created"]),
                "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(summary["Created"])),
                "Size": human_size(summary["Size"]), "Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A"}

    if not summary["RepoTags"] and not summary["RepoDigests"]:
        return [row("<none>", "<none>", "<none>")]
    tags: dict[str, list[str]] = {}
    for name in summary["RepoTags"]:
        repo, _, tag = name.rpartition(":")
        tags.setdefault(repo, []).append(tag)
    by_digest: dict[str, list[str]] = {}
    for name in summary["RepoDigests"]:
        repo, _, digest = name.partition("@")
        by_digest.setdefault(repo, []).append(digest)
    rows = []
    for repo in sorted(tags):
        shown = by_digest.pop(repo, [])  # a tag's row shows its digests, not a row of their own
        if not digests:
            shown = []
        for tag in sorted(tags[repo]):
            rows += [row(repo, tag, d) for d in shown] or [row(repo, tag, "<none>")]
    for repo in sorted(by_digest):  # names by digest only
        rows += [row(repo, "<none>", d) for d in by_digest[repo]] if digests else [row(repo, "<none>", "")]
    return rows


def _images_flags(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all images (default hides intermediate images)")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--digests", action="store_true", help="show digests")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                   help="filter output: dangling=true|false, reference=PATTERN, label=KEY[=VALUE], before=IMAGE, since=IMAGE")
    p.add_argument("--format", help="a Go template per image, 'table TEMPLATE' or 'json'")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")


# ---------------------------------------------------------------------------------------------
# image inspect, history

def cmd_image_inspect(args) -> int:
    from minidocker.container import gotemplate
    from minidocker.image.inspect import inspect

    if args.format is not None:
        gotemplate.parse(args.format)  # a bad template is refused before any lookup
    answers, failed = [], []
    for name in args.images:
        try:
            answers.append(inspect(name))
        except MinidockerError as e:
            failed.append(e)
    if args.format is None:
        print(json.dumps(answers, indent=4))
    else:
        for answer in answers:
            print(gotemplate.render(args.format, answer))
    for e in failed:
        print_error(str(e))
    return 1 if failed else 0  # the docker CLI's inspect exits 1 when an object is missing


def _inspect_flags(p) -> None:
    p.add_argument("-f", "--format", help="a Go template, e.g. '{{.Id}}' or '{{json .Config}}'")
    p.add_argument("images", nargs="+", metavar="IMAGE")


HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def cmd_history(args) -> int:
    from minidocker.container import formatting
    from minidocker.container.formatting import ellipsis, human_size
    from minidocker.image.inspect import history, since

    human, trunc = args.human, not args.no_trunc
    rows = []
    for step in history(args.image):
        created_by = step["CreatedBy"].replace("\t", " ")
        rows.append({
            "ID": _truncated_id(step["Id"]) if trunc else step["Id"],
            "CreatedSince": since(step["Created"]) if human else _rfc3339(step["Created"]),
            "CreatedAt": _rfc3339(step["Created"]),
            "CreatedBy": ellipsis(created_by, 45) if trunc else created_by,
            "Size": human_size(step["Size"]) if human else str(step["Size"]),
            "Comment": step["Comment"]})
    format = "{{.ID}}" if args.quiet else args.format or HISTORY_TABLE
    sys.stdout.write(formatting.write(format, rows, HISTORY_HEADERS))
    return 0


def _rfc3339(seconds: int) -> str:
    """Go's time.RFC3339 in local time: 2024-05-01T10:00:00+02:00 (Z for UTC)."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))
    return text[:-5] + ("Z" if text[-5:] == "+0000" else f"{text[-5:-2]}:{text[-2:]}")


def _history_flags(p) -> None:
    _bool_flag(p, "-H", "--human", help="print sizes and dates in human readable format (default true; -H=false)")
    p.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    p.add_argument("--no-trunc", action="store_true", help="don't truncate output")
    p.add_argument("--format", help="a Go template per step, 'table TEMPLATE' or 'json'")
    p.add_argument("image", metavar="IMAGE")


# ---------------------------------------------------------------------------------------------
# tag, rmi, prune

def cmd_tag(args) -> int:
    from minidocker.image.remove import tag

    tag(args.source, args.target)
    return 0


def _tag_flags(p) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")


def cmd_rmi(args) -> int:
    """Each image in turn, printing what was untagged and deleted; the failures at the end."""
    from minidocker.image.remove import remove

    def untag_or_delete(name):
        return [f"{kind}: {what}" for record in remove(name, force=args.force) for kind, what in record.items()]
    return each(args.images, untag_or_delete)


def _rmi_flags(p) -> None:
    p.add_argument("-f", "--force", action="store_true", help="force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="do not delete untagged parents (accepted; nothing to do)")
    p.add_argument("images", nargs="+", metavar="IMAGE")


PRUNE_WARNING = {False: "WARNING! This will remove all dangling images.",
                 True: "WARNING! This will remove all images without at least one container associated to them."}


def cmd_image_prune(args) -> int:
    from minidocker.container.formatting import human_size
    from minidocker.image.remove import prune

    if not args.force and not confirm(PRUNE_WARNING[args.all]):
        return 0
    report = prune(all=args.all)
    if report["ImagesDeleted"]:
        print("Deleted Images:")
        for record in report["ImagesDeleted"]:
            kind, what = next(iter(record.items()))
            print(f"{kind.lower()}: {what}")
        print()
    print("Total reclaimed space:", human_size(report["SpaceReclaimed"], precision=4))  # go-units HumanSize
    return 0


def _prune_flags(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove all unused images, not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")


# ---------------------------------------------------------------------------------------------
# commit

def cmd_commit(args) -> int:
    from minidocker.image.commit import commit

    answer = commit(args.container, args.repository, author=args.author or "", comment=args.message or "",
                    changes=args.change, pause=args.pause)
    print(answer["Id"])
    return 0


def _commit_flags(p) -> None:
    p.add_argument("-a", "--author", help='author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    p.add_argument("-c", "--change", action="append", default=[], metavar="LINE",
                   help="apply a Dockerfile instruction: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR")
    p.add_argument("-m", "--message", help="commit message")
    _bool_flag(p, "-p", "--pause", help="pause the container during commit (default true; --pause=false)")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")


# ---------------------------------------------------------------------------------------------
# Commands that other modules serve: save and load (cli/archive.py), pull and push (cli/registry.py)

def _borrowed(module: str, flags: str, func: str):
    """(flags, func) of another command module, imported only when the command is built."""
    import importlib

    mod = importlib.import_module(module)
    return getattr(mod, flags), getattr(mod, func)


BORROWED = {"save": ("minidocker.cli.archive", "save_flags", "cmd_save", "save images to a tar archive"),
            "load": ("minidocker.cli.archive", "load_flags", "cmd_load", "load images from a tar archive"),
            "pull": ("minidocker.cli.registry", "_pull_flags", "cmd_pull", "download an image from a registry"),
            "push": ("minidocker.cli.registry", "_push_flags", "cmd_push", "upload an image to a registry")}

# `image SUBCOMMAND`: name -> (aliases, help, flags, func). None: borrowed (above).
IMAGE_COMMANDS = {
    "ls": (["list"], "list images", _images_flags, cmd_images),
    "inspect": ([], "show images' configuration as JSON", _inspect_flags, cmd_image_inspect),
    "rm": (["remove"], "remove images (untag, then delete)", _rmi_flags, cmd_rmi),
    "prune": ([], "remove unused images", _prune_flags, cmd_image_prune),
    "history": ([], "show the history of an image", _history_flags, cmd_history),
    "tag": ([], "create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", _tag_flags, cmd_tag),
    "save": None, "load": None, "pull": None, "push": None,
}

COMMANDS = {
    "images": ("list images", _images_flags, cmd_images),
    "tag": ("create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", _tag_flags, cmd_tag),
    "rmi": ("remove images (untag, then delete)", _rmi_flags, cmd_rmi),
    "history": ("show the history of an image", _history_flags, cmd_history),
    "commit": ("create a new image from a container's changes", _commit_flags, cmd_commit),
    "save": None, "load": None,
    "image": ("manage images", None, None),
}


def _add(sub, name: str, spec, aliases=()) -> None:
    if spec is None:
        module, flags, func, help = BORROWED[name]
        add_flags, func = _borrowed(module, flags, func)
    else:
        help, add_flags, func = spec
    p = sub.add_parser(name, help=help, aliases=list(aliases))
    add_flags(p)
    p.set_defaults(func=func)


def cmd_image(args) -> int:
    args.image_parser.print_help()
    return 0


def add_commands(sub, words=()) -> None:
    asked = words[0] if words and words[0] in COMMANDS else None
    for name, spec in COMMANDS.items():
        if asked not in (None, name):
            continue
        if name != "image":
            _add(sub, name, spec)
            continue
        p = sub.add_parser("image", help="manage images")
        p.set_defaults(func=cmd_image, image_parser=p)
        from minidocker.cli import Parser

        inner = p.add_subparsers(dest="image_command", metavar="COMMAND", parser_class=Parser)
        wanted = words[1] if asked == "image" and len(words) > 1 else None
        for sub_name, sub_spec in IMAGE_COMMANDS.items():
            aliases = sub_spec[0] if sub_spec else []
            if wanted in (None, sub_name, *aliases) or wanted not in _all_image_words():
                _add(inner, sub_name, sub_spec[1:] if sub_spec else None, aliases)


def _all_image_words() -> set[str]:
    return {w for name, spec in IMAGE_COMMANDS.items() for w in [name, *(spec[0] if spec else [])]}
