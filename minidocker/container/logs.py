"""`docker logs`: a container's output, read back from its json-file log.

The supervisor writes each chunk of output as one JSON object per line, {"log", "stream", "time"}
(Docker's json-file format), so stdout and stderr stay apart and every line keeps its time.
"""

import json
import time

from minidocker.container.lifecycle import find
from minidocker.errors import MinidockerError


class LogFile:
    """The json-file log, held open while we read it: a container removed as it ends (`run --rm`,
    or a client that removes it right after `wait`, as docker-py's `containers.run` does) takes
    the file's name away, not the file we have open, nor what the container wrote into it."""

    def __init__(self, path: str):
        self.path, self.file, self.partial = path, None, b""
        self._open()  # now, while the container is there

    def _open(self) -> None:
        try:
            self.file = open(self.path, "rb")
        except FileNotFoundError:
            pass  # not started yet: no log so far

    def records(self) -> list[dict]:
        """The complete records written since the last call."""
        if self.file is None:
            self._open()
            if self.file is None:
                return []
        *lines, self.partial = (self.partial + self.file.read()).split(b"\n")
        return [json.loads(line) for line in lines]  # the last piece, unended, waits for the next round

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def logs(ref: str, stdout, stderr, follow: bool = False, tail: str = "all", timestamps: bool = False,
         reading=None) -> None:
    """GET /containers/{id}/logs: write the output to the binary files `stdout` and `stderr`.
    `reading()`, if given, is called once the log's current end is known: whatever the container
    writes after that is followed (an attach starts sending the client's input only then)."""
    write_logs(*open_log(ref), stdout, stderr, follow, tail, timestamps, reading)


def open_log(ref: str):
    """(the container, its log held open): the daemon opens it before it answers, so that a client
    that removes the container while the answer streams still gets every line."""
    c = find(ref)
    return c, LogFile(c.log_path)


def write_logs(c, log: LogFile, stdout, stderr, follow: bool = False, tail: str = "all",
               timestamps: bool = False, reading=None) -> None:
    if tail != "all" and not tail.isdigit():
        raise MinidockerError(f"invalid value for --tail: {tail}", "a number of lines, or all")
    out = {"stdout": stdout, "stderr": stderr}
    running = c.state["Running"]  # read before the records: all it wrote before it stopped is read after
    found = log.records()
    if reading:
        reading()
    if tail != "all":
        found = found[len(found) - int(tail):] if int(tail) else []
    try:
        while True:
            for record in found:
                stamp = f"{record['time']} " if timestamps else ""
                out[record["stream"]].write(stamp.encode() + record["log"].encode("utf-8", "surrogateescape"))
            for stream in out.values():
                stream.flush()
            if not follow or not running:
                return
            time.sleep(0.1)
            try:
                running = find(c.id).state["Running"]
            except MinidockerError:
                running = False  # removed as it ended: its last words are still in our open file
            found = log.records()
    finally:
        log.close()
