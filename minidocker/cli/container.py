"""The container commands: run, create, start, ps, logs, stop, wait, kill, rm, exec, inspect.

Each command is a thin translation, as the docker CLI is: flags become the JSON body of an Engine
API request (create_flags.py), the engine function is called (minidocker/container/), and its
answer is printed the way docker prints it. Nothing below this module sees argparse.
"""

import argparse
import json
import os
import re
import sys
import time

from minidocker.cli.create_flags import create_body, parse_env
from minidocker.container import lifecycle
from minidocker.container.supervisor import Attach
from minidocker.errors import MinidockerError


def _check_terminal(args) -> None:
    """-it copies our stdin to a pty: that needs a terminal to read from (Docker refuses too)."""
    if args.tty and args.interactive and not os.isatty(0):
        raise MinidockerError("the input device is not a TTY", "drop -t to pipe input into a container")


def _our_stdio(interactive: bool) -> Attach:
    return Attach(sys.stdout.buffer, sys.stderr.buffer, 0 if interactive else None)


def cmd_create(args) -> int:
    _check_terminal(args)
    name, body = create_body(args)
    host_config = body.pop("HostConfig")
    print(lifecycle.create(body, host_config, name)["Id"])
    return 0


def cmd_run(args) -> int:
    """`docker run` is create, then start: attached (we supervise it here) or detached (-d)."""
    _check_terminal(args)
    name, body = create_body(args, detach=args.detach)
    host_config = body.pop("HostConfig")
    container_id = lifecycle.create(body, host_config, name)["Id"]
    if args.detach:
        lifecycle.start(container_id)
        print(container_id)
        return 0
    return lifecycle.start(container_id, _our_stdio(args.interactive))


def cmd_start(args) -> int:
    for ref in args.containers:
        if args.attach:
            code = lifecycle.start(ref, _our_stdio(args.interactive))
            return 0 if code is None else code
        lifecycle.start(ref)
        print(ref)
    return 0


def cmd_ps(args) -> int:
    from minidocker.container.inspect import human_duration, list_containers

    shown = list_containers(all=args.all)
    if args.quiet:
        for c in shown:
            print(c["Id"][:12])
        return 0
    rows = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for c in shown:
        command = c["Command"]
        command = f'"{command[:17]}…"' if len(command) > 20 else f'"{command}"'
        rows.append((c["Id"][:12], c["Image"], command, f"{human_duration(time.time() - c['Created'])} ago",
                     c["Status"], c["Names"][0].lstrip("/")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def cmd_logs(args) -> int:
    from minidocker.container.logs import logs

    logs(args.container, sys.stdout.buffer, sys.stderr.buffer, args.follow, args.tail, args.timestamps)
    return 0


def cmd_inspect(args) -> int:
    from minidocker.container.inspect import inspect

    print(json.dumps([inspect(ref) for ref in args.containers], indent=4))
    return 0


def cmd_stop(args) -> int:
    for ref in args.containers:
        lifecycle.stop(ref, args.time)
        print(ref)
    return 0


def cmd_wait(args) -> int:
    """Block until each container stops, then print its exit code (`docker wait`)."""
    for ref in args.containers:
        print(lifecycle.wait(ref)["StatusCode"])
    return 0


def cmd_kill(args) -> int:
    lifecycle.parse_signal(args.signal)  # a bad signal is refused before any container is touched
    for ref in args.containers:
        lifecycle.kill(ref, args.signal)
        print(ref)
    return 0


def cmd_rm(args) -> int:
    for ref in args.containers:
        lifecycle.remove(ref, force=args.force)
        print(ref)
    return 0


def cmd_exec(args) -> int:
    from minidocker.container.exec import exec_create, exec_start

    _check_terminal(args)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    body = {"AttachStdin": args.interactive and not args.detach, "AttachStdout": not args.detach,
            "AttachStderr": not args.detach, "Tty": args.tty, "Env": parse_env(args.env), "Cmd": command or None,
            "WorkingDir": args.workdir or "", "User": args.user or "", "Detach": args.detach}
    exec_id = exec_create(args.container, body)["Id"]
    code = exec_start(exec_id, None if args.detach else _our_stdio(args.interactive))
    return 0 if code is None else code


def cmd_diff(args) -> int:
    from minidocker.container.inspect import changes

    for change in changes(args.container):
        print("CAD"[change["Kind"]], change["Path"])  # Docker's kinds: 0 changed, 1 added, 2 deleted
    return 0


# ---------------------------------------------------------------------------------------------
# The command line

def _create_flags(p) -> None:
    p.add_argument("--rootfs", metavar="DIR", help="the root filesystem (DIR:O for an overlay on top of it)")
    p.add_argument("--name", help="a name for the container")
    p.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE", help="set an environment variable")
    p.add_argument("-w", "--workdir", help="the working directory inside the container")
    p.add_argument("-u", "--user", help="UID[:GID] to run as")
    p.add_argument("-h", "--hostname", help="the container's hostname (default: its short id)")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    p.add_argument("--init", action="store_true", help="run an init as PID 1 that reaps zombies and forwards signals")
    p.add_argument("-m", "--memory", help="memory limit, e.g. 64m")
    p.add_argument("--pids-limit", help="the most processes the container may have (-1: no limit)")
    p.add_argument("--cpus", help="CPU time, in CPUs, e.g. 0.5")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")


def _run_flags(p) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="run in the background, print the id")
    _create_flags(p)


def _start_flags(p) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="attach to its output and wait for it")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    p.add_argument("containers", nargs="+")


def _ps_flags(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show stopped containers too")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")


def _logs_flags(p) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="keep following until it exits")
    p.add_argument("-n", "--tail", default="all", help="only the last N lines (default all)")
    p.add_argument("-t", "--timestamps", action="store_true", help="show each line's time")
    p.add_argument("container")


def _stop_flags(p) -> None:
    p.add_argument("-t", "--time", type=float, default=10, help="seconds to wait before SIGKILL (default 10)")
    p.add_argument("containers", nargs="+")


def _kill_flags(p) -> None:
    p.add_argument("-s", "--signal", default="KILL", help="signal name or number")
    p.add_argument("containers", nargs="+")


def _rm_flags(p) -> None:
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.add_argument("containers", nargs="+")


def _exec_flags(p) -> None:
    p.add_argument("-d", "--detach", action="store_true", help="do not wait for the command")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)


def _one_container(p) -> None:
    p.add_argument("container", metavar="CONTAINER")


def _containers(p) -> None:
    p.add_argument("containers", nargs="+")


# Docker's container commands: name -> (help, its flags, what runs it).
COMMANDS = {
    "run": ("create and start a container", _run_flags, cmd_run),
    "create": ("create a container without starting it", _create_flags, cmd_create),
    "start": ("start created or stopped containers", _start_flags, cmd_start),
    "ps": ("list containers", _ps_flags, cmd_ps),
    "logs": ("show a container's output", _logs_flags, cmd_logs),
    "stop": ("stop containers: SIGTERM, then SIGKILL after a timeout", _stop_flags, cmd_stop),
    "wait": ("wait for containers to stop, then print their exit codes", _containers, cmd_wait),
    "kill": ("send a signal to containers (default SIGKILL)", _kill_flags, cmd_kill),
    "rm": ("remove containers", _rm_flags, cmd_rm),
    "exec": ("run a command in a running container", _exec_flags, cmd_exec),
    "diff": ("inspect changes to files or directories on a container's filesystem", _one_container, cmd_diff),
    "inspect": ("show a container's configuration and state as JSON", _containers, cmd_inspect),
}


def add_commands(sub, words=()) -> None:
    # Only the command asked for, when the words name one (see cli/__init__.py); else all of them.
    asked = words[0] if words and words[0] in COMMANDS else None
    for name, (help, add_flags, func) in COMMANDS.items():
        if asked in (None, name):
            # add_help=False: Docker's -h means --hostname for run and create, not --help.
            p = sub.add_parser(name, help=help, add_help=False)
            # The docker CLI's flag parser gives a flag its next word, whatever it is: `-m -5m` is
            # -m with the value "-5m" (then refused as a size). argparse takes a word that starts
            # with "-" for a flag unless it looks like a negative number ("-5", "-.5"); we widen
            # that (argparse's own, undocumented matcher) to any dash and digit: no flag of ours
            # starts so. tests/test_cli.py holds argparse to it.
            p._negative_number_matcher = re.compile(r"-\.?\d")
            p.add_argument("--help", action="help", help="show this help and exit")
            add_flags(p)
            p.set_defaults(func=func)
