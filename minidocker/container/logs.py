"""`docker logs`: a container's output, read back from its json-file log.

The supervisor writes each chunk of output as one JSON object per line, {"log", "stream", "time"}
(Docker's json-file format), so stdout and stderr stay apart and every line keeps its time.
"""

import json
import os
import time

from minidocker.container.lifecycle import find
from minidocker.errors import MinidockerError


def _new_records(path: str, offset: int) -> tuple[list[dict], int]:
    """The complete json-file records after byte `offset`, and the offset after them."""
    found = []
    if os.path.exists(path):
        with open(path, "rb") as f:
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    break  # a record still being written: read it on the next round
                offset += len(line)
                found.append(json.loads(line))
    return found, offset


def logs(ref: str, stdout, stderr, follow: bool = False, tail: str = "all", timestamps: bool = False,
         reading=None) -> None:
    """GET /containers/{id}/logs: write the output to the binary files `stdout` and `stderr`.
    `reading()`, if given, is called once the log's current end is known: whatever the container
    writes after that is followed (an attach starts sending the client's input only then)."""
    c = find(ref)
    if tail != "all" and not tail.isdigit():
        raise MinidockerError(f"invalid value for --tail: {tail}", "a number of lines, or all")
    out = {"stdout": stdout, "stderr": stderr}
    found, offset = _new_records(c.log_path, 0)
    if reading:
        reading()
    if tail != "all":
        found = found[len(found) - int(tail):] if int(tail) else []
    while True:
        for record in found:
            stamp = f"{record['time']} " if timestamps else ""
            out[record["stream"]].write(stamp.encode() + record["log"].encode("utf-8", "surrogateescape"))
        for stream in out.values():
            stream.flush()
        if not follow or not c.state["Running"]:
            return
        time.sleep(0.1)
        c = find(c.id)
        found, offset = _new_records(c.log_path, offset)
