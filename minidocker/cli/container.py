"""The container commands: run, create, start, ps, logs, stop, wait, kill, rm, exec, inspect, diff,
pause, unpause, stats, top.

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

from minidocker.cli import each
from minidocker.cli.create_flags import create_body, parse_env
from minidocker.container import lifecycle
from minidocker.container.supervisor import Attach
from minidocker.errors import EXIT_ENGINE, MinidockerError


def _check_terminal(args) -> None:
    """-it copies our stdin to a pty: that needs a terminal to read from (Docker refuses too)."""
    if args.tty and args.interactive and not os.isatty(0):
        raise MinidockerError("the input device is not a TTY", "drop -t to pipe input into a container")


def _our_stdio(interactive: bool) -> Attach:
    return Attach(sys.stdout.buffer, sys.stderr.buffer, 0 if interactive else None)


def cmd_create(args) -> int:
    _check_terminal(args)
    print(_create(args, "create"))
    return 0


def cmd_run(args) -> int:
    """`docker run` is create, then start: attached (we supervise it here) or detached (-d)."""
    _check_terminal(args)
    container_id = _create(args, "run", detach=args.detach)
    if args.detach:
        lifecycle.start(container_id)
        print(container_id)
        return 0
    return lifecycle.start(container_id, _our_stdio(args.interactive))


# --8<-- [start:pull-missing]
def _create(args, verb: str, detach: bool = False) -> str:
    """The docker CLI's way to create: ask the engine, and when it has no such image, pull it and
    ask again (--pull missing, the default); --pull always pulls first, --pull never does not."""
    name, body = create_body(args, detach, verb)
    host_config = body.pop("HostConfig")
    if args.rootfs:
        return lifecycle.create(body, host_config, name)["Id"]
    ref = _pullable(body["Image"])  # an invalid reference: one line, before anything is done
    if args.pull == "always" and ref:
        _pull(ref)
    try:
        return lifecycle.create(body, host_config, name)["Id"]
    except MinidockerError as e:
        if not (e.what.startswith("No such image") and args.pull == "missing" and ref):
            raise
    print(f"Unable to find image '{ref.familiar()}' locally", file=sys.stderr, flush=True)
    _pull(ref)
    return lifecycle.create(body, host_config, name)["Id"]
# --8<-- [end:pull-missing]


def _pullable(image: str):
    """The full reference to pull when `image` is missing; None for an image ID, which no
    registry can be asked for (as the docker CLI's ParseAnyReference tells them apart)."""
    from minidocker.image import reference

    if re.fullmatch(r"(sha256:)?[0-9a-f]{64}", image) or image.startswith("sha256:"):
        return None
    return reference.normalize(image)


def _pull(ref) -> None:
    """Pull `ref` to the store, the progress on stderr (stdout is the container's). busybox:latest
    is the one image a fresh, offline machine has: it is built from the host's busybox instead."""
    from minidocker.image import layout

    store = layout.Layout()
    if str(ref) == "docker.io/library/busybox:latest":
        from minidocker.image import builtin

        builtin.busybox(store)
        return
    try:
        from minidocker.image.pull import pull
    except ModuleNotFoundError as e:
        if e.name != "minidocker.image.pull":
            raise
        raise MinidockerError(f"cannot pull {ref.familiar()}: this minidocker has no `pull` yet",
                              "load it (minidocker load -i FILE), or run busybox, which is built here") from None
    try:
        pull(str(ref), out=sys.stderr)
    except MinidockerError as e:
        e.exit_code = EXIT_ENGINE  # `docker run` fails with 125 whatever stopped its pull
        raise


def cmd_start(args) -> int:
    for ref in args.containers:
        if args.attach:
            code = lifecycle.start(ref, _our_stdio(args.interactive))
            return 0 if code is None else code
        lifecycle.start(ref)
        print(ref)
    return 0


# The fields `ps --format` offers, under the names of the docker CLI's container context.
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS"}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def cmd_ps(args) -> int:
    from minidocker.container import formatting
    from minidocker.container.inspect import list_containers

    format = "{{.ID}}" if args.quiet else args.format or PS_TABLE
    rows = [_ps_row(c, trunc=not args.no_trunc) for c in list_containers(all=args.all)]
    sys.stdout.write(formatting.write(format, rows, PS_HEADERS))
    return 0


def _ps_row(c: dict, trunc: bool) -> dict[str, str]:
    """One container of GET /containers/json, as the docker CLI words it for `ps`."""
    from minidocker.container.formatting import ellipsis, go_quote
    from minidocker.container.inspect import human_duration
    from minidocker.network import ports

    return {"ID": c["Id"][:12] if trunc else c["Id"], "Image": c["Image"] or "<no image>",
            # The command is cut to 20 columns unless --no-trunc, then quoted as Go quotes it.
            "Command": go_quote(ellipsis(c["Command"], 20) if trunc else c["Command"]),
            "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(c["Created"])),
            "RunningFor": f"{human_duration(time.time() - c['Created'])} ago",
            "Ports": ports.ps_column(c["Ports"]),  # "0.0.0.0:8080->80/tcp, 443/tcp"
            "State": c["State"], "Status": c["Status"],
            "Names": ",".join(n.lstrip("/") for n in c["Names"][:1 if trunc else None]),
            "Labels": ",".join(f"{k}={v}" for k, v in c["Labels"].items()),
            "Mounts": ",".join(m.get("Name", "") for m in c["Mounts"]),
            "Networks": ",".join(sorted(c["NetworkSettings"]["Networks"]))}


def cmd_logs(args) -> int:
    from minidocker.container.logs import logs

    logs(args.container, sys.stdout.buffer, sys.stderr.buffer, args.follow, args.tail, args.timestamps)
    return 0


def cmd_inspect(args) -> int:
    if args.format is None:
        print(json.dumps([_inspect(ref, args.type) for ref in args.containers], indent=4))
        return 0
    from minidocker.container import gotemplate

    gotemplate.parse(args.format)  # a template that does not parse is refused before any lookup
    for ref in args.containers:
        print(gotemplate.render(args.format, _inspect(ref, args.type)))
    return 0


def _inspect(ref: str, kind: str | None) -> dict:
    """Docker's `inspect NAME`: a container of that name first, then an image (--type picks one)."""
    from minidocker.container.inspect import inspect
    from minidocker.image import inspect as images

    if kind == "image":
        return images.inspect(ref)
    try:
        return inspect(ref)
    except MinidockerError:
        if kind == "container":
            raise
    found = images.inspect_image_or_none(ref)
    if found is None:
        # The docker CLI's own error, with its exit code: 1, not the engine's 125.
        raise MinidockerError(f"No such object: {ref}", "see `minidocker ps -a` and `minidocker images`", exit_code=1)
    return found


def cmd_stop(args) -> int:
    return each(args.containers, lambda ref: lifecycle.stop(ref, args.time))


def cmd_wait(args) -> int:
    """Block until each container stops, then print its exit code (`docker wait`)."""
    for ref in args.containers:
        print(lifecycle.wait(ref)["StatusCode"])
    return 0


def cmd_kill(args) -> int:
    lifecycle.parse_signal(args.signal)  # a bad signal is refused before any container is touched
    return each(args.containers, lambda ref: lifecycle.kill(ref, args.signal))


def cmd_rm(args) -> int:
    return each(args.containers, lambda ref: lifecycle.remove(ref, force=args.force, volumes=args.volumes))


def cmd_pause(args) -> int:
    return each(args.containers, lifecycle.pause)


def cmd_unpause(args) -> int:
    return each(args.containers, lifecycle.unpause)


def cmd_stats(args) -> int:
    """`docker stats`: one table (--no-stream), or a table redrawn every second until ^C."""
    from minidocker.container import formatting, stats

    trunc, format = not args.no_trunc, args.format or stats.TABLE
    formatting.write(format, [], stats.HEADERS)  # a bad --format is refused before any sampling
    if args.containers:
        chosen = [(lifecycle.find(ref), ref) for ref in args.containers]  # an unknown one: refused now
    while True:
        if not args.containers:  # the running containers (-a: all), newest first, for each table
            everyone = sorted(lifecycle.all_containers(), key=lambda c: c.record["Created"], reverse=True)
            chosen = [(c, c.id) for c in everyone if args.all or c.state["Running"]]
        answers = stats.stats([c for c, _ in chosen])  # waits a second between samples if any runs
        rows = [stats.row(answer, asked, trunc) for answer, (_, asked) in zip(answers, chosen)]
        if args.no_stream:
            if rows:  # nothing at all, not even the header, when no container runs
                sys.stdout.write(formatting.write(format, rows, stats.HEADERS))
            return 0
        # Redraw in place, as the docker CLI does: cursor home, each line then "erase to the end
        # of the line", and "erase below" for what a longer previous table left.
        table = formatting.write(format, rows, stats.HEADERS) if rows else ""
        sys.stdout.write("\033[H" + "".join(line + "\033[K\n" for line in table.split("\n")) + "\033[J")
        sys.stdout.flush()
        if not any(c.state["Running"] for c, _ in chosen):
            time.sleep(stats.SAMPLE_INTERVAL)  # nothing was sampled, so nothing paced this table
        if args.containers:
            chosen = [(lifecycle.find(c.id), asked) for c, asked in chosen]  # their state now


def cmd_top(args) -> int:
    """`docker top CONTAINER [ps OPTIONS]`: the host's ps, narrowed to the container's cgroup."""
    from minidocker.container import formatting
    from minidocker.container.top import top

    processes = top(args.container, " ".join(args.ps_options))
    lines = ["\t".join(processes["Titles"])] + ["\t".join(p) for p in processes["Processes"]]
    sys.stdout.write(formatting.tabwriter(lines, minwidth=20))  # the docker CLI's top: 20 columns
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


def cmd_port(args) -> int:
    """`docker port CONTAINER [PRIVATE_PORT[/PROTO]]`: where the container's ports are published."""
    from minidocker.network import ports

    for line in ports.port_lines(args.container, ports.settings(lifecycle.find(args.container)), args.private_port):
        print(line)
    return 0


def cmd_diff(args) -> int:
    from minidocker.container.inspect import changes

    for change in changes(args.container):
        print("CAD"[change["Kind"]], change["Path"])  # Docker's kinds: 0 changed, 1 added, 2 deleted
    return 0


# ---------------------------------------------------------------------------------------------
# The command line

def _create_flags(p) -> None:
    p.add_argument("--rootfs", metavar="DIR", help="run from a directory instead of an image (DIR:O: an overlay "
                                                    "on top of it); the words after -- are the command")
    p.add_argument("--entrypoint", metavar="PROG", help="override the image's ENTRYPOINT (\"\" resets it)")
    p.add_argument("--pull", choices=("missing", "always", "never"), default="missing",
                   help="pull the image before creating: missing (default), always or never")
    p.add_argument("--name", help="a name for the container")
    p.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE", help="set an environment variable")
    p.add_argument("-w", "--workdir", help="the working directory inside the container")
    p.add_argument("-u", "--user", help="USER[:GROUP] to run as: names or numbers (the image's /etc/passwd)")
    p.add_argument("-h", "--hostname", help="the container's hostname (default: its short id)")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("--read-only", action="store_true", help="mount the root filesystem read-only")
    p.add_argument("--init", action="store_true", help="run an init as PID 1 that reaps zombies and forwards signals")
    p.add_argument("-m", "--memory", help="memory limit, e.g. 64m")
    p.add_argument("--pids-limit", help="the most processes the container may have (-1: no limit)")
    p.add_argument("--cpus", help="CPU time, in CPUs, e.g. 0.5")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--restart", default="no", metavar="POLICY",
                   help="no, on-failure[:N], always or unless-stopped: what a daemon does when it exits")
    # Chapter 08's locks (minidocker/security/ reads them from HostConfig).
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP", help="give a capability back (ALL: every one)")
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP", help="take a capability away (ALL: every one)")
    p.add_argument("--privileged", action="store_true",
                   help="no locks: every capability and device, no seccomp filter, no masked paths")
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="seccomp=PROFILE.json|unconfined, no-new-privileges[=true|false]")
    p.add_argument("--device", action="append", default=[], metavar="HOST[:CONTAINER][:rwm]",
                   help="give the container a host device")
    p.add_argument("--userns", default="", metavar="MODE", help="host: no user namespace, when the engine remaps")
    # Chapter 04's ports.
    p.add_argument("-p", "--publish", action="append", default=[], metavar="[IP:][HOSTPORT:]CONTAINERPORT[/PROTO]",
                   help="publish a container's port on the host (no HOSTPORT, or 0: any free one)")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port on a free host port")
    p.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]",
                   help="expose a port or a range (published only by -P)")
    # Chapter 04's network flags (network/sandbox.py reads them).
    p.add_argument("--network", "--net", default="default", metavar="NETWORK",
                   help="bridge (the default), none, host, container:NAME|ID, or a user network's name")
    p.add_argument("--ip", help="the container's IPv4 address on a user network")
    p.add_argument("--network-alias", action="append", default=[], metavar="ALIAS", help="another name on the network")
    p.add_argument("--add-host", action="append", default=[], metavar="HOST:IP", help="a line for /etc/hosts")
    p.add_argument("--dns", action="append", default=[], metavar="IP", help="a nameserver for /etc/resolv.conf")
    p.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN", help="a search domain for /etc/resolv.conf")
    # Chapter 05's mounts (volume/flags.py turns them into the request, volume/mounts.py checks them).
    p.add_argument("-v", "--volume", action="append", default=[], metavar="[SRC:]DST[:MODE]",
                   help="bind a host path (/src:/dst), a named volume (name:/dst) or a new anonymous one (/dst); MODE ro")
    p.add_argument("--mount", action="append", default=[], metavar="type=bind|volume|tmpfs,source=…,target=…",
                   help="a mount, spelled out: readonly, volume-nocopy, tmpfs-size, tmpfs-mode, bind-propagation")
    p.add_argument("--tmpfs", action="append", default=[], metavar="/PATH[:OPTIONS]", help="mount a tmpfs there")
    p.add_argument("--volumes-from", action="append", default=[], metavar="CONTAINER[:ro|rw]",
                   help="mount every volume and bind of that container, at the same places")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="IMAGE [COMMAND] [ARG...]",
                   help="the image and the command to run in it (the image's CMD if none)")


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
    p.add_argument("--no-trunc", action="store_true", help="do not truncate ids and commands")
    p.add_argument("--format", help="a Go template per container, 'table TEMPLATE' or 'json'")


def _inspect_flags(p) -> None:
    p.add_argument("-f", "--format", help="a Go template, e.g. '{{.State.Pid}}' or '{{json .Config}}'")
    p.add_argument("--type", choices=("container", "image"), help="look only for this kind of object")
    p.add_argument("containers", nargs="+")


def _stats_flags(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="all containers (default: the running ones)")
    p.add_argument("--no-stream", action="store_true", help="print one table and exit")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate ids")
    p.add_argument("--format", help="a Go template per container, 'table TEMPLATE' or 'json'")
    p.add_argument("containers", nargs="*")


def _top_flags(p) -> None:
    p.add_argument("container", metavar="CONTAINER")
    # Everything after the container is for ps, flags included, as the docker CLI takes it.
    p.add_argument("ps_options", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]")


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
    p.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too (never named ones)")
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


def _port_flags(p) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("private_port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


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
    "inspect": ("show a container's configuration and state as JSON", _inspect_flags, cmd_inspect),
    "pause": ("pause all processes within containers (the cgroup freezer)", _containers, cmd_pause),
    "unpause": ("unpause all processes within containers", _containers, cmd_unpause),
    "stats": ("show containers' CPU, memory and process counts", _stats_flags, cmd_stats),
    "top": ("show a container's processes", _top_flags, cmd_top),
    "port": ("list a container's published ports, or where one port is published", _port_flags, cmd_port),
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
