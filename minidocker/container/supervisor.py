"""The supervisor: the process that starts a container, stays with it, and records how it ended.

Docker's equivalent is containerd-shim. It owns the container's output (a copy goes to the log,
in Docker's json-file format; when attached, another copy to our terminal), passes our signals
on to the container, waits for it, writes the exit status to state.json, and releases the
cgroup. `run` is the supervisor itself (attached); `run -d` and `start` fork one that outlives
the command (detached).
"""

import fcntl
import json
import os
import select
import signal
import termios
import tty as ttymode

from minidocker import linux, runtime, store
from minidocker.container import records
from minidocker.errors import MinidockerError
from minidocker.volume import mounts as volume_mounts
from minidocker.network import sandbox

PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


class Attach:
    """The client's end of an attached container: where its output goes, and the fd its input
    comes from (None: the container's stdin is /dev/null). The CLI passes its own stdio; the
    daemon (chapter 07) will pass the client's connection."""

    def __init__(self, stdout, stderr, stdin: int | None = None):
        self.stdout, self.stderr, self.stdin = stdout, stderr, stdin


def run(c: records.Container, attach: Attach | None, on_started=None) -> int:
    """Start container `c` through the runtime, supervise it until it exits, return its exit code."""
    spec = c.spec
    overlay = spec.get("minidocker", {}).get("overlay")
    if overlay:  # the writable layer's directories, made on first start (chapter 02)
        for d in (overlay["upperdir"], overlay["workdir"], spec["root"]["path"]):
            os.makedirs(d, exist_ok=True)
        init_layer(overlay["lowerdirs"][0])
    c.save_state(SupervisorPid=os.getpid(), SupervisorStart=runtime.process_start_time(os.getpid()))
    io = Plumbing(spec["process"]["terminal"], attach.stdin if attach else None,
                  open_stdin=bool(c.record["Config"].get("OpenStdin")))
    if io.keeps_stdin:  # -i with nobody attached yet: later clients write to a FIFO (`docker attach`)
        from minidocker.container.stdin import StdinFifo

        io.fifo = StdinFifo(c.dir, once=bool(c.record["Config"].get("StdinOnce")))
    try:
        # Its network first (chapter 04): the namespace, veths, addresses, /etc files; the
        # runtime then joins the namespace by the path the spec names.
        sandbox.up(c)
        volume_mounts.setup(c)  # chapter 05: a volume's driver mount, the image's content copied in
        if spec["linux"].get("uidMappings"):
            from minidocker.security import remapped_files  # only a remapping engine imports it

            remapped_files.prepare(spec, c.dir)  # chapter 08: what the remapped root must own
        # The container's directory holds its config.json: it is the runtime's bundle.
        # If we die (SIGKILL), the kernel kills the container's first process: no orphans.
        pid = io.started(runtime.run(c.id, c.dir, stdio=io.stdio, console=io.console,
                                     parent_death_signal=signal.SIGKILL))
    except BaseException as e:
        # As Docker does: the container stays "created", with the error and its exit code.
        runtime.delete(c.id, force=True)
        sandbox.down(c)
        volume_mounts.release(c)
        if io.fifo:
            io.fifo.close()
        c.save_state(ExitCode=getattr(e, "exit_code", 125), Error=str(e), SupervisorPid=0)
        raise
    if io.fifo:
        io.fifo.writer = io.stdin_writer
    c.save_state(Status="running", Running=True, Pid=pid, StartedAt=store.now())
    status = None
    try:
        if on_started:
            on_started()
        for sig in PROXIED_SIGNALS:  # `docker run --sig-proxy`: our signals go to the container
            signal.signal(sig, lambda signum, _frame: signal_quietly(pid, signum))
        copy_output(io.streams, c.log_path, attach, io.stdin_to_pty, io.fifo)
        _, status = os.waitpid(pid, 0)
    finally:
        if io.fifo:
            io.fifo.close()
        if status is None:
            # Whatever stopped us (our reader went away: EPIPE in `run ... | head -1`), the
            # container does not outlive its supervisor, and what it held is released now,
            # not when some later command notices.
            signal_quietly(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        code = runtime.exit_code(status)
        oom_killed = runtime.stats(c.id)["oom_kills"] > 0
        runtime.delete(c.id, force=True)  # nothing may be left once PID 1 is gone; the cgroup goes
        sandbox.down(c)  # its address back to the pool, its veth gone (chapter 04)
        volume_mounts.release(c)  # the last user of a volume with a driver mount unmounts it
        c.save_state(Status="exited", Running=False, Pid=0, ExitCode=code, OOMKilled=oom_killed,
                     FinishedAt=store.now(), SupervisorPid=0)
    return code


def init_layer(path: str) -> None:
    """Docker's init layer, just below the writable one: the mount points of Docker's default
    mounts (/proc, /sys, /dev...), and an empty file where each of the container's own files goes
    (/etc/hosts, /etc/resolv.conf, /etc/hostname). An image need not have them, and made in the
    writable layer they would end up in every `commit` and `build` step."""
    from minidocker.container import oci_defaults
    from minidocker.network import etc_files

    for mount in oci_defaults.default_mounts():
        os.makedirs(os.path.join(path, mount["destination"].lstrip("/")), 0o755, exist_ok=True)
    os.makedirs(os.path.join(path, "etc"), 0o755, exist_ok=True)
    for name in etc_files.FILES:
        with open(os.path.join(path, "etc", name), "a"):
            pass


def signal_quietly(pid: int, signum: int) -> None:
    """Send a signal to a process that may have just exited."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


class Plumbing:
    """A container's stdio, seen from the supervisor.

    Without a terminal: stdin is ours (-i) or /dev/null; stdout and stderr are two pipes, so
    they stay apart in the log, or, when nothing is to be logged (`exec`), simply ours. With a
    terminal (-t): the container makes a pty in its own /dev/pts and sends us the master side
    over a unix socket; everything comes back on one stream.
    """

    def __init__(self, terminal: bool, stdin: int | None, capture: bool = True, open_stdin: bool = False):
        self.console, self.streams, self.fifo = None, {}, None
        self.stdin = stdin  # the attached client's input, copied to the pty with -it
        self.stdin_to_pty = terminal and stdin is not None
        # -i (OpenStdin) with no client at start: a stdin that stays open, fed later (stdin.py).
        self.keeps_stdin, stdin_writer = open_stdin and stdin is None, None
        if self.keeps_stdin and not terminal:
            stdin, stdin_writer = os.pipe()
        stdin = os.open(os.devnull, os.O_RDONLY) if stdin is None else stdin
        self.stdio = (stdin, 1, 2)
        self.stdin_writer = stdin_writer  # our end of the container's stdin, for the FIFO's clients
        if terminal:
            import socket  # here: only a terminal needs it, and every import slows a start

            self.console, self._ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        elif capture:
            out_read, out_write = os.pipe()
            err_read, err_write = os.pipe()
            self.streams = {out_read: "stdout", err_read: "stderr"}
            self.stdio = (stdin, out_write, err_write)

    def started(self, pid: int) -> int:
        """Once the process runs: drop our copies of its ends, and pick up the pty if any."""
        for fd in set(self.stdio) - {0, 1, 2, self.stdin}:
            os.close(fd)  # the container has its copies; ours would keep the pipes open forever
        if self.console:
            self.console.close()
            import socket

            _, fds, _, _ = socket.recv_fds(self._ours, 16, 1)
            self._ours.close()
            self.streams = {fds[0]: "stdout"}
            self.stdin_writer = os.dup(fds[0]) if self.keeps_stdin else None  # with -t, input goes to the pty
            if self.stdin_to_pty and os.isatty(1):
                # Our terminal's size, now and whenever it changes, so that full-screen programs
                # (vi, top) draw to fit: the pty's size is what they ask for.
                self.resize()
                signal.signal(signal.SIGWINCH, lambda _signum, _frame: self.resize())
        return pid

    def resize(self) -> None:
        master = next(iter(self.streams))
        fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8))


def copy_output(streams: dict[int, str], log_path: str | None, attach: Attach | None,
                stdin_to_pty: bool, fifo=None) -> None:
    """Copy the container's output to the log and, when attached, to the client, until EOF.

    With a terminal and -i, what the client types goes to the pty (raw, so ^C reaches the
    container's own terminal driver, which turns it into SIGINT there). `fifo`: the stdin of
    clients that attach later (stdin.py).
    """
    log = open(log_path, "ab") if log_path else None
    # poll(2): one call waits until any of the fds has something to read (or has closed).
    poller, open_fds = select.poll(), set(streams)
    for fd in streams:
        poller.register(fd, select.POLLIN)
    master = next(iter(streams)) if stdin_to_pty else None
    stdin = attach.stdin if master is not None else None
    saved_mode = None
    if fifo is not None:
        poller.register(fifo.fd, select.POLLIN)
    if stdin is not None:
        poller.register(stdin, select.POLLIN)
        open_fds.add(stdin)
        if os.isatty(stdin):
            saved_mode = termios.tcgetattr(stdin)
            ttymode.setraw(stdin)
    try:
        while len(open_fds) > (1 if stdin is not None else 0):  # until the output ends
            for fd, _ in poller.poll():
                if fifo is not None and fd == fifo.fd:
                    fifo.pump(poller)
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: a pty's master once every slave is closed
                    data = b""
                if fd == stdin:
                    if data:
                        os.write(master, data)
                    else:
                        poller.unregister(stdin)
                        open_fds.discard(stdin)
                    continue
                if not data:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    os.close(fd)
                    continue
                if attach:
                    out = attach.stdout if streams[fd] == "stdout" else attach.stderr
                    out.write(data)
                    out.flush()
                if log:
                    log.write(log_lines(data, streams[fd], store.now()))
                    log.flush()
    finally:
        if saved_mode:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved_mode)
        if log:
            log.close()


def log_lines(data: bytes, stream: str, time: str) -> bytes:
    """Docker's json-file format: one {"log", "stream", "time"} object per line of output.

    Bytes that are not UTF-8 survive as surrogate escapes, which JSON writes as \\udcXX.
    """
    text = data.decode("utf-8", "surrogateescape")
    records = (json.dumps({"log": line, "stream": stream, "time": time})
               for line in text.splitlines(keepends=True))
    return "".join(r + "\n" for r in records).encode()


def start_detached(c: records.Container, attach: Attach | None = None) -> int:
    """Fork a supervisor that outlives us; return its pid once the container runs, or raise its
    error. `attach` (the daemon's hijacked connection, chapter 07) gets the output, as containerd's
    shim copies a container's stdio to dockerd's FIFOs; our parent must reap the supervisor."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        os.setsid()  # its own session: a ^C or a closed terminal in ours must not reach it
        # Let go of the caller's stdio: whoever reads our output (a shell pipe, a test) must see
        # EOF when the `run -d` command ends, not when the container does.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        # And let go of every other fd we inherited: in the daemon (chapter 07) they are other
        # clients' connections (held open, their clients would never see EOF) and the lock
        # files other threads hold (an flock lives as long as any fd of its open file).
        close_fds_but({ready_write, linux.trace_fd(), *(_attach_fds(attach))})
        code = 125
        try:
            # Once the container runs, let go of the caller's stderr that a --trace holds too.
            code = run(c, attach, on_started=lambda: (os.close(ready_write), linux.disable_trace()))
        except MinidockerError as e:
            os.write(ready_write, json.dumps({"code": e.exit_code, "message": e.what, "hint": e.hint}).encode())
            code = e.exit_code
        except BaseException as e:  # noqa: BLE001
            os.write(ready_write, json.dumps({"code": 125, "message": f"supervisor: {e}", "hint": ""}).encode())
        finally:
            if c.record["HostConfig"].get("AutoRemove"):
                records.remove_dir(c)
                volume_mounts.remove_anonymous(c.record)  # `run -d --rm`: as `rm -v`
            os._exit(code)
    os.close(ready_write)
    with os.fdopen(ready_read, "rb") as ready:
        message = ready.read()
    if message:
        os.waitpid(pid, 0)  # it exits right after telling us: reap it, whoever we are
        error = json.loads(message)
        raise MinidockerError(error["message"], error["hint"], exit_code=error["code"])
    return pid


def _attach_fds(attach: Attach | None) -> list[int]:
    if attach is None:
        return []
    fds = [attach.stdin] if attach.stdin is not None else []
    return fds + [f.fileno() for f in (attach.stdout, attach.stderr) if hasattr(f, "fileno")]


def close_fds_but(keep: set[int]) -> None:
    low = 3
    for fd in sorted(fd for fd in keep if fd >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
