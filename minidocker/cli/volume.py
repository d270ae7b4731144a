"""The volume commands: volume {create, ls, inspect, rm, prune} (docs/05-volumes.md#volume-commands).

A thin translation, as cli/image.py: flags become the arguments of minidocker/volume/volumes.py's
functions, and the answers are printed as the docker CLI prints them (`ls` through the same
Go-template tables as `ps`). As in the docker CLI, a bad flag exits 125 and a refusal of the
engine (no such volume, in use) exits 1.
"""

import json
import sys

from minidocker.cli import confirm, each, print_error
from minidocker.errors import MinidockerError

LS_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
              "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP",
              "Availability": "AVAILABILITY", "Status": "STATUS"}
LS_TABLE = "table {{.Driver}}\t{{.Name}}"
LS_FILTERS = ("dangling", "driver", "label", "name")


def _key_values(words: list[str]) -> dict[str, str]:
    """--label k=v and -o k=v, as the docker CLI's map options take them: no "=" is an empty value."""
    found = {}
    for word in words:
        key, _, value = word.partition("=")
        found[key] = value
    return found


def cmd_create(args) -> int:
    from minidocker.volume import volumes

    if args.name and args.name_flag and args.name != args.name_flag:
        raise MinidockerError("conflicting options: either specify --name or provide positional arg, not both",
                              "minidocker volume create NAME")
    volume = volumes.create(args.name or args.name_flag, labels=_key_values(args.label),
                            options=_key_values(args.opt), driver=args.driver)
    print(volume["Name"])
    return 0


def _create_flags(p) -> None:
    p.add_argument("-d", "--driver", default="local", help="the volume driver (only 'local')")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="set metadata on the volume")
    p.add_argument("-o", "--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="the local driver's options: type=tmpfs|none|ext4..., device=..., o=mount options")
    import argparse

    p.add_argument("--name", dest="name_flag", help=argparse.SUPPRESS)  # hidden in the docker CLI too
    p.add_argument("name", nargs="?", metavar="VOLUME")


def _filters(words: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise MinidockerError(f"bad format of filter (expected name=value): {word}", "e.g. --filter dangling=true")
        key = key.strip().lower()
        if key not in LS_FILTERS:
            raise MinidockerError(f"invalid filter '{key}'", f"the volume filters are: {', '.join(LS_FILTERS)}",
                                  exit_code=1)
        if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
            raise MinidockerError(f"invalid filter 'dangling={value}'", "dangling=true or dangling=false", exit_code=1)
        found.setdefault(key, []).append(value)
    return found


# --8<-- [start:ls-filter]
def matches(volume: dict, filters: dict[str, list[str]], used: dict) -> bool:
    """dockerd's volume filters: each key must match, any of its values may (an OR within a key)."""
    labels = volume.get("Labels") or {}
    checks = {
        # "dangling": no container, running or not, names the volume
        "dangling": lambda v: (volume["Name"] not in used) == (v.lower() in ("true", "1")),
        "name": lambda v: v in volume["Name"],  # a substring, not a pattern
        "driver": lambda v: v == volume["Driver"],
        "label": lambda v: (v.partition("=")[0] in labels
                            and ("=" not in v or labels[v.partition("=")[0]] == v.partition("=")[2])),
    }
    return all(any(checks[key](value) for value in values) for key, values in filters.items())
# --8<-- [end:ls-filter]


def _natural(name: str) -> list:
    """The docker CLI sorts volumes "naturally": vol2 before vol10."""
    import re

    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def cmd_ls(args) -> int:
    from minidocker.container import formatting
    from minidocker.volume import volumes

    filters = _filters(args.filter)
    format = "{{.Name}}" if args.quiet else (args.format or LS_TABLE)
    used = volumes.in_use() if "dangling" in filters else {}
    # The keys in Go's order for `--format json`: a map, marshalled with its keys sorted.
    rows = [{"Availability": "N/A", "Driver": v["Driver"], "Group": "N/A",
             "Labels": ",".join(f"{k}={val}" for k, val in (v.get("Labels") or {}).items()),
             "Links": "N/A", "Mountpoint": v["Mountpoint"], "Name": v["Name"], "Scope": v["Scope"],
             "Size": "N/A", "Status": "N/A"}
            for v in sorted(volumes.list_volumes(), key=lambda v: _natural(v["Name"]))
            if matches(v, filters, used)]
    sys.stdout.write(formatting.write(format, rows, LS_HEADERS))
    return 0


def _ls_flags(p) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="only display volume names")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="FILTER",
                   help="filter output: dangling=true|false, driver=local, label=KEY[=VALUE], name=PART")
    p.add_argument("--format", help="a Go template per volume, 'table TEMPLATE' or 'json'")


def cmd_inspect(args) -> int:
    from minidocker.container import gotemplate
    from minidocker.volume import volumes

    if args.format is not None:
        gotemplate.parse(args.format)  # a bad template is refused before any lookup
    answers, failed = [], []
    for name in args.volumes:
        try:
            answers.append(volumes.get(name))
        except MinidockerError as e:
            failed.append(e)
    if args.format is None:
        print(json.dumps(answers, indent=4))
    else:
        for answer in answers:
            print(gotemplate.render(args.format, answer))
    for e in failed:
        print_error(str(e))
    return 1 if failed else 0


def _inspect_flags(p) -> None:
    p.add_argument("-f", "--format", help="a Go template, e.g. '{{.Mountpoint}}'")
    p.add_argument("volumes", nargs="+", metavar="VOLUME")


def cmd_rm(args) -> int:
    """Each volume in turn, printing its name once removed; the failures at the end."""
    from minidocker.volume import volumes

    # The docker CLI's `volume rm` exits 1 on any failure.
    return each(args.volumes, lambda name: volumes.remove(name, force=args.force), failure_code=1)


def _rm_flags(p) -> None:
    p.add_argument("-f", "--force", action="store_true", help="no error for a volume that does not exist")
    p.add_argument("volumes", nargs="+", metavar="VOLUME")


PRUNE_WARNING = {False: "WARNING! This will remove anonymous local volumes not used by at least one container.",
                 True: "WARNING! This will remove all local volumes not used by at least one container."}


def cmd_prune(args) -> int:
    from minidocker.container.formatting import human_size
    from minidocker.volume import volumes

    if not args.force and not confirm(PRUNE_WARNING[args.all]):
        return 0
    report = volumes.prune(all=args.all)
    if report["VolumesDeleted"]:
        print("Deleted Volumes:")
        for name in report["VolumesDeleted"]:
            print(name)
        print()
    print("Total reclaimed space:", human_size(report["SpaceReclaimed"], precision=4))
    return 0


def _prune_flags(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove all unused volumes, not just anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")


# `volume SUBCOMMAND`: name -> (aliases, help, flags, func)
VOLUME_COMMANDS = {
    "create": ([], "create a volume", _create_flags, cmd_create),
    "ls": (["list"], "list volumes", _ls_flags, cmd_ls),
    "inspect": ([], "show volumes' details as JSON", _inspect_flags, cmd_inspect),
    "rm": (["remove"], "remove volumes", _rm_flags, cmd_rm),
    "prune": ([], "remove unused volumes", _prune_flags, cmd_prune),
}


def cmd_volume(args) -> int:
    args.volume_parser.print_help()
    return 0


def add_commands(sub, words=()) -> None:
    from minidocker.cli import Parser

    p = sub.add_parser("volume", help="manage volumes")
    p.set_defaults(func=cmd_volume, volume_parser=p)
    inner = p.add_subparsers(dest="volume_command", metavar="COMMAND", parser_class=Parser)
    for name, (aliases, help, add_flags, func) in VOLUME_COMMANDS.items():
        q = inner.add_parser(name, help=help, aliases=aliases)
        add_flags(q)
        q.set_defaults(func=func)
