"""A running container's stdin, for clients that attach after it started (`docker attach`).

A container started with -i keeps its stdin open even when nobody is attached (`docker run -di
busybox sh` waits for input; with /dev/null it would read EOF and exit at once). Its supervisor
holds the writing end, and takes what later clients send from a named pipe (a FIFO) in the
container's directory, as containerd's shim takes a container's stdin from the FIFO dockerd
writes to. One client at a time writes into the FIFO; when it goes (the FIFO reports a hang-up),
the container's stdin stays open, unless the container was made with StdinOnce (`docker run -i`,
attached): then its stdin closes with the first client, as Docker does.
"""

import errno
import os
import select

from minidocker.errors import MinidockerError

FIFO = "stdin.fifo"


class StdinFifo:
    """The supervisor's side: copy what arrives on the FIFO to the container's stdin (`writer`:
    a pipe's writing end, or the pty's master with -t)."""

    def __init__(self, container_dir: str, once: bool):
        self.path, self.once, self.writer = os.path.join(container_dir, FIFO), once, None
        if os.path.exists(self.path):
            os.unlink(self.path)  # one left by an earlier run of the same container
        os.mkfifo(self.path, 0o600)
        self.fd = self._open()

    def _open(self) -> int:
        # O_NONBLOCK: opening for reading does not wait for a writer. poll() reports POLLHUP only
        # once a writer has come and gone, so a fresh open waits quietly for the next client.
        return os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

    # --8<-- [start:pump]
    def pump(self, poller) -> None:
        """Called when poll() says the FIFO is ready: pass the bytes on, or handle a hang-up."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if data:
            if self.writer is not None:
                os.write(self.writer, data)
            return
        # b"": the client went. Reopen, or the FIFO would report a hang-up forever.
        poller.unregister(self.fd)
        os.close(self.fd)
        if self.once and self.writer is not None:
            os.close(self.writer)  # the container reads EOF
            self.writer = None
            return
        self.fd = self._open()
        poller.register(self.fd, select.POLLIN)
    # --8<-- [end:pump]

    def close(self) -> None:
        for fd in (self.fd, self.writer):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def open_for_client(container_dir: str, name: str) -> int:
    """The client's side (the daemon's attach): an fd to write the container's stdin to."""
    try:
        # O_NONBLOCK on a FIFO's writing end fails at once (ENXIO) when no reader holds it: the
        # container's supervisor is gone, or the container was not started with -i.
        fd = os.open(os.path.join(container_dir, FIFO), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENXIO):
            raise MinidockerError(f"container {name} has no open stdin", "it was not started with -i") from None
        raise
    os.set_blocking(fd, True)  # from now on, a client faster than the container waits for it
    return fd
