"""The minidocker CLI as a client: `minidocker -H unix:///run/minidocker.sock ps`.

The docker CLI holds no engine: each command is a few HTTP requests to dockerd. Ours holds one, so
it can work without a daemon (as podman does), and with `-H` (or $MINIDOCKER_HOST) it becomes a
client like the docker CLI: the same commands, the same requests, the same output. One engine, two
ways in.

The seam is the engine's functions. The commands (cli/container.py, cli/image.py...) call
`lifecycle.create(config, host_config, name)`, `list_containers(all)`, `logs(...)`: functions that
take and return the Engine API's JSON. This module has a function of the same name and signature
for each, which sends the request the docker CLI sends instead; `use_daemon(host)` puts them in
place of the local ones (REMOTE, at the end), and the commands do not know the difference.

    local:   cmd_ps -> list_containers(all=True)            -> containers/*/state.json
    remote:  cmd_ps -> list_containers(all=True) -> GET /containers/json?all=1 -> the daemon -> ...

Imported only with -H: `minidocker run` without a daemon never pays for http.client.
"""

import http.client
import json
import os
import select
import signal
import socket
import struct
import sys
from urllib.parse import quote, urlencode

from minidocker import API_VERSION
from minidocker.errors import EXIT_CANNOT_INVOKE, EXIT_ENGINE, EXIT_NOT_FOUND, MinidockerError


class UnixConnection(http.client.HTTPConnection):
    """http.client speaks HTTP over any connected socket: here an AF_UNIX one."""

    def __init__(self, path: str, timeout: float | None = None):
        super().__init__("localhost", timeout=timeout)  # the Host header dockerd's clients send
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class Client:
    """The daemon at `host` (unix:///path or tcp://127.0.0.1:PORT), spoken to in API_VERSION."""

    def __init__(self, host: str):
        self.host = host
        if host.startswith("unix://"):
            self.path = host[len("unix://"):]
        elif host.startswith("tcp://"):
            self.address, _, port = host[len("tcp://"):].rpartition(":")
            self.path, self.port = None, int(port) if port.isdigit() else 2375
        else:
            raise MinidockerError(f"invalid -H {host}", "want unix:///PATH or tcp://HOST:PORT")

    def connection(self) -> http.client.HTTPConnection:
        if self.path is not None:
            return UnixConnection(self.path)
        return http.client.HTTPConnection(self.address.strip("[]"), self.port)

    def send(self, method: str, path: str, query: dict | None = None, body=None, headers: dict | None = None):
        """Send one request on a new connection; return (connection, response) once the status line
        and headers are in. An answer of 400 or more is raised as the daemon's message."""
        conn = self.connection()
        target = f"/v{API_VERSION}{path}" + (f"?{urlencode(query)}" if query else "")
        headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
        except (FileNotFoundError, ConnectionRefusedError):
            raise MinidockerError(f"Cannot connect to the minidocker daemon at {self.host}. Is the daemon running?",
                                  "start one: minidocker daemon") from None
        except PermissionError:
            raise MinidockerError(f"permission denied while trying to connect to the minidocker daemon socket at {self.host}",
                                  "be root, or a member of the minidocker group") from None
        if resp.status >= 400:
            raise daemon_error(resp)
        return conn, resp

    def call(self, method: str, path: str, query: dict | None = None, body=None):
        """One request and its JSON answer (None for an empty one, as 204 has)."""
        conn, resp = self.send(method, path, query, body)
        try:
            data = resp.read()
        finally:
            conn.close()
        return json.loads(data) if data.strip() else None

    def hijack(self, path: str, query: dict | None = None, body=None) -> tuple[socket.socket, bytes, str]:
        """POST with `Upgrade: tcp`: after `101 UPGRADED` the connection is a raw pipe, so this
        request is written and its answer read by hand, as bytes, not through http.client (whose
        buffered reader would hold, and block on, the stream's first bytes). Returns the socket,
        the bytes that came after the headers, and the stream's Content-Type."""
        conn = self.connection()
        try:
            conn.connect()
        except (FileNotFoundError, ConnectionRefusedError, PermissionError):
            return self.send("POST", path, query, body)  # raises the same error as any request
        sock = conn.sock
        data = json.dumps(body).encode() if body is not None else b""
        target = f"/v{API_VERSION}{path}" + (f"?{urlencode(query)}" if query else "")
        sock.sendall(f"POST {target} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise MinidockerError("the daemon closed the connection", "see its log")
            head += chunk
        head, _, early = head.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        if status >= 400:
            length = int(headers.get("content-length", 0))
            while len(early) < length and (chunk := sock.recv(65536)):
                early += chunk
            sock.close()
            try:
                message = json.loads(early)["message"]
            except (ValueError, KeyError, TypeError):
                message = early.decode(errors="replace").strip() or f"HTTP {status}"
            error = MinidockerError(message)
            error.status = status
            raise error
        return sock, early, headers.get("content-type", "")


def daemon_error(resp) -> MinidockerError:
    """dockerd's {"message": ...} as our one-line error. The message already holds the engine's
    hint (the daemon sends `what (hint)`), so there is none to add."""
    data = resp.read()
    try:
        message = json.loads(data)["message"]
    except (ValueError, KeyError, TypeError):
        message = data.decode(errors="replace").strip() or f"HTTP {resp.status}"
    error = MinidockerError(message)
    error.status = resp.status
    return error


CLIENT: Client | None = None


def _c() -> Client:
    return CLIENT


def _id(ref: str) -> str:
    return quote(ref, safe="")  # a name is one path segment: "a/b" must not become two


# ---------------------------------------------------------------------------------------------
# Docker's stream framing: without a TTY, stdout and stderr share the connection, each piece
# behind an 8-byte header: the stream (1 stdout, 2 stderr), three zero bytes, the size (big-endian).

def copy_stream(sock, early: bytes, raw: bool, stdout, stderr, stdin: int | None = None) -> None:
    """Copy the daemon's stream to our stdout/stderr until it ends, and (with -i) our stdin to it."""
    buffer, fds = early, [sock]
    if stdin is not None:
        fds.append(stdin)
    buffer = _write_frames(buffer, raw, stdout, stderr)
    while True:
        ready, _, _ = select.select(fds, [], [])
        if stdin in ready:
            data = os.read(stdin, 65536)
            if data:
                sock.sendall(data)
            else:  # our input ended: tell the container (its stdin closes), and keep reading
                fds.remove(stdin)
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return
            buffer = _write_frames(buffer + data, raw, stdout, stderr)


def _write_frames(buffer: bytes, raw: bool, stdout, stderr) -> bytes:
    """Write every whole frame in `buffer`; return what is left of an unfinished one."""
    if raw:
        if buffer:
            stdout.write(buffer)
            stdout.flush()
        return b""
    while len(buffer) >= 8:
        stream, size = buffer[0], struct.unpack(">I", buffer[4:8])[0]
        if len(buffer) < 8 + size:
            break
        out = stderr if stream == 2 else stdout
        out.write(buffer[8:8 + size])
        out.flush()
        buffer = buffer[8 + size:]
    return buffer


def _is_raw(content_type: str, tty: bool) -> bool:
    """A TTY's output is one raw stream; without one, frames. (Daemons before API 1.42 call
    both raw-stream: the container's Tty decides, as the docker CLI lets it.)"""
    return tty and "multiplexed" not in content_type


# ---------------------------------------------------------------------------------------------
# The container lifecycle (container/lifecycle.py's functions, over HTTP)

def create(config: dict, host_config: dict, name: str | None = None) -> dict:
    query = {"name": name} if name else None
    return _c().call("POST", "/containers/create", query, {**config, "HostConfig": host_config})


def start(ref: str, attach=None) -> int | None:
    """Detached: POST start. Attached (`run` in the foreground, `start -a`), as the docker CLI:
    attach first (so no output is missed), ask to be told of the exit, then start."""
    if attach is None:
        _c().call("POST", f"/containers/{_id(ref)}/start")
        return None
    info = inspect(ref)
    tty = bool(info["Config"].get("Tty"))
    query = {"stream": 1, "stdout": 1, "stderr": 1, **({"stdin": 1} if attach.stdin is not None else {})}
    sock, early, content_type = _c().hijack(f"/containers/{_id(ref)}/attach", query)
    # The wait is sent now and its answer read at the end, as the docker CLI does it in a
    # goroutine: sent after the start, it could miss a quick exit. `--rm`: until it is removed.
    condition = "removed" if info["HostConfig"].get("AutoRemove") else "next-exit"
    waiter = _c().connection()
    waiter.request("POST", f"/v{API_VERSION}/containers/{_id(ref)}/wait?condition={condition}")
    try:
        _c().call("POST", f"/containers/{_id(ref)}/start")
    except MinidockerError as e:
        sock.close()
        waiter.close()
        e.exit_code = _start_exit_code(str(e))
        raise
    with _terminal(attach.stdin if tty else None, ref):
        copy_stream(sock, early, _is_raw(content_type, tty), attach.stdout, attach.stderr, attach.stdin)
    sock.close()
    try:
        answer = waiter.getresponse()
        if answer.status >= 400:
            raise daemon_error(answer)
        return json.loads(answer.read())["StatusCode"]
    finally:
        waiter.close()


def _start_exit_code(message: str) -> int:
    """The docker CLI's exit code when `run` cannot start the command, read from the daemon's words."""
    if "executable file not found" in message or "no such file or directory" in message.lower():
        return EXIT_NOT_FOUND
    if "permission denied" in message.lower():
        return EXIT_CANNOT_INVOKE
    return EXIT_ENGINE


class _terminal:
    """With -it on a terminal: our terminal raw (so ^C goes to the container's), and its size
    sent to the daemon now and on every SIGWINCH (POST /containers/{id}/resize?h=&w=)."""

    def __init__(self, fd: int | None, ref: str, kind: str = "containers"):
        self.fd, self.path, self.saved = fd, f"/{kind}/{_id(ref)}/resize", None

    def resize(self, *_):
        try:
            cols, rows = os.get_terminal_size(self.fd)
            _c().call("POST", self.path, {"h": rows, "w": cols})
        except (OSError, MinidockerError):
            pass

    def __enter__(self):
        if self.fd is not None and os.isatty(self.fd):
            import termios
            import tty

            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
            self.resize()
            signal.signal(signal.SIGWINCH, self.resize)
        return self

    def __exit__(self, *_):
        if self.saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def stop(ref: str, timeout: float = 10) -> None:
    _c().call("POST", f"/containers/{_id(ref)}/stop", {"t": int(timeout)})


def kill(ref: str, sig="KILL") -> None:
    _c().call("POST", f"/containers/{_id(ref)}/kill", {"signal": sig})


def wait(ref: str) -> dict:
    return _c().call("POST", f"/containers/{_id(ref)}/wait")


def remove(ref: str, force: bool = False, volumes: bool = False) -> None:
    _c().call("DELETE", f"/containers/{_id(ref)}", {"force": int(force), "v": int(volumes)})


def pause(ref: str) -> None:
    _c().call("POST", f"/containers/{_id(ref)}/pause")


def unpause(ref: str) -> None:
    _c().call("POST", f"/containers/{_id(ref)}/unpause")


# ---------------------------------------------------------------------------------------------
# What the engine tells: inspect, ps, logs (container/inspect.py, container/logs.py)

def inspect(ref: str) -> dict:
    return _c().call("GET", f"/containers/{_id(ref)}/json")


def list_containers(all: bool = False) -> list[dict]:
    return _c().call("GET", "/containers/json", {"all": 1} if all else None)


def logs(ref: str, stdout, stderr, follow: bool = False, tail: str = "all", timestamps: bool = False) -> None:
    query = {"stdout": 1, "stderr": 1, "follow": int(follow), "tail": tail, "timestamps": int(timestamps)}
    conn, resp = _c().send("GET", f"/containers/{_id(ref)}/logs", query)
    content_type = resp.getheader("Content-Type", "")
    # A daemon too old to name the stream's kind: the container's Tty tells, as the docker CLI asks.
    raw = "raw-stream" in content_type or ("multiplexed" not in content_type and inspect(ref)["Config"].get("Tty"))
    try:
        buffer = b""
        while data := resp.read1(65536):
            buffer = _write_frames(buffer + data, raw, stdout, stderr)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# exec (container/exec.py)

_EXEC_TTY: dict[str, bool] = {}  # exec id -> its Tty, which the start request repeats


def exec_create(ref: str, body: dict) -> dict:
    answer = _c().call("POST", f"/containers/{_id(ref)}/exec", None, body)
    _EXEC_TTY[answer["Id"]] = bool(body.get("Tty"))
    return answer


def exec_start(exec_id: str, attach=None) -> int | None:
    tty = _EXEC_TTY.get(exec_id, False)
    if attach is None:
        _c().call("POST", f"/exec/{exec_id}/start", None, {"Detach": True, "Tty": tty})
        return None
    sock, early, content_type = _c().hijack(f"/exec/{exec_id}/start", None, {"Detach": False, "Tty": tty})
    with _terminal(attach.stdin if tty else None, exec_id, "exec"):
        copy_stream(sock, early, _is_raw(content_type, tty), attach.stdout, attach.stderr, attach.stdin)
    sock.close()
    return _c().call("GET", f"/exec/{exec_id}/json")["ExitCode"]


# ---------------------------------------------------------------------------------------------
# images (image/inspect.py, image/pull.py)

def image_inspect(ref: str) -> dict:
    return _c().call("GET", f"/images/{quote(ref, safe='/:@')}/json")


def image_inspect_or_none(ref: str) -> dict | None:
    try:
        return image_inspect(ref)
    except MinidockerError as e:
        if getattr(e, "status", 0) == 404:
            return None
        raise


def list_images(all: bool = False, filters: dict | None = None) -> list[dict]:
    query = {"all": int(all)}
    if filters:
        query["filters"] = json.dumps(filters)
    return _c().call("GET", "/images/json", query)


class Pulled:
    def __init__(self, name: str):
        self.names = [name]


def pull(name: str, platform: str | None = None, quiet: bool = False, out=None, **_) -> Pulled:
    """POST /images/create?fromImage=…&tag=…: the daemon pulls and streams JSON progress messages,
    which we print one line each, as the docker CLI does when its output is no terminal."""
    from minidocker.image import reference

    ref = reference.normalize(name)
    repo, tag = str(ref).rsplit("@", 1) if "@" in str(ref) else str(ref).rsplit(":", 1)
    query = {"fromImage": repo, "tag": tag, **({"platform": platform} if platform else {})}
    conn, resp = _c().send("POST", "/images/create", query)
    out = out or sys.stdout
    try:
        for line in resp:
            message = json.loads(line) if line.strip() else {}
            if "error" in message or "errorDetail" in message:
                raise MinidockerError(message.get("error") or message["errorDetail"].get("message", ""), exit_code=1)
            if not quiet and message.get("status") and not message.get("progressDetail"):
                prefix = f"{message['id']}: " if message.get("id") else ""
                print(f"{prefix}{message['status']}", file=out, flush=True)
    finally:
        conn.close()
    return Pulled(str(ref))


def pull_for_run(ref) -> None:
    """`run` of a missing image (cli/container.py's _pull): the daemon pulls it, into its store."""
    try:
        pull(str(ref), out=sys.stderr)
    except MinidockerError as e:
        e.exit_code = EXIT_ENGINE
        raise


# ---------------------------------------------------------------------------------------------
# The switch: which engine functions the commands call, local or remote

# module -> {name of the engine function: its remote version}
REMOTE = {
    "minidocker.container.lifecycle": {"create": create, "start": start, "stop": stop, "kill": kill, "wait": wait,
                                       "remove": remove, "pause": pause, "unpause": unpause},
    "minidocker.container.inspect": {"inspect": inspect, "list_containers": list_containers},
    "minidocker.container.logs": {"logs": logs},
    "minidocker.container.exec": {"exec_create": exec_create, "exec_start": exec_start},
    "minidocker.image.inspect": {"inspect": image_inspect, "inspect_image_or_none": image_inspect_or_none,
                                 "list_images": list_images},
    "minidocker.image.pull": {"pull": pull},
    "minidocker.cli.container": {"_pull": pull_for_run},
}
# The commands whose every engine call is above. Any other command would quietly act on this
# machine's store instead of the daemon's: refused, with a hint.
SERVED = {"ps", "run", "create", "start", "stop", "kill", "wait", "rm", "logs", "inspect", "exec", "pause",
          "unpause", "images", "pull"}


def use_daemon(host: str, command: str | None) -> None:
    """Point the engine functions the commands call at the daemon at `host`."""
    global CLIENT
    import importlib

    if command and command not in SERVED:
        raise MinidockerError(f"`{command}` does not go through a daemon yet",
                              f"run it without -H, or with the docker CLI: DOCKER_HOST={host} docker {command}")
    CLIENT = Client(host)
    for module_name, functions in REMOTE.items():
        module = importlib.import_module(module_name)
        for name, function in functions.items():
            setattr(module, name, function)
