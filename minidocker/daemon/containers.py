"""The container endpoints: each a thin call into the engine's container/*.py.

The one piece of state the daemon adds is about *processes*, not containers: the supervisors it
forked are its children, so it reaps them (waitpid), and their exit codes answer `wait` and feed
`/events`. Everything else (records, state, logs) is on disk, where the daemonless CLI sees it too.

`docker run` in the foreground is four requests (docs/07-daemon.md#docker-run-as-requests):
    POST /containers/create                    -> {"Id"}
    POST /containers/{id}/attach?stream=1&...  -> 101 UPGRADED: the connection is the container's stdio
    POST /containers/{id}/wait?condition=...   -> headers now, {"StatusCode"} when it exits
    POST /containers/{id}/start                -> the attached connection goes to the supervisor
"""

import os
import socket
import threading

from minidocker.container import exec as execs, inspect as inspection, lifecycle, logs as logfile, records
from minidocker.daemon import streams
from minidocker.daemon.http import ApiError, Hijack, Response, StreamResponse, json_lines
from minidocker.daemon.router import route
from minidocker.daemon.system import emit
from minidocker.errors import MinidockerError

_changed = threading.Condition()  # notified when a supervisor we forked exits, or a container goes
_exits: dict[str, list[int]] = {}  # container id -> the exit codes its supervisors reported, in order
EXITS_KEPT = 1000  # containers whose exits we remember: a daemon that runs for months must not grow
_supervisors: dict[str, int] = {}  # container id -> the pid of the supervisor we forked
_attaching: dict[str, list["Attachment"]] = {}  # attached before start: wait for the supervisor


def _reap(cid: str, pid: int, auto_remove: bool, actor: dict) -> None:
    """Wait for a supervisor we forked; it exits with its container's exit code."""
    def reap():
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        with _changed:
            _exits.setdefault(cid, []).append(code)
            _supervisors.pop(cid, None)
            while len(_exits) > EXITS_KEPT:  # the oldest first: a dict keeps the order of insertion
                del _exits[next(iter(_exits))]
            _changed.notify_all()
        emit("container", "die", cid, {**actor, "exitCode": str(code)})
        if auto_remove:
            emit("container", "destroy", cid, actor)
    threading.Thread(target=reap, daemon=True, name=f"reap-{cid[:12]}").start()


def _actor(c: records.Container) -> dict:
    return {"image": c.record["Config"].get("Image", ""), "name": c.name}


# ---------------------------------------------------------------------------------------------
# create, list, inspect

@route("POST", "/containers/create")
def create(req):
    body = req.json()
    if not isinstance(body, dict):
        raise ApiError(400, "config cannot be empty in order to create a container")
    host_config = body.pop("HostConfig", None) or {}
    if not isinstance(host_config, dict):
        raise ApiError(400, "HostConfig must be an object")
    answer = lifecycle.create(body, host_config, req.arg("name") or None)
    c = records.find(answer["Id"])
    emit("container", "create", c.id, _actor(c))
    return Response(201, {"Id": answer["Id"], "Warnings": answer.get("Warnings") or []})


def _matches(row: dict, filters: dict) -> bool:
    """`ps --filter`: every key must match one of its values (Docker's filters.Args)."""
    for key, values in filters.items():
        values = list(values) if isinstance(values, (list, dict)) else [values]
        if key == "id" and not any(row["Id"].startswith(v) for v in values):
            return False
        if key == "name" and not any(v.lstrip("/") in n.lstrip("/") for v in values for n in row["Names"]):
            return False
        if key == "status" and row["State"] not in values:
            return False
        if key == "label" and not all(_has_label(row.get("Labels") or {}, v) for v in values):
            return False
        if key == "ancestor" and row["Image"] not in values:
            return False
    return True


def _has_label(labels: dict, wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    return key in labels and (not eq or labels[key] == value)


@route("GET", "/containers/json")
def list_containers(req):
    filters = req.json_arg("filters", {}) or {}
    if not isinstance(filters, dict):
        raise ApiError(400, "invalid filter: want a JSON object")
    rows = inspection.list_containers(all=req.flag("all") or bool(filters.get("status")))
    rows = [r for r in rows if _matches(r, filters)]
    limit = req.int_arg("limit", -1)
    return Response(200, rows[:limit] if limit and limit > 0 else rows)


@route("GET", "/containers/{id}/json")
def inspect(req, id):
    return Response(200, inspection.inspect(id))


# ---------------------------------------------------------------------------------------------
# start, stop, restart, kill, pause, wait, remove

@route("POST", "/containers/{id}/start")
def start(req, id):
    c = lifecycle.find(id)
    if c.state["Running"]:
        return Response(304)  # Docker: "container already started", as a 304 with no body
    waiting = [a for a in _attaching.pop(c.id, []) if a.upgraded.wait(5)]
    attach = waiting[0].engine_attach(c) if waiting else None
    try:
        pid = lifecycle.start(c.id, attach, detach=True)
    finally:
        for a in waiting:
            a.handed_over(started=attach is not None and a is waiting[0])
    if pid:
        with _changed:
            _supervisors[c.id] = pid
        _reap(c.id, pid, bool(c.record["HostConfig"].get("AutoRemove")), _actor(c))
    emit("container", "start", c.id, _actor(c))
    return Response(204)


@route("POST", "/containers/{id}/stop")
def stop(req, id):
    c = lifecycle.find(id)
    if not c.state["Running"]:
        return Response(304)
    lifecycle.stop(c.id, timeout=req.int_arg("t", 10))
    emit("container", "stop", c.id, _actor(c))
    return Response(204)


@route("POST", "/containers/{id}/restart")
def restart(req, id):
    lifecycle.stop(id, timeout=req.int_arg("t", 10))
    return start(req, id)


@route("POST", "/containers/{id}/kill")
def kill(req, id):
    lifecycle.kill(id, req.arg("signal") or "KILL")
    c = lifecycle.find(id)
    emit("container", "kill", c.id, {**_actor(c), "signal": req.arg("signal") or "KILL"})
    return Response(204)


@route("POST", "/containers/{id}/pause")
def pause(req, id):
    lifecycle.pause(id)
    return Response(204)


@route("POST", "/containers/{id}/unpause")
def unpause(req, id):
    lifecycle.unpause(id)
    return Response(204)


@route("DELETE", "/containers/{id}")
def remove(req, id):
    c = lifecycle.find(id)
    lifecycle.remove(c.id, force=req.flag("force"), volumes=req.flag("v"))
    with _changed:
        _changed.notify_all()
    emit("container", "destroy", c.id, _actor(c))
    return Response(204)


# --8<-- [start:wait]
@route("POST", "/containers/{id}/wait")
def wait(req, id):
    """Headers at once, the body when the condition holds: the docker CLI waits for the headers
    before it starts the container, so a fast `exit 3` cannot slip past us."""
    condition = req.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise ApiError(400, f"invalid condition: {condition!r}")
    # Count the exits we know of *before* reading the container: one reaped between the two would
    # otherwise be counted as old, and the state read before it would give a stale exit code.
    with _changed:
        known = {cid: len(codes) for cid, codes in _exits.items()}
    c = lifecycle.find(id)  # gone already (a --rm container that ended): 404, as Docker answers
    seen = known.get(c.id, 0)
    return StreamResponse(200, json_lines(_wait(c, condition, seen) for _ in [1]))  # evaluated after the headers

# --8<-- [end:wait]

def _wait(c: records.Container, condition: str, seen: int) -> dict:
    was_running = c.state["Running"]
    code = c.state.get("ExitCode", 0)
    while True:
        with _changed:
            codes = _exits.get(c.id, [])
            ours = c.id in _supervisors
            if len(codes) > seen:
                code = codes[-1]
        exited = len(codes) > seen
        try:
            now = lifecycle.find(c.id)
        except MinidockerError:
            now = None  # removed
        if now is None and ours and not exited:
            # `run --rm`: our supervisor removes the container, then exits with its code; the
            # exit code is only ours once we have reaped it (the reap thread notifies).
            with _changed:
                _changed.wait(0.2)
            continue
        if not ours and now is not None:  # a supervisor forked by someone else: watch its state
            if was_running and not now.state["Running"]:
                exited, code = True, now.state["ExitCode"]
            was_running = was_running or now.state["Running"]
        if condition == "removed":
            if now is None:
                return {"StatusCode": code, "Error": None}
        elif exited or (condition == "not-running" and now is not None and not now.state["Running"] and not ours):
            return {"StatusCode": code if exited else now.state["ExitCode"], "Error": None}
        elif now is None:
            return {"StatusCode": code, "Error": None}
        with _changed:
            _changed.wait(0.2)


# ---------------------------------------------------------------------------------------------
# attach: the hijacked connection becomes the container's stdio

class Attachment:
    """A client attached before start: at start, a copy of its connection goes to the forked
    supervisor, which writes the output to it (framed, or raw with a TTY) and, with -i, gives the
    container its input from it; this request's thread only waits for the container to end."""

    def __init__(self, want: dict):
        self.conn, self.want = None, want
        self.upgraded = threading.Event()  # the 101 is sent: the supervisor may write after it
        self.done = threading.Event()
        self.started = False

    def connected(self, conn) -> None:
        self.conn = conn
        self.upgraded.set()

    def engine_attach(self, c: records.Container):
        from minidocker.container.supervisor import Attach

        tty = bool(c.record["Config"].get("Tty"))
        self.sock = socket.socket(fileno=os.dup(self.conn.fileno()))  # the supervisor's copy
        send = streams.SocketSender(self.sock)
        out = streams.FramedWriter(send, streams.STDOUT, raw=tty)
        err = streams.FramedWriter(send, streams.STDERR, raw=tty)
        out.fileno = err.fileno = self.sock.fileno  # the supervisor keeps this fd open
        if not self.want["stdout"]:
            out = streams.FramedWriter(lambda data: None, 0)
        if not self.want["stderr"]:
            err = streams.FramedWriter(lambda data: None, 0)
        stdin = self.sock.fileno() if self.want["stdin"] and c.record["Config"].get("OpenStdin") else None
        return Attach(out, err, stdin)

    def handed_over(self, started: bool) -> None:
        if started:
            self.sock.close()  # the supervisor has its own copy now
        self.started = started
        self.done.set()


# --8<-- [start:attach]
@route("POST", "/containers/{id}/attach")
def attach(req, id):
    c = lifecycle.find(id)
    tty = bool(c.record["Config"].get("Tty"))
    want = {name: req.flag(name) for name in ("stdin", "stdout", "stderr", "stream", "logs")}
    content_type = streams.RAW if tty else streams.MULTIPLEXED
    # Registered now, before the 101 goes out: the client sends `start` as soon as it reads the
    # 101, and a start that came before this thread got to run() would find nobody attached.
    attachment, stdin = None, None
    if want["stream"] and not c.state["Running"]:
        attachment = Attachment(want)
        _attaching.setdefault(c.id, []).append(attachment)
    elif want["stream"] and want["stdin"]:
        from minidocker.container.stdin import open_for_client

        stdin = open_for_client(c.dir, c.name)  # before the 101: a container without -i is an error

    def run(conn):
        if want["logs"]:
            _copy_log(c, conn.send, tty, want, follow=False)
        if attachment:
            attachment.connected(conn)  # the supervisor may write to it now
            emit("container", "attach", c.id, _actor(c))
            attachment.done.wait()
            if attachment.started:
                _wait(c, "next-exit", 0 if c.id not in _exits else len(_exits[c.id]) - 1)
                return
        if want["stream"]:
            # Already running: its output as logged from now on; with -i, what the client sends
            # goes to its stdin FIFO, once we know where "now" is in the log (else an answer
            # logged before could be missed).
            copy_stdin = (lambda: threading.Thread(target=_copy_stdin, args=(conn, stdin), daemon=True).start()
                          ) if stdin is not None else None
            _copy_log(lifecycle.find(c.id), conn.send, tty, want, follow=True, reading=copy_stdin)

    return Hijack(run, content_type)

# --8<-- [end:attach]

def _copy_stdin(conn, fifo: int) -> None:
    """The attached client's input, to a running container's stdin FIFO, until the client stops
    sending (it closed its side, or the connection went with the container)."""
    try:
        while data := conn.recv(65536):
            os.write(fifo, data)
    except OSError:
        pass
    finally:
        os.close(fifo)  # the supervisor sees the hang-up: with StdinOnce the container's stdin closes


def _copy_log(c, send, tty: bool, want: dict, follow: bool, tail: str = "0", reading=None) -> None:
    out = streams.FramedWriter(send if want["stdout"] else (lambda d: None), streams.STDOUT, raw=tty)
    err = streams.FramedWriter(send if want["stderr"] else (lambda d: None), streams.STDERR, raw=tty)
    logfile.logs(c.id, out, err, follow=follow, tail="all" if not follow else tail, reading=reading)


@route("POST", "/containers/{id}/resize")
def resize(req, id):
    c = lifecycle.find(id)
    if not c.state["Running"]:
        raise MinidockerError(f"Container {c.id} is not running", "start it first")
    _resize_tty(c.state["Pid"], req.int_arg("h", 0), req.int_arg("w", 0))
    return Response(200)


def _resize_tty(pid: int, rows: int, columns: int) -> None:
    """Set a terminal's size through its slave side: the process's fd 0 is the pty's slave, and
    /proc/PID/fd/0 opens that same terminal (TIOCSWINSZ then sends SIGWINCH to its foreground
    programs, which redraw). The master stays with the supervisor."""
    import fcntl
    import struct
    import termios

    try:
        fd = os.open(f"/proc/{pid}/fd/0", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return  # no terminal, or it just exited: nothing to resize
    try:
        if os.isatty(fd):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# logs, top, stats, changes

@route("GET", "/containers/{id}/logs")
def logs(req, id):
    c = lifecycle.find(id)
    if not (req.flag("stdout") or req.flag("stderr")):
        raise ApiError(400, "Bad parameters: you must choose at least one stream")
    tty = bool(c.record["Config"].get("Tty"))
    want = {"stdout": req.flag("stdout"), "stderr": req.flag("stderr")}
    follow, tail, timestamps = req.flag("follow"), req.arg("tail") or "all", req.flag("timestamps")
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise ApiError(400, f"invalid value for tail: {tail}")
    tail = "all" if tail.startswith("-") else tail
    # Opened now, before the answer: the stream below is produced after the headers, and by then a
    # client may have removed the container (docker-py's containers.run: logs, wait, remove, read).
    c, log = logfile.open_log(c.id)

    def produce(write):
        out = streams.FramedWriter(write if want["stdout"] else (lambda d: None), streams.STDOUT, raw=tty)
        err = streams.FramedWriter(write if want["stderr"] else (lambda d: None), streams.STDERR, raw=tty)
        logfile.write_logs(c, log, out, err, follow=follow, tail=tail, timestamps=timestamps)

    return StreamResponse(200, streams.pump(produce), streams.RAW if tty else streams.MULTIPLEXED)


@route("GET", "/containers/{id}/top")
def top(req, id):
    from minidocker.container import top as tops

    return Response(200, tops.top(id, req.arg("ps_args") or ""))


@route("GET", "/containers/{id}/stats")
def stats(req, id):
    from minidocker.container import stats as statistics

    c = lifecycle.find(id)
    if not req.flag("stream", True) or req.flag("one-shot"):
        return Response(200, statistics.stats([c])[0])

    def samples():
        while True:
            yield statistics.stats([lifecycle.find(c.id)], interval=1.0)[0]

    return StreamResponse(200, json_lines(samples()))


@route("GET", "/containers/{id}/changes")
def changes(req, id):
    return Response(200, inspection.changes(id))


@route("GET", "/containers/{id}/export")
def export(req, id):
    from minidocker.container.export import export as chunks

    lifecycle.find(id)  # an unknown container is a 404 now, before the first byte of tar
    # A tar cannot carry an error message: an export that fails half-way just ends short.
    return StreamResponse(200, chunks(id), "application/x-tar")


@route("POST", "/containers/prune")
def prune(req):
    removed = []
    for c in lifecycle.all_containers():
        if not c.state["Running"]:
            lifecycle.remove(c.id)
            removed.append(c.id)
    return Response(200, {"ContainersDeleted": removed, "SpaceReclaimed": 0})


# ---------------------------------------------------------------------------------------------
# exec: create, start (attached through the hijack), inspect, resize

_execs: dict[str, dict] = {}  # exec id -> what ExecInspect tells (the engine's record goes at start)


@route("POST", "/containers/{id}/exec")
def exec_create(req, id):
    body = req.json({})
    if not isinstance(body, dict):
        raise ApiError(400, "exec config must be a JSON object")
    answer = execs.exec_create(id, body)
    c = lifecycle.find(id)
    _execs[answer["Id"]] = {"ID": answer["Id"], "ContainerID": c.id, "Running": False, "ExitCode": None,
                            "Pid": 0, "OpenStdin": bool(body.get("AttachStdin")),
                            "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": body["Cmd"][0],
                                              "arguments": body["Cmd"][1:]}, "Tty": bool(body.get("Tty"))}
    emit("container", f"exec_create: {' '.join(body['Cmd'])}", c.id)
    return Response(201, answer)


@route("POST", "/exec/{id}/start")
def exec_start(req, id):
    body = req.json({}) or {}
    record = _execs.get(id)
    if record is None:
        raise MinidockerError(f"No such exec instance: {id}", "create it first")
    if body.get("Detach"):
        execs.exec_start(id)
        return Response(200)
    tty = record["Tty"]

    def run(conn):
        # The exec's supervisor is a child of ours, forked for it: it installs signal handlers
        # and waits for the process, which only a process's main thread may do.
        from minidocker.container.supervisor import Attach, close_fds_but

        sock = socket.socket(fileno=os.dup(conn.fileno()))
        send = streams.SocketSender(sock)
        attach = Attach(streams.FramedWriter(send, streams.STDOUT, raw=tty),
                        streams.FramedWriter(send, streams.STDERR, raw=tty),
                        sock.fileno() if record["OpenStdin"] else None)
        pid = os.fork()
        if pid == 0:
            code = 126
            try:
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                copiers = []
                if not tty:
                    # Without a TTY the exec writes to our fds 1 and 2 (exec.py logs nothing): make
                    # them pipes, and frame what comes out of each for the client.
                    for fd, writer in ((1, attach.stdout), (2, attach.stderr)):
                        read_end, write_end = os.pipe()
                        os.dup2(write_end, fd)
                        os.close(write_end)
                        copiers.append(threading.Thread(target=_copy_fd, args=(read_end, writer)))
                else:
                    os.dup2(null, 1)
                    os.dup2(null, 2)
                close_fds_but({null, sock.fileno(), *(c._args[0] for c in copiers)})  # null: for the dup2s below
                for c in copiers:
                    c.start()
                code = execs.exec_start(id, attach) or 0
                os.dup2(null, 1)  # our copies of the pipes' write ends: gone, so the copiers see EOF
                os.dup2(null, 2)
                for c in copiers:
                    c.join()
            finally:
                os._exit(code)
        sock.close()
        record.update(Running=True, Pid=pid)
        _, status = os.waitpid(pid, 0)
        record.update(Running=False, ExitCode=os.waitstatus_to_exitcode(status))

    return Hijack(run, streams.RAW if tty else streams.MULTIPLEXED)


def _copy_fd(fd: int, writer) -> None:
    while data := os.read(fd, 65536):
        writer.write(data)
    os.close(fd)


@route("GET", "/exec/{id}/json")
def exec_inspect(req, id):
    record = _execs.get(id)
    if record is None:
        raise MinidockerError(f"No such exec instance: {id}", "create it first")
    return Response(200, record)


@route("POST", "/exec/{id}/resize")
def exec_resize(req, id):
    record = _execs.get(id)
    if record is None:
        raise MinidockerError(f"No such exec instance: {id}", "create it first")
    # The exec's process is the child of the supervisor we forked for it.
    try:
        with open(f"/proc/{record['Pid']}/task/{record['Pid']}/children") as f:
            for child in f.read().split():
                _resize_tty(int(child), req.int_arg("h", 0), req.int_arg("w", 0))
    except OSError:
        pass
    return Response(200)
