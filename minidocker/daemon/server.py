"""The daemon's listener: HTTP/1.1 on a unix socket (and, if asked, loopback TCP), one thread per
connection.

dockerd listens on /run/docker.sock, mode 0660, owned by root and the `docker` group: whoever can
open the socket can ask for a container that mounts the host's / — the socket is root access, and
its mode is the only guard. We do the same with /run/minidocker.sock and a `minidocker` group.

Threads: a client may hold its connection for as long as a container runs (`docker run -it`,
`logs -f`, `/events`), so each connection gets its own thread, and a slow client only slows itself.
The engine's functions guard what they change with flock(2) on the store's files; an flock belongs
to an *open file description*, so two threads that each open the lock file exclude each other as
two processes do (docs/07-daemon.md#threads).
"""

import grp
import os
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler

from minidocker import __version__
from minidocker.daemon import router
from minidocker.daemon.http import BodyReader, Hijack, Request, StreamResponse
from minidocker.errors import MinidockerError

DEFAULT_SOCKET = "/run/minidocker.sock"
MAX_BODY = 512 * 1024 * 1024  # bigger bodies (a `docker load` of a huge image) get 413


class Handler(BaseHTTPRequestHandler):
    """One connection: http.server parses each request line and its headers; we route the request
    and write the answer. protocol_version HTTP/1.1 keeps the connection open between requests
    (keep-alive), as the Go client expects; every answer must then say where it ends, with a
    Content-Length or chunked encoding."""

    protocol_version = "HTTP/1.1"
    def version_string(self) -> str:
        return f"Docker/{__version__} (linux)"  # dockerd's Server header: Docker/VERSION (OS)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client left: nothing to answer, nobody to tell

    def __getattr__(self, name):
        # do_GET, do_POST, do_DELETE, do_PUT, do_HEAD: one handler for every method.
        if name.startswith("do_"):
            return self.serve
        raise AttributeError(name)

    def serve(self):
        length = self.headers.get("Content-Length")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        try:
            length = int(length) if length else None
            if length is not None and length < 0:
                raise ValueError
        except ValueError:
            return self.answer(router.error_response(400, "invalid Content-Length"))
        if length and length > MAX_BODY:
            self.close_connection = True  # we will not read that body: the connection cannot go on
            return self.answer(router.error_response(413, f"request body too large (more than {MAX_BODY} bytes)"))
        body = BodyReader(self.rfile, length, chunked, limit=MAX_BODY)
        req = Request(self.command, self.path, self.headers, body, connection=self)
        answer = router.dispatch(req, debug=self.server.debug)
        if self.server.debug:
            print(f"{self.command} {self.path} -> {getattr(answer, 'status', 101)}", file=sys.stderr, flush=True)
        if isinstance(answer, Hijack):
            return self.hijack(req, answer)
        try:
            body.drain()
        except Exception:
            self.close_connection = True
        self.answer(answer)

    def answer(self, resp) -> None:
        if isinstance(resp, StreamResponse):
            return self.stream(resp)
        data, content_type = resp.encoded()
        self.send_response(resp.status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self._common_headers(resp.headers)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _common_headers(self, headers: dict) -> None:
        # Every dockerd answer names its API version and OS: clients use them to negotiate.
        from minidocker.daemon.system import identity_headers
        for key, value in {**identity_headers(), **headers}.items():
            if key != "Content-Type":
                self.send_header(key, value)

    def stream(self, resp: StreamResponse) -> None:
        """Chunked encoding: each chunk is its size in hex, CRLF, the bytes, CRLF; a zero-size
        chunk ends the body. The client reads each one as it comes: a live stream over HTTP/1.1."""
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self._common_headers(resp.headers)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        chunks = iter(resp.chunks)
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()  # a generator's `finally` runs now: a follower lets go of its file

    # --8<-- [start:hijack]
    def hijack(self, req: Request, hijack: Hijack) -> None:
        """`Connection: Upgrade` + `Upgrade: tcp` asks us to stop speaking HTTP: we answer 101
        and the socket becomes a plain byte pipe both ways (docs/07-daemon.md#the-hijack)."""
        upgrade = "upgrade" in req.headers.get("Connection", "").lower()
        if upgrade:
            self.send_response(101, "UPGRADED")
            self.send_header("Content-Type", hijack.content_type)
            self.send_header("Connection", "Upgrade")
            self.send_header("Upgrade", "tcp")
        else:  # an old client: a 200 whose body is the stream, until we close
            self.send_response(200)
            self.send_header("Content-Type", hijack.content_type)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True  # after the stream, the connection is spent
        try:
            hijack.run(HijackedConn(self))
        except (BrokenPipeError, ConnectionResetError):
            pass
    # --8<-- [end:hijack]

    def log_message(self, format, *args):
        if self.server.debug:
            super().log_message(format, *args)


class HijackedConn:
    """The raw connection after 101: what the client sends (stdin) and where we write (output).
    http.server reads through a buffer, which may already hold the first bytes of stdin: read
    from that buffer, never from the socket beside it."""

    def __init__(self, handler: Handler):
        self.handler, self.sock = handler, handler.connection

    def recv(self, n: int = 65536) -> bytes:
        try:
            return self.handler.rfile.read1(n)
        except (OSError, ValueError):
            return b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        """Half-close: the client sees EOF on its output and still may send."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def fileno(self) -> int:
        return self.sock.fileno()


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True  # a container's long attach must not keep the daemon from exiting
    # listen(2)'s backlog: socketserver's default is 5, and a sixth client connecting before we
    # accept gets EAGAIN on a unix socket (50 `docker run` at once do). Go's net package asks 4096.
    request_queue_size = 1024
    debug = False

    def server_bind(self):
        # A socket file left by a dead daemon would make bind fail with EADDRINUSE: remove it,
        # but only after making sure no live daemon answers on it.
        if os.path.exists(self.server_address):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(self.server_address)
                raise MinidockerError(f"a daemon already listens on {self.server_address}",
                                      "stop it first, or choose another -H")
            except (ConnectionRefusedError, FileNotFoundError):
                os.unlink(self.server_address)
            finally:
                probe.close()
        # bind makes the file with the umask's mode: create it closed to others, then open it to the group.
        old = os.umask(0o177)
        try:
            super().server_bind()
        finally:
            os.umask(old)
        try:
            os.chown(self.server_address, 0, grp.getgrnam("minidocker").gr_gid)
            os.chmod(self.server_address, 0o660)
        except KeyError:
            pass  # no minidocker group: root alone may connect (0600)

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)  # http.server wants a (host, port) for its log lines


class TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    debug = False


# The modules whose @route handlers make the API. A module not written yet is skipped; one that
# fails to import is a bug and stops the daemon.
HANDLER_MODULES = ("system", "containers", "archive", "images", "networks", "volumes", "build")


def load_handlers() -> None:
    import importlib

    for name in HANDLER_MODULES:
        module = f"minidocker.daemon.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise


def parse_host(host: str) -> tuple[str, object]:
    """-H unix:///path or -H tcp://127.0.0.1:PORT, as dockerd's -H."""
    if host.startswith("unix://"):
        return "unix", host[len("unix://"):] or DEFAULT_SOCKET
    if host.startswith("tcp://"):
        address, _, port = host[len("tcp://"):].rpartition(":")
        if address not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            raise MinidockerError(f"refusing to listen on {host}: only loopback TCP is served",
                                  "the API is root access for anyone who can reach it; use a unix socket")
        try:
            return "tcp", (address.strip("[]"), int(port))
        except ValueError:
            raise MinidockerError(f"invalid -H {host}", "want tcp://127.0.0.1:PORT") from None
    raise MinidockerError(f"invalid -H {host}", "want unix:///PATH or tcp://127.0.0.1:PORT")


def make_server(host: str, debug: bool = False):
    kind, address = parse_host(host)
    load_handlers()
    if kind == "unix":
        server = UnixServer(address, Handler)
    else:
        print(f"WARNING: API is accessible on http://{address[0]}:{address[1]} without encryption.\n"
              "         Access to the remote API is equivalent to root access on the host.", file=sys.stderr)
        server = TCPServer(address, Handler)
    server.debug = debug
    return server


def serve(hosts: list[str], debug: bool = False) -> None:
    """Listen on every -H, each in its own thread; return when one of them is shut down."""
    servers = [make_server(h, debug) for h in hosts]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        threads[0].join()
    finally:
        # The process is ending (SIGTERM, ^C): close the listening sockets and remove the socket
        # file. No shutdown(): it waits for serve_forever's next poll, up to half a second, and the
        # accept threads are daemon threads that end with the process anyway.
        for s in servers:
            s.server_close()
            if isinstance(s, UnixServer):
                try:
                    os.unlink(s.server_address)
                except FileNotFoundError:
                    pass
