"""`minidocker runtime`: the OCI runtime on its own, with runc's command line.

Docker never runs a container itself. dockerd asks containerd, containerd starts a shim, and the
shim runs `runc create` and `runc start` on a *bundle*: a directory with a config.json (the OCI
runtime spec) and a root filesystem. This module is that command line for minidocker's runtime
(minidocker/runtime/), following the OCI runtime command-line interface as runc spells it:

    minidocker runtime [--root DIR] create [--bundle DIR] [--pid-file F] [--console-socket S] ID
    minidocker runtime [--root DIR] start|state|delete [--force] ID
    minidocker runtime [--root DIR] kill [--all] ID [SIGNAL]
    minidocker runtime [--root DIR] run [--bundle DIR] [--detach] ID
    minidocker runtime [--root DIR] exec [--process FILE | ... ID -- CMD ARG...]
    minidocker runtime [--root DIR] list [--format table|json]

Each command is thin: parse the flags, call one function of minidocker.runtime, print what it
returns the way runc prints it. The engine (`minidocker run`) calls the same functions in-process.

Who reaps a created container? `create` returns while the container's first process waits (for
`start`) and then lives on without us: when the CLI exits, the kernel re-parents it to the
nearest "child subreaper" (prctl PR_SET_CHILD_SUBREAPER) above us, or else to the host's PID 1.
runc works the same way: containerd-shim is a subreaper so that it can wait() for the
container's exit status after `runc create` has gone. Without one, PID 1 reaps it and the exit
code is lost (the OCI state has no exit code: it says only "stopped"). `run` in the foreground
needs none: it is the container's parent, waits for it itself and returns its exit code.
See docs/01-isolation.md#the-runtime-on-its-own.
"""

import argparse
import json
import os
import pwd
import signal
import sys

from minidocker import runtime, store
from minidocker.errors import MinidockerError

# The signals a foreground `run`/`exec` passes on to the container, as runc does: all it can
# catch, but SIGCHLD (it tells *us* that a child ended), SIGWINCH (the terminal's size: ours to
# copy to the pty), SIGURG (Go's runtime uses it; nothing to forward) and the fault signals the
# CPU raises for a bug of our own (SIGSEGV...): those are not messages from anyone.
FORWARDED = set(signal.valid_signals()) - {
    signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG,
    signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS}


def _root(args) -> str:
    return os.path.abspath(args.root or runtime.default_root())


def _bundle(args) -> str:
    # runc's default bundle is the current directory; the state records it as an absolute path.
    return os.path.abspath(args.bundle or os.getcwd())


def _console(args, terminal: bool, detach: bool):
    """--console-socket PATH: a connected unix socket. The container makes its pty and sends
    the master side over it (SCM_RIGHTS): whoever listens there (containerd-shim, a test) then
    owns the terminal. runc does the same; see runc's docs/terminals.md."""
    if not args.console_socket:
        if terminal and detach:
            # runc refuses too: once we are gone, nobody would hold the pty's master side.
            raise MinidockerError("cannot allocate a tty when detached without --console-socket",
                                  "pass --console-socket, or set process.terminal to false")
        return None
    if not terminal:
        raise MinidockerError("--console-socket given, but process.terminal is false", "drop one of them")
    import socket  # here, not at the top: only a console needs it, and every import slows a start

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(args.console_socket)
    except OSError as e:
        sock.close()
        raise MinidockerError(f"--console-socket {args.console_socket}: {e.strerror}",
                              "it must be a listening unix socket") from None
    return sock


def _pid_file(args) -> str | None:
    """runc's --pid-file, absolute: the runtime writes the pid there alone, no newline, and
    atomically, so that a reader (containerd, systemd's PIDFile=) never sees half a number."""
    return os.path.abspath(args.pid_file) if args.pid_file else None


def parse_signal(text: str) -> int:
    """A signal as runc reads one: a number (`9`), or a name with or without SIG (`KILL`, `SIGKILL`)."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return signal.Signals[name]
    except KeyError:
        raise MinidockerError(f"unknown signal {text!r}", "a name like TERM or KILL, or a number") from None


# ---------------------------------------------------------------------------------------------
# create, start, run: the two halves, and both at once


# --8<-- [start:runtime-create-start]
def cmd_create(args) -> int:
    # The container's process inherits our stdin, stdout and stderr (or, with process.terminal,
    # makes a pty and sends its master side to --console-socket), sets itself up (namespaces,
    # cgroup, mounts, pivot_root) and then waits, before exec, for `start`.
    bundle = _bundle(args)
    console = _console(args, _terminal(bundle), detach=True)
    runtime.create(args.id, bundle, stdio=(0, 1, 2), console=console, root=_root(args), pid_file=_pid_file(args))
    return 0  # the process waits, and outlives us: who reaps it? see this module's docstring


def cmd_start(args) -> int:
    # Only now does the waiting process exec the bundle's process.args. An exec that fails
    # (no such file: 127, not executable: 126) is reported here, as runc's start reports it.
    runtime.start(args.id, root=_root(args))
    return 0
# --8<-- [end:runtime-create-start]


def cmd_run(args) -> int:
    """create + start; in the foreground, wait for the container and return its exit code."""
    root, terminal = _root(args), _terminal(_bundle(args))
    if args.detach:
        runtime.run(args.id, _bundle(args), stdio=(0, 1, 2), console=_console(args, terminal, detach=True),
                    root=root, pid_file=_pid_file(args))
        return 0
    relay = Relay(_console(args, terminal, detach=False), terminal)
    forward = _forwarder()
    # If it fails, the runtime has already undone what it made (and an id that was taken is
    # someone else's container: not ours to delete).
    pid = runtime.run(args.id, _bundle(args), stdio=(0, 1, 2), console=relay.console, root=root,
                      pid_file=_pid_file(args))
    try:
        forward(pid)
        relay.copy(pid)
        return _wait(pid)
    finally:
        # runc run (without --keep) deletes the container once it has exited: state dir, cgroup.
        runtime.delete(args.id, force=True, root=root)


class Relay:
    """A foreground process with a terminal and no --console-socket: as runc does, we hold the
    pty's master side ourselves and copy between it and our own stdio (the engine's code for
    `docker run -it`). Otherwise there is nothing to relay: the process has our stdio, or the
    console socket's listener owns its pty."""

    def __init__(self, console, terminal: bool):
        self.plumbing = None
        if terminal and console is None:
            from minidocker.container import supervisor

            # Our input goes to the pty only from a terminal (a file or /dev/null cannot be polled).
            self.plumbing = supervisor.Plumbing(terminal=True, stdin=0 if os.isatty(0) else None, capture=False)
            console = self.plumbing.console
        self.console = console

    def copy(self, pid: int) -> None:
        """Until the process's side of the pty closes (it has exited)."""
        if self.plumbing:
            from minidocker.container import supervisor

            io = self.plumbing
            io.started(pid)
            supervisor.copy_output(io.streams, None, supervisor.Attach(sys.stdout.buffer, sys.stderr.buffer, io.stdin),
                                   stdin_to_pty=io.stdin_to_pty)


def _terminal(bundle: str) -> bool:
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            return bool(json.load(f).get("process", {}).get("terminal"))
    except (OSError, ValueError):
        return False  # the runtime reports a missing or broken config.json in its own words


# --8<-- [start:runtime-forward]
def _forwarder():
    """Catch the signals now, before the process exists, and pass them on once it does.

    A `kill -TERM` aimed at us (by a user, systemd, a test) means "stop the container": runc
    forwards it to the container's init. A signal that comes while the container is still being
    made is kept and sent as soon as its pid is known, not lost. (The container's process
    inherits these handlers with the fork; its exec resets every caught signal to the default,
    so the command starts clean.)
    """
    target, pending = [], []

    def handler(signum, _frame):
        if target:
            try:
                os.kill(target[0], signum)
            except ProcessLookupError:
                pass  # it exited a moment ago; _wait() is about to see it
        else:
            pending.append(signum)

    for sig in FORWARDED:
        signal.signal(sig, handler)

    def forward(pid: int) -> None:
        target.append(pid)
        for signum in pending:
            handler(signum, None)

    return forward


def _wait(pid: int) -> int:
    """The exit code as a shell (and runc) reports it: the code, or 128+N after signal N."""
    _, status = os.waitpid(pid, 0)  # a handler that ran meanwhile does not break the wait (PEP 475)
    return runtime.exit_code(status)
# --8<-- [end:runtime-forward]


# ---------------------------------------------------------------------------------------------
# state, kill, delete, list


def cmd_state(args) -> int:
    print(json.dumps(_runc_state(runtime.state(args.id, root=_root(args))), indent=2))
    return 0


def _runc_state(state: dict) -> dict:
    """runc's `state` prints the OCI state (ociVersion, id, pid, status, bundle) plus three
    fields of its own: rootfs, created (RFC 3339, UTC) and owner (empty for `state`, filled
    in by `list`). Ours prints them in runc's order, from what the runtime knows."""
    order = ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner")
    shown = {key: state[key] for key in order if key in state}
    shown.setdefault("owner", "")
    shown.update((k, v) for k, v in state.items() if k not in shown)  # annotations, if any
    return shown


def cmd_kill(args) -> int:
    # runc's default is SIGTERM (a polite request); Docker's `kill` defaults to SIGKILL.
    runtime.kill(args.id, parse_signal(args.signal), all=args.all, root=_root(args))
    return 0


def cmd_delete(args) -> int:
    # Without --force only a created or stopped container goes; a running one must be killed
    # first ("cannot delete container ID that is not stopped"), as with runc.
    runtime.delete(args.id, force=args.force, root=_root(args))
    return 0


def cmd_list(args) -> int:
    containers = [_runc_state(c) for c in runtime.list_containers(root=_root(args))]
    for c in containers:
        c["owner"] = c.get("owner") or _owner(_root(args), c["id"])
    if args.quiet:
        for c in containers:
            print(c["id"])
    elif args.format == "json":
        print(json.dumps(containers, separators=(",", ":")))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(c["id"], str(c["pid"]), c["status"], c["bundle"], c.get("created", ""), c["owner"])
                 for c in containers]
        # Go's tabwriter as runc sets it up: each column as wide as its widest cell plus 3
        # spaces, and at least 12; the last column is not padded.
        widths = [max(12, max(len(row[i]) for row in rows) + 3) for i in range(5)]
        for row in rows:
            print("".join(cell.ljust(w) for cell, w in zip(row, widths)) + row[5])
    return 0


def _owner(root: str, container_id: str) -> str:
    """runc's OWNER: the user who owns the container's state directory."""
    try:
        return pwd.getpwuid(os.stat(os.path.join(root, container_id)).st_uid).pw_name
    except (OSError, KeyError):
        return ""


# ---------------------------------------------------------------------------------------------
# exec


def cmd_exec(args) -> int:
    process = _exec_process(args)
    terminal = bool(process.get("terminal"))
    relay = Relay(_console(args, terminal, detach=args.detach), terminal and not args.detach)
    forward = None if args.detach else _forwarder()
    # Detached, the process must outlive us (the shim, a subreaper, reaps it): no death signal.
    pid = runtime.exec_process(args.id, process, stdio=(0, 1, 2), console=relay.console, root=_root(args),
                               parent_death_signal=0 if args.detach else signal.SIGKILL)
    if args.pid_file:
        store.write_text(_pid_file(args), str(pid))
    if args.detach:
        return 0
    forward(pid)
    relay.copy(pid)
    return _wait(pid)


def _exec_process(args) -> dict:
    """The OCI `process` to run: from --process FILE, or the container's own process (its env,
    user, cwd, rlimits...) with the command line's args and overrides, as runc builds it."""
    if args.process:
        try:
            with open(args.process) as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            raise MinidockerError(f"--process {args.process}: {e}", "a JSON file with an OCI `process`") from None
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise MinidockerError("exec needs a command or --process FILE",
                              "minidocker runtime exec ID -- CMD [ARG...]")
    bundle = runtime.state(args.id, root=_root(args))["bundle"]
    with open(os.path.join(bundle, "config.json")) as f:
        process = json.load(f)["process"]
    process.update(args=command, terminal=args.tty)
    process["env"] = process.get("env", []) + args.env
    if args.cwd:
        process["cwd"] = args.cwd
    if args.user:
        uid, _, gid = args.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise MinidockerError(f"--user {args.user}: not UID[:GID]", "runc takes numbers only, e.g. 1000:1000")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if args.additional_gids:
        process.setdefault("user", {})["additionalGids"] = args.additional_gids
    return process


# ---------------------------------------------------------------------------------------------
# The command line


def _process_flags(p) -> None:
    """What create, run and exec share: where the pid goes, where the pty goes."""
    p.add_argument("--pid-file", metavar="FILE", help="write the container process's pid to FILE")
    p.add_argument("--console-socket", metavar="SOCK", help="send the pty's master side over this unix socket")


def _create_flags(p) -> None:
    p.add_argument("-b", "--bundle", metavar="DIR",
                   help="the bundle: config.json and the rootfs (default: the current directory)")
    _process_flags(p)
    p.add_argument("id")


def _run_flags(p) -> None:
    _create_flags(p)
    p.add_argument("-d", "--detach", action="store_true", help="do not wait for the container")


def _id_flag(p) -> None:
    p.add_argument("id")


def _kill_flags(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help="send it to every process in the container")
    p.add_argument("id")
    p.add_argument("signal", nargs="?", default="TERM", help="a name (TERM, SIGKILL) or a number")


def _delete_flags(p) -> None:
    p.add_argument("-f", "--force", action="store_true", help="kill it first if it is running")
    p.add_argument("id")


def _list_flags(p) -> None:
    p.add_argument("-f", "--format", choices=("table", "json"), default="table")
    p.add_argument("-q", "--quiet", action="store_true", help="only the ids")


def _exec_flags(p) -> None:
    p.add_argument("-p", "--process", metavar="FILE", help="the process as OCI JSON, instead of a command")
    p.add_argument("-d", "--detach", action="store_true", help="do not wait for it")
    p.add_argument("-t", "--tty", action="store_true", help="give it a pty")
    _process_flags(p)
    p.add_argument("--cwd", metavar="DIR", help="its working directory")
    p.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE", help="add to its environment")
    p.add_argument("-u", "--user", metavar="UID[:GID]", help="run it as this user")
    p.add_argument("-g", "--additional-gids", action="append", type=int, default=[], metavar="GID",
                   help="a supplementary group (repeatable)")
    p.add_argument("id")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG...]")


# runc's commands: name -> (help, its flags, what runs it).
COMMANDS = {
    "create": ("create a container: its process waits before exec", _create_flags, cmd_create),
    "start": ("let a created container exec its process", _id_flag, cmd_start),
    "run": ("create and start; in the foreground, wait and exit with its code", _run_flags, cmd_run),
    "state": ("print the container's state as JSON", _id_flag, cmd_state),
    "kill": ("send a signal to the container's init (default SIGTERM)", _kill_flags, cmd_kill),
    "delete": ("delete a created or stopped container", _delete_flags, cmd_delete),
    "list": ("list the containers under --root", _list_flags, cmd_list),
    "exec": ("run another process in a container", _exec_flags, cmd_exec),
}


def add_commands(sub, words=()) -> None:
    from minidocker.cli import Parser

    top = sub.add_parser("runtime", help="the OCI runtime alone, with runc's commands (create, start, state...)",
                         description="Run OCI bundles as runc does: "
                                     "minidocker runtime create|start|state|kill|delete|run|exec|list")
    top.add_argument("--root", metavar="DIR",
                     help="where the containers' state lives (default $MINIDOCKER_RUNTIME_ROOT or /run/minidocker/runtime)")
    cmds = top.add_subparsers(dest="runtime_command", metavar="COMMAND", parser_class=Parser, required=True)
    # Only the command asked for, when the words name one (see cli/__init__.py); else all of them.
    asked = next((word for word in words[1:] if word in COMMANDS), None)
    for name, (help, add_flags, func) in COMMANDS.items():
        if asked in (None, name):
            p = cmds.add_parser(name, help=help)
            add_flags(p)
            p.set_defaults(func=func)
