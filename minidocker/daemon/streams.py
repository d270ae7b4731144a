"""Docker's stream framing: stdout and stderr on one connection.

A container without a TTY has two output streams, but an HTTP answer (or a hijacked connection)
is one stream of bytes. Docker tells them apart with an 8-byte header before each piece:

    byte 0     the stream: 0 stdin, 1 stdout, 2 stderr
    bytes 1-3  zero
    bytes 4-7  the payload's length, big-endian (uint32)

`docker logs` and `docker attach` read header, then payload, and write the payload to their own
stdout or stderr (moby's stdcopy). With a TTY there is only one stream, the terminal, and no
header: the bytes go as they are, "raw" (docs/07-daemon.md#the-stream-framing).
"""

import queue
import struct
import threading

STDIN, STDOUT, STDERR = 0, 1, 2
MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def frame(stream: int, payload: bytes) -> bytes:
    """One frame: the 8-byte header, then the payload."""
    # --8<-- [start:ex-07-frame]
    # The header: the stream's number in one byte, three zero bytes, the payload's length as a
    # big-endian uint32 (struct's ">BxxxI"); then the payload.
    header = struct.pack(">BxxxI", stream, len(payload))  # B: one byte; xxx: three zero bytes; I: uint32
    return header + payload
    # --8<-- [end:ex-07-frame]


def unframe(data: bytes) -> list[tuple[int, bytes]]:
    """The frames in `data` -> [(stream, payload), ...]; what the docker CLI's stdcopy does."""
    frames, at = [], 0
    while at + 8 <= len(data):
        stream, length = struct.unpack(">BxxxI", data[at:at + 8])
        frames.append((stream, data[at + 8:at + 8 + length]))
        at += 8 + length
    return frames


class FramedWriter:
    """A binary file-like object over `send(bytes)` that frames each write for `stream`, or sends
    it raw when `raw` (a TTY)."""

    def __init__(self, send, stream: int, raw: bool = False):
        self.send, self.stream, self.raw = send, stream, raw

    def write(self, data: bytes) -> int:
        if data:
            self.send(data if self.raw else frame(self.stream, data))
        return len(data)

    def flush(self) -> None:
        pass


class SocketSender:
    """send(bytes) for a raw socket fd we own (a dup of the hijacked connection)."""

    def __init__(self, sock):
        self.sock = sock

    def __call__(self, data: bytes) -> None:
        self.sock.sendall(data)


class Closed(Exception):
    """The client went away: the producer thread stops at its next write."""


def pump(produce, maxsize: int = 64):
    """Turn `produce(write)`, a function that writes bytes and blocks (the engine's logs(), which
    follows a file), into an iterator of bytes for a StreamResponse. The producer runs in a thread
    of its own; when the client leaves, the iterator is closed and the producer's next write raises."""
    chunks: queue.Queue = queue.Queue(maxsize)
    done = object()
    closed = threading.Event()

    def write(data: bytes) -> None:
        if closed.is_set():
            raise Closed()
        if data:
            chunks.put(data)

    def run():
        try:
            produce(write)
        except Closed:
            pass
        except Exception as e:  # the answer has started: the error can only end the stream
            chunks.put(e)
        finally:
            chunks.put(done)

    threading.Thread(target=run, daemon=True).start()
    try:
        while True:
            item = chunks.get()
            if item is done:
                return
            if isinstance(item, Exception):
                return
            yield item
    finally:
        closed.set()
        try:  # unblock a producer waiting on a full queue
            while True:
                chunks.get_nowait()
        except queue.Empty:
            pass
