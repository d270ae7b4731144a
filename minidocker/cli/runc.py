"""`minidocker-runc`: minidocker's runtime with runc's own command line, for containerd and dockerd.

containerd never runs a container itself either. For each container it starts a *shim*
(containerd-shim-runc-v2), and the shim runs a runc binary, by path, with a fixed set of flags
(containerd's go-runc package spells them): global flags first, then the command:

    runc --root /run/containerd/runc/default --log BUNDLE/log.json --log-format json \\
         create --bundle BUNDLE --pid-file BUNDLE/init.pid [--console-socket SOCK] ID
    runc ... start ID | state ID | kill [--all] ID 9 | delete [--force] ID | ps --format json ID
    runc ... exec --process /tmp/runc-process123 --detach --pid-file P [--console-socket S] ID
    runc ... pause ID | resume ID | update --resources - ID | events --stats ID

`ctr run --runc-binary PATH` and `dockerd --add-runtime NAME=PATH` name that binary, so anything
that answers these flags the way runc does can stand in its place: this module is the answer,
installed as the console script `minidocker-runc`. Each command calls the functions behind
`minidocker runtime` (cli/runtime.py); only the flags, the words and the exit codes are runc's.

How the shim hears of a failure: runc exits 1 and writes the error, as one JSON line
{"level":"error","msg":...,"time":...}, to the --log file. The shim reads the last error line
back and puts its msg into the error that containerd, ctr and docker print. So the words matter:
containerd recognises "container not running" after a kill, and dockerd turns "executable file
not found" into exit code 127. See docs/09-runtime.md#the-runc-face.
"""

import argparse
import json
import os
import sys
import time

from minidocker import __version__, runtime
from minidocker.cli import runtime as face
from minidocker.cli import Parser  # argparse's, with one-line errors and a help layout that needs no shutil
from minidocker.errors import MinidockerError

VERSION = f"""minidocker-runc version {__version__}
commit: minidocker-{__version__}
spec: {runtime.lifecycle.OCI_VERSION}
python: {sys.version.split()[0]}
"""


# ---------------------------------------------------------------------------------------------
# --log and --log-format: where runc's messages go


class Log:
    """runc logs with logrus: to stderr, or to --log FILE (appended, never truncated: the shim
    keeps one log.json per container for all its runc calls), as text or JSON lines."""

    def __init__(self):
        self.path, self.format, self.debug = None, "text", False

    def write(self, level: str, msg: str) -> None:
        # --8<-- [start:ex-09-log-line]
        # One line per message: with --log-format json, {"level", "msg", "time"} (RFC 3339, UTC),
        # the line the shim parses; appended to --log FILE, or printed to stderr without one.
        if level == "debug" and not self.debug:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
        if self.format == "json":
            line = json.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f'time="{now}" level={level} msg={json.dumps(msg)}'
        if self.path:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        else:
            print(line, file=sys.stderr)
        # --8<-- [end:ex-09-log-line]


LOG = Log()


# ---------------------------------------------------------------------------------------------
# The commands runc has and `minidocker runtime` lacks


def cmd_create(args) -> int:
    _preserve_fds(args)
    if args.no_pivot:
        # runc --no-pivot moves the rootfs onto / (MS_MOVE) instead of pivot_root, for a rootfs
        # on a ramdisk, where pivot_root fails. Ours always pivots: it works everywhere we run.
        LOG.write("debug", "--no-pivot: ignored, minidocker always uses pivot_root")
    return face.cmd_create(args)


def cmd_start(args) -> int:
    try:
        return face.cmd_start(args)
    except MinidockerError as e:
        if e.exit_code in (126, 127):
            # runc looks the command up before its init waits, so a missing or non-executable
            # command fails `create`, and a failed create leaves no state. Ours finds out at the
            # exec; the process is gone already, so take its state away too, as runc's would be.
            # (The shim's later `delete` then hears "does not exist", which it expects.)
            runtime.delete(args.id, force=True, root=face._root(args))
        raise


def cmd_kill(args) -> int:
    # containerd's shim asks to kill a container that may have just exited; it recognises
    # runc's words "container not running" and takes them as "already finished", not as a failure.
    if not args.all and runtime.state(args.id, root=face._root(args))["status"] == "stopped":
        raise MinidockerError("container not running")
    return face.cmd_kill(args)


def cmd_state(args) -> int:
    shown = face._runc_state(runtime.state(args.id, root=face._root(args)))
    if shown["status"] == "running" and _frozen(args):
        shown["status"] = "paused"  # the OCI state has no such word; runc (and containerd) do
    print(json.dumps(shown, indent=2))
    return 0


def cmd_exec(args) -> int:
    _preserve_fds(args)
    return face.cmd_exec(args)


def _preserve_fds(args) -> None:
    # runc --preserve-fds N passes fds 3..3+N to the process. The shim passes none (N = 0).
    if getattr(args, "preserve_fds", 0):
        raise MinidockerError("--preserve-fds is not supported", "pass the files another way, a bind mount")


def _cgroup(args):
    from minidocker.runtime import resources, statedir

    saved = statedir.load(args.id, face._root(args))
    return resources.cgroup_for(args.id, saved.get("cgroupsPath"))


def _frozen(args) -> bool:
    from minidocker.cgroups.base import read

    cgroup = _cgroup(args)
    if not cgroup.exists():
        return False
    if cgroup.VERSION == 1:
        return "freezer" in cgroup.controllers() and (read(cgroup.file("freezer", "freezer.state")) or "").strip() \
            in ("FROZEN", "FREEZING")
    return (read(os.path.join(cgroup.dir, "cgroup.freeze")) or "").strip() == "1"


# --8<-- [start:pause]
def cmd_pause(args) -> int:
    # The freezer stops every process of the cgroup where it stands (no signal, nothing to catch);
    # `docker pause` and `ctr task pause` come down to this one write.
    status = runtime.state(args.id, root=face._root(args))["status"]
    if status != "running":
        raise MinidockerError("container not running", f"it is {status}")
    _cgroup(args).freeze()
    return 0


def cmd_resume(args) -> int:
    if not _frozen(args):
        raise MinidockerError("container not paused", "pause it first")
    _cgroup(args).thaw()
    return 0
# --8<-- [end:pause]


def cmd_ps(args) -> int:
    # The host pids of the container's cgroup: `ctr task ps` and `docker top` read them, and then
    # look each one up in the host's /proc themselves.
    pids = _cgroup(args).procs()
    if args.format == "json":
        print(json.dumps(pids))
        return 0
    import subprocess

    out = subprocess.run(["ps", *args.ps_args] if args.ps_args else ["ps", "-ef"],
                         capture_output=True, text=True, check=False).stdout.splitlines()
    if not out:
        return 0
    pid_col = out[0].split().index("PID")
    print(out[0])
    for line in out[1:]:
        fields = line.split()
        if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
            print(line)
    return 0


# --8<-- [start:update]
def cmd_update(args) -> int:
    """runc update: new limits for a running container, given as linux.resources JSON (the shim
    writes it to our stdin: `--resources -`), or one flag per limit as `docker update` has them."""
    if args.resources:
        try:
            text = sys.stdin.read() if args.resources == "-" else open(args.resources).read()
            resources = json.loads(text)
        except (OSError, ValueError) as e:
            raise MinidockerError(f"--resources {args.resources}: {e}", "linux.resources as JSON") from None
    else:
        resources = {}
    memory, cpu = resources.setdefault("memory", {}) or {}, resources.setdefault("cpu", {}) or {}
    for value, section, key in ((args.memory, memory, "limit"), (args.memory_swap, memory, "swap"),
                                (args.cpu_quota, cpu, "quota"), (args.cpu_period, cpu, "period")):
        if value is not None:
            section[key] = value
    if args.pids_limit is not None:
        resources["pids"] = {"limit": args.pids_limit}
    limits = {key: resources[key] for key in ("memory", "pids", "cpu") if resources.get(key)}
    if limits:
        _cgroup(args).set_limits(limits)  # only these: the device rules stay as create set them
    return 0
# --8<-- [end:update]


# --8<-- [start:events-stats]
def stats_event(container_id: str, root: str) -> dict:
    """One of runc's events: {"type": "stats", "id": ID, "data": {cpu, memory, pids, ...}}, the
    shape of runc's types.Stats, from what the cgroup tells us."""
    numbers = runtime.stats(container_id, root=root)
    return {"type": "stats", "id": container_id, "data": {
        "cpu": {"usage": {"total": numbers["cpu_usage_ns"] or 0, "percpu": [], "kernel": 0, "user": 0},
                "throttling": {}},
        "memory": {"usage": {"usage": numbers["memory_bytes"] or 0, "limit": 0, "max": 0, "failcnt": 0},
                   "swap": {}, "kernel": {}, "kernelTCP": {}, "raw": {}},
        "pids": {"current": numbers["pids"] or 0},
        "blkio": {}, "hugetlb": {}, "intel_rdt": {}, "network_interfaces": None}}


def cmd_events(args) -> int:
    # --stats: one event, then exit. Without it: a stats event every --interval until the
    # container is gone (runc also reports OOMs there; the shim learns of those from the cgroup).
    root = face._root(args)
    while True:
        print(json.dumps(stats_event(args.id, root)), flush=True)
        if args.stats:
            return 0
        time.sleep(args.interval)
        if runtime.state(args.id, root=root)["status"] == "stopped":
            return 0
# --8<-- [end:events-stats]


def cmd_features(args) -> int:
    """What this runtime supports, as JSON in runc's shape (runc features, runc 1.1+): an engine
    can ask instead of guessing."""
    from minidocker import linux

    print(json.dumps({
        "ociVersionMin": "1.0.0", "ociVersionMax": runtime.lifecycle.OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted({"bind", "rbind", "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
                                "private", "rprivate", "shared", "rshared", "slave", "rslave", "relatime",
                                "noatime", "strictatime", "nodiratime", "remount", "sync", "dirsync"}),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": [f"CAP_{name}" for name in linux.CAPABILITIES],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                                                      "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                                      "SCMP_ACT_TRAP", "SCMP_ACT_LOG"],
                        "operators": ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",
                                      "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"],
                        "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"]},
            "apparmor": {"enabled": False}, "selinux": {"enabled": False}},
        "annotations": {"org.opencontainers.runc.version": f"minidocker-{__version__}"},
    }, indent=2))
    return 0


# ---------------------------------------------------------------------------------------------
# The command line: runc's global flags, then the command


def _create_flags(p) -> None:
    face._create_flags(p)
    p.add_argument("--no-pivot", action="store_true", help="accepted; minidocker always pivots")
    p.add_argument("--no-new-keyring", action="store_true", help="accepted; minidocker makes no session keyring")
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N", help="only 0 is supported")


def _exec_flags(p) -> None:
    p.add_argument("--preserve-fds", type=int, default=0, metavar="N", help="only 0 is supported")
    face._exec_flags(p)


def _ps_flags(p) -> None:
    p.add_argument("-f", "--format", choices=("table", "json"), default="table")
    p.add_argument("id")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, help="ps(1)'s options (default -ef)")


def _update_flags(p) -> None:
    p.add_argument("-r", "--resources", metavar="FILE", help="linux.resources as JSON; - for stdin")
    p.add_argument("--memory", type=int, metavar="BYTES")
    p.add_argument("--memory-swap", type=int, metavar="BYTES")
    p.add_argument("--pids-limit", type=int, metavar="N")
    p.add_argument("--cpu-quota", type=int, metavar="US")
    p.add_argument("--cpu-period", type=int, metavar="US")
    p.add_argument("id")


def _events_flags(p) -> None:
    p.add_argument("--stats", action="store_true", help="print one stats event and exit")
    p.add_argument("--interval", type=_seconds, default=5.0, metavar="DURATION", help="e.g. 5s, 500ms")
    p.add_argument("id")


def _seconds(text: str) -> float:
    for unit, scale in (("ms", 0.001), ("s", 1), ("m", 60)):
        if text.endswith(unit) and text[:-len(unit)].replace(".", "", 1).isdigit():
            return float(text[:-len(unit)]) * scale
    raise argparse.ArgumentTypeError(f"not a duration: {text!r} (like 5s or 500ms)")


def _no_flags(p) -> None:
    pass


COMMANDS = {
    "create": ("create a container", _create_flags, cmd_create),
    "start": ("start a created container", face._id_flag, cmd_start),
    "run": ("create and start a container", face._run_flags, face.cmd_run),
    "state": ("print the state of a container", face._id_flag, cmd_state),
    "kill": ("send a signal to the container's init", face._kill_flags, cmd_kill),
    "delete": ("delete a container", face._delete_flags, face.cmd_delete),
    "list": ("list containers", face._list_flags, face.cmd_list),
    "exec": ("run a new process in a container", _exec_flags, cmd_exec),
    "ps": ("list the container's processes", _ps_flags, cmd_ps),
    "pause": ("freeze every process of the container", face._id_flag, cmd_pause),
    "resume": ("thaw a paused container", face._id_flag, cmd_resume),
    "update": ("change a container's resource limits", _update_flags, cmd_update),
    "events": ("print the container's stats as JSON events", _events_flags, cmd_events),
    "features": ("print what this runtime supports, as JSON", _no_flags, cmd_features),
}


def build_parser(command: str | None = None) -> Parser:
    """runc's command line; with `command`, only that command's flags (see parse())."""
    top = Parser(prog="minidocker-runc", description="minidocker's OCI runtime, with runc's command line")
    top.add_argument("-v", "--version", action="store_true", help="print the version")
    top.add_argument("--root", metavar="DIR", help="where the containers' state lives")
    top.add_argument("--log", metavar="FILE", help="write log messages (errors too) to FILE, not stderr")
    top.add_argument("--log-format", choices=("text", "json"), default="text")
    top.add_argument("--debug", action="store_true", help="log debug messages too")
    top.add_argument("--systemd-cgroup", action="store_true", help="not supported: cgroupfs only")
    top.add_argument("--criu", metavar="PATH", help="accepted and ignored: no checkpoint/restore")
    top.add_argument("--rootless", metavar="true|false|auto", help="accepted; minidocker runs as root")
    commands = top.add_subparsers(dest="runc_command", metavar="COMMAND", parser_class=Parser)
    for name, (help, add_flags, func) in COMMANDS.items():
        if command not in (None, name):
            continue
        p = commands.add_parser(name, help=help)
        add_flags(p)
        p.set_defaults(func=func)
    return top


def parse(argv: list[str]):
    """Build the parser of the command that argv names, alone: the shim starts us for each call,
    and building all fourteen commands' flags costs more than parsing. A word that only looks like
    a command (`--root kill kill ID`) can make it the wrong one: then parse again with all."""
    asked = next((word for word in argv if word in COMMANDS), None)
    try:
        return build_parser(asked).parse_args(argv)
    except MinidockerError:
        if asked is None:
            raise
        return build_parser().parse_args(argv)


# --8<-- [start:main]
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv)
        LOG.path, LOG.format, LOG.debug = args.log and os.path.abspath(args.log), args.log_format, args.debug
        if args.version:
            print(VERSION, end="")
            return 0
        if args.systemd_cgroup:
            # runc would ask systemd (over D-Bus) to make the cgroup; we only write cgroupfs.
            raise MinidockerError("systemd cgroup flag passed, but systemd support for managing cgroups "
                                  "is not available", "use the cgroupfs driver")
        if not getattr(args, "func", None):
            build_parser().print_help()
            return 0
        if args.debug:
            LOG.write("debug", " ".join(argv))
        return args.func(args)
    except MinidockerError as e:
        if os.environ.get("MINIDOCKER_DEBUG"):
            raise
        # runc's fatal(): the error to the log (where the shim looks) and to stderr, exit 1.
        # An exec that failed with 126/127 keeps that code, as runc exec's does.
        LOG.write("error", str(e))
        if LOG.path:
            print(f"minidocker-runc: {e}", file=sys.stderr)
        return e.exit_code if e.exit_code in (126, 127) and "exec" in argv else 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: still one line for the shim, unless debugging
        if os.environ.get("MINIDOCKER_DEBUG"):
            raise
        LOG.write("error", f"{type(e).__name__}: {e}")
        return 1
# --8<-- [end:main]


if __name__ == "__main__":
    sys.exit(main())
