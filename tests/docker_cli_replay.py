"""Show JSON through the real docker CLI: a fake engine that answers GETs with given answers.

The docker CLI formats what the engine sends (`ps`, `inspect -f`, `stats`, `top`): the table,
the Go template, the CPU % and the sizes are all the CLI's work. So serving it minidocker's
engine JSON, and comparing its output with minidocker's own CLI, tests our formatting against
the real thing, with no dockerd:

    with Replay({"/containers/json": [...], "/containers/abc/json": {...}}) as engine:
        engine.docker("ps", "-a")    # -> CompletedProcess of `docker ps -a`

Paths are matched without the /v1.43 prefix and without the query; the answer may also be a
function of the query (a dict of lists, as parse_qs makes it). Anything else answers 404 with
Docker's "No such container". The machinery (socket server, clean environment) is docker_cli's.
"""

import importlib
import os
import subprocess
import tempfile
import threading
from urllib.parse import parse_qs, urlsplit

docker_cli = importlib.import_module("tests.docker_cli")


class _Answers(docker_cli._Engine):
    def do_GET(self):
        url = urlsplit(self.path)
        route = url.path.removeprefix(f"/v{docker_cli.API_VERSION}")
        self.server.log.append(self.path)
        if route == "/_ping":
            self._reply(200, b"OK")
            return
        answer = self.server.routes.get(route)
        if callable(answer):
            answer = answer(parse_qs(url.query))
        if answer is None:
            self._reply(404, {"message": f"No such container: {route.split('/')[2:3]}"})
        else:
            self._reply(200, answer)

    do_HEAD = do_GET


class Replay:
    def __init__(self, routes: dict):
        self.routes = routes

    def __enter__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="md-replay-")
        self.socket = os.path.join(self._tmp.name, "docker.sock")
        self._server = docker_cli._Server(self.socket, _Answers)
        self._server.routes, self._server.log = self.routes, []
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._tmp.cleanup()

    @property
    def log(self) -> list[str]:
        return self._server.log

    def docker(self, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        clean.update(DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=os.path.join(self._tmp.name, "config"),
                     DOCKER_API_VERSION=docker_cli.API_VERSION, TZ=os.environ.get("TZ", "UTC"))
        return subprocess.run(["docker", *argv], env=clean, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
