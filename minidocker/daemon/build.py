"""POST /build: the classic builder (build/builder.py) behind the Engine API.

The client sends the context as a tar body (the docker CLI packs it after reading .dockerignore:
"Sending build context to Docker daemon") and the options in the query:

    t=NAME (repeatable)  dockerfile=PATH  buildargs={"K": "V"}  labels={"k": "v"}
    nocache=1  q=1  target=STAGE  networkmode=MODE  (rm, forcerm, pull: accepted)

The answer streams the builder's output as JSON messages: each write is {"stream": "Step 1/3 :
FROM busybox\\n"}, RUN's own output included, as it comes; then {"aux": {"ID": "sha256:…"}},
which is how docker-py's images.build() and `docker build -q` learn the new image's ID.
A failing step ends the stream with {"error", "errorDetail": {"code", "message"}}: the CLI exits
with that code.

The build runs in a child process (`python -m minidocker.daemon.build`), not in a thread: a RUN
step's container is supervised by the process that starts it in the foreground, and that
supervisor unshare()s a network namespace and sets signal handlers, two things a thread of a
many-threaded daemon cannot do for itself alone. The child is the same engine; it writes the
JSON messages, the daemon relays them. See docs/07-daemon.md#build.
"""

import codecs
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from minidocker.daemon.http import ApiError, Request, StreamResponse
from minidocker.daemon.images import json_line, streamed
from minidocker.daemon.router import route
from minidocker.errors import EXIT_ENGINE, MinidockerError


def _object(req: Request, name: str) -> dict:
    value = req.json_arg(name, {}) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (str, type(None)))
                                              for k, v in value.items()):
        raise ApiError(400, f"{name} must be a JSON object of strings")
    return value


@route("POST", "/build")
def build(req: Request) -> StreamResponse:
    if req.arg("version", "1") != "1":
        raise ApiError(400, "minidocker has the classic builder only (version=1; DOCKER_BUILDKIT=0)")
    if req.arg("remote"):
        raise ApiError(400, "a remote context (git URL or tarball URL) is not supported: send the context as the body")
    options = {"t": req.query.get("t", []), "dockerfile": req.arg("dockerfile") or "Dockerfile",
               "buildargs": _object(req, "buildargs"), "labels": _object(req, "labels"),
               "nocache": req.flag("nocache"), "q": req.flag("q"), "target": req.arg("target") or None,
               "networkmode": req.arg("networkmode") or "default"}
    # The whole context first, in this thread: the server reads what is left of a body once the
    # handler returns, and must not race the builder for it.
    context = tempfile.TemporaryFile(prefix="md-context-")
    shutil.copyfileobj(req.body, context)
    context.seek(0)

    # --8<-- [start:build-relay]
    def work(emit) -> None:
        with context:
            child = subprocess.Popen([sys.executable, "-m", "minidocker.daemon.build", json.dumps(options)],
                                     stdin=context, stdout=subprocess.PIPE)
        try:
            for line in child.stdout:  # one JSON message a line, written by child_main below
                emit(line)
        finally:
            if child.poll() is None:  # the client went away: SIGINT, so the builder removes its container
                child.send_signal(signal.SIGINT)
            child.stdout.close()
            child.wait()

    return streamed(work, hold=0)
    # --8<-- [end:build-relay]


# ---------------------------------------------------------------------------------------------
# The child: one build, its output as JSON messages on stdout

class _Messages:
    """A binary stream for the builder's output: each write becomes one {"stream": text} message.
    The decoder is incremental, so a UTF-8 character cut between two writes of RUN's output is
    put back together instead of turned into two replacement marks."""

    def __init__(self, out):
        self.out = out
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def send(self, message: dict) -> None:
        self.out.write(json_line(message))
        self.out.flush()

    def write(self, data: bytes) -> int:
        text = self.decoder.decode(bytes(data))
        if text:
            self.send({"stream": text})
        return len(data)

    def flush(self) -> None:
        pass


def error_message(error: BaseException) -> dict:
    """Docker's build error: a failing RUN's exit code rides along, and the CLI exits with it."""
    text = str(error) if isinstance(error, MinidockerError) else f"{type(error).__name__}: {error}"
    code = getattr(error, "exit_code", EXIT_ENGINE)
    detail = {"code": code, "message": text} if code not in (EXIT_ENGINE, 1) else {"message": text}
    return {"errorDetail": detail, "error": text}


def child_main(options: dict) -> int:
    from minidocker.build import builder

    # The messages get stdout to themselves: whatever else prints (a warning, a stray print) goes
    # to stderr, the daemon's log, and cannot break the JSON stream.
    messages = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    out = _Messages(messages)
    try:
        image_id = builder.build(sys.stdin.buffer, options, out)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the client hears of anything
        out.send(error_message(e))
        return 1
    if options["q"]:  # -q: the builder said nothing; the ID is the whole output
        out.send({"stream": image_id + "\n"})
    out.send({"aux": {"ID": image_id}})
    return 0


if __name__ == "__main__":
    sys.exit(child_main(json.loads(sys.argv[1])))
