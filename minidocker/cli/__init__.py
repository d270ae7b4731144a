"""The command line: Docker's commands and flags, parsed with argparse.

Each subcommand is a function `cmd_NAME(args) -> exit code`. Errors the user can fix are raised as
MinidockerError and printed as one line with exit code 125, as Docker does; a traceback is shown
only with MINIDOCKER_DEBUG=1.
"""

import argparse
import os
import sys

from minidocker import __version__, API_VERSION
from minidocker.errors import EXIT_ENGINE, MinidockerError


class Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized by $COLUMNS or the terminal as argparse does, but without
    importing shutil to ask: argparse makes a formatter for every flag it is given, and the
    import alone would cost ~2 ms of every container's start."""

    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS") or os.get_terminal_size(sys.stdout.fileno()).columns) - 2
            except (OSError, ValueError):  # not a terminal
                width = 80 - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """argparse prints usage and exits 2 on a bad flag; Docker prints one line and exits 125."""

    def __init__(self, *args, formatter_class=Formatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message):
        raise MinidockerError(message, f"see '{self.prog} --help'")


def cmd_version(args) -> int:
    """One line. The Engine API is named only once a daemon serves it (chapter 07): until then
    the engine's functions take and return its JSON, but nothing listens for its requests."""
    import importlib.util
    import platform

    serves_api = importlib.util.find_spec("minidocker.daemon") is not None
    api = f"Docker Engine API {API_VERSION}" if serves_api else "no Engine API yet: the daemon comes in chapter 07"
    print(f"minidocker version {__version__} ({api}), Python {platform.python_version()}, Linux {platform.release()}")
    return 0


def cmd_doctor(args) -> int:
    from minidocker import doctor

    return doctor.main()


def cmd_rootfs(args) -> int:
    from minidocker import rootfs

    print(rootfs.build(args.dir))
    return 0


# Subcommands defined in other modules: each module's add_commands(subparsers, words) registers
# them. This keeps one module per concept; and a command imports only its own module and builds
# only its own parser, since every import and every flag costs start-up time (`minidocker run`
# should start a container *fast*). `words` are the command line's words that are not flags
# ("run", "--rm", "DIR" gives ["run", "DIR"]): a module builds just the command they name, or
# every command when they name none of its own.
PLUGINS = {
    "minidocker.cli.container": ("run", "create", "start", "ps", "logs", "stop", "wait", "kill", "rm", "exec",
                                 "inspect", "diff", "pause", "unpause", "stats", "top", "port"),  # its COMMANDS' keys
    "minidocker.lab": ("lab",),  # classroom labs
    "minidocker.cli.runtime": ("runtime",),  # the OCI runtime alone, as runc
    "minidocker.cli.registry": ("pull", "push", "login", "logout"),  # registries (chapter 03)
    "minidocker.cli.image": ("images", "image", "tag", "rmi", "history", "commit", "save", "load"),  # images (chapter 03)
    "minidocker.cli.volume": ("volume",),  # volumes (chapter 05)
    "minidocker.cli.network": ("network",),  # networks (chapter 04)
    "minidocker.cli.build": ("build",),  # build (chapter 06)
    "minidocker.cli.attach": ("attach",),  # a running container's output and stdin (chapter 07)
    "minidocker.cli.archive": ("export",),  # a container's files as a tar (chapter 07's GET .../export)
    "minidocker.cli.daemon": ("daemon",),  # the Engine API server (chapter 07)
}


# Docker's commands that later chapters bring. Until a plugin serves one, it answers in one line
# which chapter to read (and so do the flags of later chapters, --cap-add...: cli/container.py).
# --8<-- [start:later]
LATER = {}
UNTIL_THEN = {"03": "images; until then a container runs from a directory: run --rootfs DIR -- CMD",
              "04": "networks; until then a container has only its own loopback, Docker's --network none",
              "05": "volumes; until then a container sees only its image's files (or its --rootfs)",
              "06": "build; until then an image is busybox, pulled, loaded, or made by `minidocker commit`",
              "07": "the daemon; until then each minidocker command is the engine itself"}
# --8<-- [end:later]


def later(what: str, chapter: str) -> MinidockerError:
    return MinidockerError(f"{what} comes in chapter {chapter}", UNTIL_THEN[chapter])


def cmd_later(args) -> int:
    raise later(args.command, LATER[args.command])


def build_parser(*words: str) -> Parser:
    """The parser for the command that `words` name when it belongs to a plugin, else for all."""
    parser = Parser(prog="minidocker", description="A small Docker, for learning how containers work.")
    parser.add_argument("--version", "-v", action="store_true", help="print the version and exit")
    parser.add_argument("--trace", action="store_true",
                        help="print every syscall made through minidocker/linux/, as it happens")
    parser.add_argument("-H", "--host", dest="daemon_host", metavar="HOST",
                        help="be a client of the daemon at unix:///PATH or tcp://127.0.0.1:PORT (or $MINIDOCKER_HOST)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.add_parser("version", help="show the version").set_defaults(func=cmd_version)
    sub.add_parser("doctor", help="check that this machine can run containers").set_defaults(func=cmd_doctor)
    p = sub.add_parser("rootfs", help="build the embedded busybox root filesystem in DIR")
    p.add_argument("dir")
    p.set_defaults(func=cmd_rootfs)
    import importlib

    command = words[0] if words else None
    wanted = [m for m, commands in PLUGINS.items() if command in commands] or list(PLUGINS)
    for module in wanted:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # a missing chapter is fine; a broken import inside it is not
                raise
            continue
        mod.add_commands(sub, words)
    for name, chapter in LATER.items():
        if name not in sub.choices:
            # prefix_chars no word can start with: `images -q` is refused whatever its flags.
            placeholder = sub.add_parser(name, help=f"comes in chapter {chapter}", prefix_chars="\0", add_help=False)
            placeholder.add_argument("anything", nargs="*")
            placeholder.set_defaults(func=cmd_later)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        words = [a for i, a in enumerate(argv) if not a.startswith("-") and argv[i - 1:i] not in (["-H"], ["--host"])]
        parser = build_parser(*words)
        try:
            args = parser.parse_args(argv)
        except MinidockerError:
            # A flag's value can look like a command (`runtime --root run state ID`), and then we
            # built the wrong one: parse again with every command, for the right answer or error.
            parser = build_parser()
            args = parser.parse_args(argv)
        if args.trace:
            from minidocker import linux

            os.environ["MINIDOCKER_TRACE"] = "1"  # the commands we start (a supervisor) trace too
            linux.enable_trace()
        if args.version:
            return cmd_version(args)
        # -H: the engine is a daemon's, over HTTP (chapter 07); without, it is this process.
        host = args.daemon_host or os.environ.get("MINIDOCKER_HOST")
        command = words[0] if words else None  # (args.command is run's own COMMAND words)
        if host and command != "daemon":
            from minidocker.daemon import client

            client.use_daemon(host, command)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        return args.func(args)
    except MinidockerError as e:
        if os.environ.get("MINIDOCKER_DEBUG"):
            raise
        print_error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `minidocker inspect x | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # a bug or an unexpected OS error: still one line, unless debugging
        if os.environ.get("MINIDOCKER_DEBUG"):
            raise
        print_error(f"{type(e).__name__}: {e} (set MINIDOCKER_DEBUG=1 for a traceback)")
        return EXIT_ENGINE


def each(refs: list[str], action, failure_code: int | None = None) -> int:
    """Docker's way with NAME...: act on each in turn, print what it did (the lines `action`
    returns, or the name itself), and report the ones that failed, one line each, at the end
    instead of stopping at the first. The exit code is the last failure's (or `failure_code`)."""
    failed = []
    for ref in refs:
        try:
            lines = action(ref)
        except MinidockerError as e:
            if os.environ.get("MINIDOCKER_DEBUG"):
                raise
            failed.append(e)
            continue
        for line in [ref] if lines is None else lines:
            print(line, flush=True)
    for e in failed:
        print_error(str(e))
    if not failed:
        return 0
    return failure_code if failure_code is not None else failed[-1].exit_code


def confirm(warning: str) -> bool:
    """The docker CLI's question before a prune. It asks on its input, a terminal or not, and
    only "y" (or "Y") goes on."""
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() == "y"


def print_error(message: str) -> None:
    """`minidocker: MESSAGE` on stderr, on one line whatever the user typed: a newline in a name
    must not start a second line."""
    print("minidocker:", message.replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)
