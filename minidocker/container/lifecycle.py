"""The engine's container commands: run, create, start, ps, logs, stop, kill, rm, exec, inspect.

Each command reads and writes the container's state on disk (records.py); the runtime (runtime.py)
makes processes and the supervisor (supervisor.py) looks after them. Before a command trusts a
container's state it checks that the supervisor is still alive (`refresh`): if it was killed,
the container is marked exited and its cgroup released, so nothing leaks.
"""

import argparse
import json
import os
import select
import signal
import sys
import time
from datetime import datetime, timezone

from minidocker import cgroups, runtime, store
from minidocker.container import records, spec as specs, supervisor
from minidocker.errors import MinidockerError


def refresh(c: records.Container) -> records.Container:
    """Recover from a supervisor that died (SIGKILL, OOM, a reboot): release what it held."""
    sup = c.state.get("SupervisorPid", 0)
    if sup and not records.alive(sup, c.state.get("SupervisorStart")):
        cgroup = cgroups.for_container(c.id)
        if cgroup.exists():
            cgroup.kill()  # the container died with it (PDEATHSIG), unless it raced; be sure
            cgroup.remove()
        was_running = c.state["Running"]
        c.save_state(Status="exited" if was_running else c.state["Status"], Running=False, Pid=0,
                     ExitCode=137 if was_running else c.state["ExitCode"], SupervisorPid=0,
                     Error="the supervisor was killed", FinishedAt=store.now())
        if c.record["HostConfig"]["AutoRemove"]:
            _remove(c)
            raise MinidockerError(f"No such container: {c.name}", "it was started with --rm")
    return c


def find(ref: str) -> records.Container:
    return refresh(records.find(ref))


def all_containers() -> list[records.Container]:
    alive = []
    for c in records.all_containers():
        try:
            alive.append(refresh(c))
        except MinidockerError:
            continue
    return alive


# ---------------------------------------------------------------------------------------------
# create, start, run


def _check_terminal(args) -> None:
    """-it copies our stdin to a pty: that needs a terminal to read from (Docker refuses too)."""
    if args.tty and args.interactive and not os.isatty(0):
        raise MinidockerError("the input device is not a TTY", "drop -t to pipe input into a container")


def _create(args) -> records.Container:
    store.require_root()
    _check_terminal(args)
    if not args.rootfs:
        raise MinidockerError("no --rootfs given", "images come in chapter 03: run --rootfs DIR -- CMD")
    rootfs, overlay = args.rootfs, False
    if rootfs.endswith(":O"):  # podman's syntax: DIR as the read-only lower layer of an overlay
        rootfs, overlay = rootfs[:-2], True
    rootfs = os.path.abspath(rootfs)
    if not os.path.isdir(rootfs):
        raise MinidockerError(f"rootfs {rootfs} is not a directory", "build one: minidocker rootfs DIR")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise MinidockerError("no command specified", "add one: minidocker run --rootfs DIR -- CMD")
    memory = specs.parse_memory(args.memory) if args.memory is not None else None
    cpus = specs.parse_cpus(args.cpus) if args.cpus is not None else None
    user = specs.parse_user(args.user) if args.user is not None else (0, None)
    env = specs.parse_env(args.env)
    name = specs.check_name(args.name) if args.name is not None else None
    if args.workdir is not None:
        specs.check_workdir(args.workdir)
    pids = args.pids_limit if args.pids_limit and args.pids_limit > 0 else None  # Docker: 0, -1 = unlimited
    record = {
        "Name": name,
        "Path": command[0], "Args": command[1:],
        "Config": {"Hostname": args.hostname or "", "Env": env, "Cmd": command,
                   "WorkingDir": args.workdir or "", "User": args.user or "",
                   "Tty": args.tty, "OpenStdin": args.interactive, "Image": args.rootfs},
        "HostConfig": {"AutoRemove": args.rm, "ReadonlyRootfs": args.read_only, "Init": args.init,
                       "Memory": memory or 0, "NanoCpus": int((cpus or 0) * 1e9),
                       "PidsLimit": pids},
    }

    def spec_for(container_dir: str, record: dict) -> dict:
        config = record["Config"]
        spec = specs.build(
            args=command, rootfs=rootfs, hostname=config["Hostname"], env=env,
            cwd=args.workdir or "/", user=user, tty=args.tty, readonly=args.read_only,
            memory=memory, pids=pids, cpus=cpus, init=args.init,
            cgroups_path=cgroups.for_container(os.path.basename(container_dir)).path)
        config["Env"] = spec["process"]["env"]  # inspect shows the whole environment, as Docker does
        if overlay:
            # --8<-- [start:writable-layer]
            # The container's own writable layer on top of the read-only rootfs. The supervisor
            # makes these directories; the runtime mounts the overlay on "merged".
            spec["root"]["path"] = os.path.join(container_dir, "merged")
            spec["minidocker"]["overlay"] = {"lowerdirs": [rootfs],
                                             "upperdir": os.path.join(container_dir, "upper"),
                                             "workdir": os.path.join(container_dir, "work")}
            # --8<-- [end:writable-layer]
        return spec

    return records.create(record, spec_for)


def cmd_create(args) -> int:
    print(_create(args).id)
    return 0


def cmd_run(args) -> int:
    c = _create(args)
    if args.detach:
        supervisor.start_detached(c)
        print(c.id)
        return 0
    try:
        return supervisor.run(c, attach=True, interactive=args.interactive)
    finally:
        if args.rm:
            _remove(c)


def cmd_start(args) -> int:
    for ref in args.containers:
        c = find(ref)
        if c.state["Running"]:
            print(ref)
            continue
        if args.attach:
            return supervisor.run(c, attach=True, interactive=args.interactive)
        supervisor.start_detached(c)
        print(ref)
    return 0


# ---------------------------------------------------------------------------------------------
# ps, logs, inspect


def human_duration(seconds: float) -> str:
    """A duration as Docker's `ps` words it: "Less than a second", "About a minute", "3 hours"."""
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return "1 second" if int(seconds) == 1 else f"{int(seconds)} seconds"
    if minutes < 2:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    if hours < 2:
        return "About an hour"
    if hours < 48:
        return f"{int(hours)} hours"
    if days < 14:
        return f"{int(days)} days"
    if days < 60:
        return f"{int(days / 7)} weeks"
    return f"{int(days / 30)} months" if days < 730 else f"{int(days / 365)} years"


def _ago(timestamp: str) -> str:
    then = datetime.strptime(timestamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return human_duration((datetime.now(timezone.utc) - then).total_seconds())


def status_line(c: records.Container) -> str:
    """Docker's STATUS column: "Up 5 seconds", "Exited (0) 3 seconds ago", "Created"."""
    s = c.state
    if s["Running"]:
        return f"Up {_ago(s['StartedAt'])}"
    if s["Status"] == "exited":
        return f"Exited ({s['ExitCode']}) {_ago(s['FinishedAt'])} ago"
    return "Created"


def cmd_ps(args) -> int:
    shown = [c for c in all_containers() if args.all or c.state["Running"]]
    shown.sort(key=lambda c: c.record["Created"], reverse=True)
    if args.quiet:
        for c in shown:
            print(c.short_id)
        return 0
    rows = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for c in shown:
        command = " ".join(c.record["Config"]["Cmd"])
        command = f'"{command[:17]}…"' if len(command) > 20 else f'"{command}"'
        rows.append((c.short_id, c.record["Config"]["Image"], command,
                     f"{_ago(c.record['Created'])} ago", status_line(c), c.name))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def _new_records(path: str, offset: int) -> tuple[list[dict], int]:
    """The complete json-file records after byte `offset`, and the offset after them."""
    records = []
    if os.path.exists(path):
        with open(path, "rb") as f:
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    break  # a record still being written: read it on the next round
                offset += len(line)
                records.append(json.loads(line))
    return records, offset


def cmd_logs(args) -> int:
    c = find(args.container)
    if args.tail != "all" and not args.tail.isdigit():
        raise MinidockerError(f"invalid value for --tail: {args.tail}", "a number of lines, or all")
    out = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    records, offset = _new_records(c.log_path, 0)
    if args.tail != "all":
        records = records[len(records) - int(args.tail):] if int(args.tail) else []
    while True:
        for record in records:
            stamp = f"{record['time']} " if args.timestamps else ""
            out[record["stream"]].write(stamp.encode() + record["log"].encode("utf-8", "surrogateescape"))
        for stream in out.values():
            stream.flush()
        if not args.follow or not c.state["Running"]:
            return 0
        time.sleep(0.1)
        c = find(c.id)
        records, offset = _new_records(c.log_path, offset)


def inspect_json(c: records.Container) -> dict:
    """Docker's shape for `docker inspect CONTAINER` (the fields that mean something here)."""
    shown_state = {k: v for k, v in c.state.items() if not k.startswith("Supervisor")}
    return {**c.record, "State": shown_state, "LogPath": c.log_path,
            "GraphDriver": {"Name": "overlay2" if c.upperdir else "none",
                            "Data": {"UpperDir": c.upperdir, "LowerDir": ":".join(c.lowerdirs)} if c.upperdir else None}}


def cmd_inspect(args) -> int:
    print(json.dumps([inspect_json(find(ref)) for ref in args.containers], indent=4))
    return 0


# ---------------------------------------------------------------------------------------------
# stop, kill, rm


def _wait_exit(c: records.Container, timeout: float) -> bool:
    """Wait until the container has exited and its supervisor recorded it. True if it did."""
    sup = c.state.get("SupervisorPid", 0)
    if not sup:
        return not c.state["Running"]
    try:
        # A pidfd becomes readable when its process exits: no polling loop, no pid-reuse race.
        pidfd = os.pidfd_open(sup)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def _signal(c: records.Container, sig: int) -> None:
    if not c.state["Running"]:
        raise MinidockerError(f"container {c.name} is not running", "start it first")
    supervisor.signal_quietly(c.state["Pid"], sig)


def stop(c: records.Container, timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds: a PID 1 without a SIGTERM handler ignores it."""
    if not c.state["Running"]:
        return
    _signal(c, signal.SIGTERM)
    if not _wait_exit(c, timeout):
        _signal(c, signal.SIGKILL)
        _wait_exit(c, 10)


def cmd_wait(args) -> int:
    """Block until each container stops, then print its exit code (`docker wait`)."""
    for ref in args.containers:
        c = find(ref)
        while c.state["Running"] and not _wait_exit(c, 3600):
            pass
        print(find(c.id).state["ExitCode"])
    return 0


def cmd_stop(args) -> int:
    for ref in args.containers:
        stop(find(ref), args.time)
        print(ref)
    return 0


def parse_signal(text: str) -> int:
    name = text.upper()
    if name.isdigit():
        return int(name)
    try:
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"].value
    except KeyError:
        raise MinidockerError(f"invalid signal: {text}", "use a name like TERM or a number like 15") from None


def cmd_kill(args) -> int:
    sig = parse_signal(args.signal)
    for ref in args.containers:
        _signal(find(ref), sig)
        print(ref)
    return 0


def _remove(c: records.Container) -> None:
    cgroup = cgroups.for_container(c.id)
    if cgroup.exists():
        cgroup.kill()
        cgroup.remove()
    records.remove_dir(c)


def cmd_rm(args) -> int:
    for ref in args.containers:
        c = find(ref)
        if c.state["Running"]:
            if not args.force:
                raise MinidockerError(f"cannot remove container {c.name}: container is running",
                                      "stop the container before removing or force remove with -f")
            _signal(c, signal.SIGKILL)
            _wait_exit(c, 10)
        _remove(c)
        print(ref)
    return 0


# ---------------------------------------------------------------------------------------------
# exec


def cmd_exec(args) -> int:
    _check_terminal(args)
    c = find(args.container)
    if not c.state["Running"]:
        raise MinidockerError(f"container {c.name} is not running", "start it first: minidocker start")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise MinidockerError("no command specified", "minidocker exec CONTAINER CMD...")
    base = c.spec["process"]
    uid, gid = specs.parse_user(args.user) if args.user else (base["user"]["uid"], base["user"]["gid"])
    process = {**base, "args": command, "terminal": args.tty,
               "cwd": specs.check_workdir(args.workdir) if args.workdir is not None else base["cwd"],
               "env": specs.merge_env(base["env"], specs.parse_env(args.env)),
               "user": {"uid": uid, "gid": uid if gid is None else gid}}
    # Unlike run's, exec's output is not logged: without -t the process writes to our stdout.
    io = supervisor.Plumbing(args.tty, args.interactive, capture=False)
    pid = io.started(runtime.join(c.state["Pid"], process, io.stdio, cgroups.for_container(c.id), io.console))
    if args.detach:
        return 0
    for sig in supervisor.PROXIED_SIGNALS:
        signal.signal(sig, lambda signum, _frame: supervisor.signal_quietly(pid, signum))
    if io.streams:
        supervisor.copy_output(io.streams, None, True, io.stdin_to_pty)
    _, status = os.waitpid(pid, 0)
    return runtime.exit_code(status)


# ---------------------------------------------------------------------------------------------
# The command line


def add_commands(sub) -> None:
    def container_parser(name, help):
        # add_help=False: Docker's -h means --hostname for run and create, not --help.
        p = sub.add_parser(name, help=help, add_help=False)
        p.add_argument("--help", action="help", help="show this help and exit")
        return p

    for name, func, help in (("run", cmd_run, "create and start a container"),
                             ("create", cmd_create, "create a container without starting it")):
        p = container_parser(name, help)
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
        p.add_argument("--pids-limit", type=int, help="the most processes the container may have")
        p.add_argument("--cpus", help="CPU time, in CPUs, e.g. 0.5")
        p.add_argument("--rm", action="store_true", help="remove the container when it exits")
        if name == "run":
            p.add_argument("-d", "--detach", action="store_true", help="run in the background, print the id")
        p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")
        p.set_defaults(func=func)

    p = container_parser("start", "start created or stopped containers")
    p.add_argument("-a", "--attach", action="store_true", help="attach to its output and wait for it")
    p.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_start)

    p = container_parser("ps", "list containers")
    p.add_argument("-a", "--all", action="store_true", help="show stopped containers too")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.set_defaults(func=cmd_ps)

    p = container_parser("logs", "show a container's output")
    p.add_argument("-f", "--follow", action="store_true", help="keep following until it exits")
    p.add_argument("-n", "--tail", default="all", help="only the last N lines (default all)")
    p.add_argument("-t", "--timestamps", action="store_true", help="show each line's time")
    p.add_argument("container")
    p.set_defaults(func=cmd_logs)

    p = container_parser("stop", "stop containers: SIGTERM, then SIGKILL after a timeout")
    p.add_argument("-t", "--time", type=float, default=10, help="seconds to wait before SIGKILL (default 10)")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_stop)

    p = container_parser("wait", "wait for containers to stop, then print their exit codes")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_wait)

    p = container_parser("kill", "send a signal to containers (default SIGKILL)")
    p.add_argument("-s", "--signal", default="KILL", help="signal name or number")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_kill)

    p = container_parser("rm", "remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = container_parser("exec", "run a command in a running container")
    p.add_argument("-d", "--detach", action="store_true", help="do not wait for the command")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-terminal")
    p.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_exec)

    p = container_parser("inspect", "show a container's configuration and state as JSON")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_inspect)
