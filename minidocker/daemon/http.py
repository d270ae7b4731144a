"""HTTP/1.1 as the Engine API uses it: a Request, the three kinds of answer, and errors as JSON.

Every answer of dockerd is one of three shapes, and so is ours:
- a **Response**: a status, a JSON body (or bytes) and a Content-Length;
- a **StreamResponse**: `Transfer-Encoding: chunked`, one piece at a time for as long as the
  stream lasts (`docker pull`'s progress messages, `/events`, `logs -f`);
- a **Hijack**: `101 UPGRADED`, after which the connection stops being HTTP and carries the
  container's raw stdin/stdout (`docker attach`, `docker run -it`, `docker exec -it`).

Errors are JSON too: `{"message": "No such container: web"}`, with the status that says what kind
of error it is (docs/07-daemon.md#errors).
"""

import json
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import parse_qs

from minidocker.errors import MinidockerError


class ApiError(Exception):
    """An error with its HTTP status: the router answers {"message": ...} with it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


# Docker's daemon decides an error's status from its type (errdefs: NotFound, Conflict,
# InvalidParameter...). Our engine raises one type, MinidockerError, whose words say the kind, as
# Docker's messages do: "No such container: x" is a 404 in both.
_STATUS_BY_WORDS = [
    # Anywhere in the message: the engine's "network x not found", "get x: no such volume".
    (re.compile(r"(?i)no such|not found|could not find"), 404),
    (re.compile(r"(?i)conflict|already in use|already exists|is already (running|paused)|is not running|"
                r"is paused|cannot (remove|kill|pause|unpause|stop)|You cannot remove"), 409),
    (re.compile(r"(?i)permission denied|unauthorized"), 403),
]


def status_of(error: MinidockerError) -> int:
    """404, 409, 403, or 400 for the rest: a MinidockerError is a request the engine refused."""
    for pattern, status in _STATUS_BY_WORDS:
        if pattern.search(error.what):
            return status
    return 400


def error_message(error: MinidockerError) -> str:
    """The docker CLI prints "Error response from daemon: MESSAGE": the engine's words, and its
    hint after them as our CLI prints it."""
    return str(error)


class Request:
    """One HTTP request as the router sees it.

    `query` keeps every value of a key (`?filters=..&filters=..` is legal); `arg` takes the last one.
    `body` is a binary stream over the request's body alone (Content-Length or chunked): reading it
    never runs into the next request on a keep-alive connection.
    """

    def __init__(self, method: str, target: str, headers, body, connection=None):
        self.method = method
        path, _, query = target.partition("?")
        self.path = path
        self.query: dict[str, list[str]] = parse_qs(query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.version: str | None = None  # set by the router from /v1.NN/
        self.connection = connection  # the server's per-connection handler: for a Hijack

    def arg(self, name: str, default=None):
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """Docker's booleans in a query: 1, true, True (and 0, false, False)."""
        value = self.arg(name)
        if value is None or value == "":
            return default
        if value in ("1", "true", "True", "TRUE"):
            return True
        if value in ("0", "false", "False", "FALSE"):
            return False
        raise ApiError(400, f"invalid value for {name}: {value!r} (want 1, true, 0 or false)")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise ApiError(400, f"invalid value for {name}: {value!r} (want an integer)") from None

    def json_arg(self, name: str, default=None):
        """A query parameter that carries JSON, as `filters` does."""
        value = self.arg(name)
        if value in (None, ""):
            return default
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(400, f"invalid JSON in {name}: {value[:80]!r}") from None

    def json(self, default=None):
        """The body as JSON; an empty body is `default`. Bad JSON is the client's error: 400."""
        data = self.body.read() if self.body else b""
        if not data.strip():
            return default
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"invalid JSON in the request body: {e}") from None


@dataclass
class Response:
    status: int = 200
    body: object = None  # JSON-encoded unless bytes; None is an empty body (204 and friends)
    headers: dict = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str | None]:
        if self.body is None:
            return b"", None
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body), self.headers.get("Content-Type", "application/octet-stream")
        return (json.dumps(self.body) + "\n").encode(), "application/json"


@dataclass
class StreamResponse:
    """A body sent as it is made, in chunks; each item of `chunks` is sent (and flushed) at once."""
    status: int = 200
    chunks: Iterable[bytes] = ()
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


@dataclass
class Hijack:
    """Answer `101 UPGRADED` (or 200 to a client that did not ask to upgrade), then hand the raw
    connection to `run(conn)`: conn.recv/conn.send move the container's bytes, with no HTTP left.

    `content_type` tells the docker CLI how to read the stream: Docker's multiplexed frames
    (application/vnd.docker.multiplexed-stream) without a TTY, raw bytes with one."""
    run: Callable
    content_type: str = "application/vnd.docker.raw-stream"


def json_lines(items: Iterable[dict]) -> Iterable[bytes]:
    """Docker's streamed JSON: one object per line, as `docker pull` and `/events` read them."""
    for item in items:
        yield (json.dumps(item) + "\n").encode()


class BodyReader:
    """A request's body as a stream that ends where the body ends: `length` bytes, or the
    chunked encoding's chunks until the zero-length one (the Go client chunks `docker cp`'s tar)."""

    def __init__(self, rfile, length: int | None, chunked: bool, limit: int | None = None):
        self.rfile, self.left, self.chunked, self.limit = rfile, length or 0, chunked, limit
        self.done, self.total = not chunked and not length, 0

    def _next_chunk(self) -> None:
        line = self.rfile.readline(1024)
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise ApiError(400, "malformed chunked body") from None
        if size == 0:
            while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            self.done = True
        self.left = size

    def read(self, n: int = -1) -> bytes:
        out = []
        while not self.done and n != 0:
            if self.left == 0:
                if self.chunked:
                    if self.total:
                        self.rfile.readline(16)  # the CRLF after the previous chunk
                    self._next_chunk()
                    continue
                self.done = True
                break
            want = self.left if n < 0 else min(n, self.left)
            data = self.rfile.read(min(want, 1 << 16))
            if not data:
                raise ApiError(400, "the request body ended early")
            self.left -= len(data)
            self.total += len(data)
            if self.limit is not None and self.total > self.limit:
                raise ApiError(413, f"request body too large (more than {self.limit} bytes)")
            out.append(data)
            if n > 0:
                n -= len(data)
        return b"".join(out)

    def drain(self) -> None:
        """Read what the handler left, so the next request on the connection starts in the right place."""
        while self.read(1 << 16):
            pass
