"""Chapter 07's fixtures: a `minidocker daemon` on a socket in a temp dir, and the real docker CLI
pointed at it (DOCKER_HOST=unix://…). No dockerd runs: the daemon under test is ours.

    daemon   one per test module: .host, .sock, .root (its own MINIDOCKER_ROOT), .docker(...),
             .api(method, path, body=None) over the socket; stopped and cleaned after
    docker   daemon.docker: docker(*args, input=None, env=None, timeout=60) -> CompletedProcess
    busybox  busybox:latest in the daemon's store (the embedded image, no network)
"""

import http.client
import json
import os
import socket
import subprocess
import sys

import pytest

import harness


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket: what `curl --unix-socket` does."""

    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Daemon:
    def __init__(self, workdir: str):
        self.dir = workdir
        self.root = os.path.join(workdir, "root")
        self.sock = os.path.join(workdir, "d.sock")
        self.host = f"unix://{self.sock}"
        # Chapter 07 comes before chapter 08's locks: its daemon runs containers without them.
        env = dict(harness.cli_env(), MINIDOCKER_ROOT=self.root, MINIDOCKER_HARDENING="off")
        self.log = open(os.path.join(workdir, "daemon.log"), "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "minidocker", "daemon", "-H", self.host, "--debug"],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT)
        harness.wait_until(lambda: os.path.exists(self.sock) or self.process.poll() is not None,
                           "the daemon's socket", timeout=15)
        if self.process.poll() is not None:
            raise RuntimeError(f"the daemon did not start: {self.read_log()}")

    def read_log(self) -> str:
        with open(self.log.name, errors="replace") as f:
            return f.read()[-3000:]

    def close(self) -> None:
        try:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", *ids)
            for net in self.docker("network", "ls", "-q", "--filter", "type=custom").stdout.split():
                self.docker("network", "rm", net)
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.log.close()

    def env(self, extra: dict | None = None) -> dict:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        return dict(clean, DOCKER_HOST=self.host, DOCKER_CONFIG=os.path.join(self.dir, "docker-config"),
                    DOCKER_BUILDKIT="0", **(extra or {}))

    def docker(self, *args, input=None, env=None, timeout=60) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *map(str, args)], input=input, capture_output=True, text=True,
                              env=self.env(env), timeout=timeout)

    def connection(self, timeout: float = 30) -> UnixHTTPConnection:
        return UnixHTTPConnection(self.sock, timeout)

    def api(self, method: str, path: str, body=None, headers=None, timeout: float = 30):
        """One request -> (status, headers, body as JSON when it is JSON, else bytes)."""
        conn = self.connection(timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            raw = resp.read()
            if resp.getheader("Content-Type", "").startswith("application/json") and raw:
                return resp.status, resp.headers, json.loads(raw)
            return resp.status, resp.headers, raw
        finally:
            conn.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    harness.need_root()
    d = Daemon(str(tmp_path_factory.mktemp("daemon")))
    yield d
    d.close()


@pytest.fixture
def docker(daemon):
    return daemon.docker


@pytest.fixture(scope="module")
def busybox(daemon):
    """busybox:latest in the daemon's store, built here from the embedded busybox (no network)."""
    from minidocker.image import builtin, layout

    saved = os.environ["MINIDOCKER_ROOT"]
    os.environ["MINIDOCKER_ROOT"] = daemon.root
    try:
        builtin.busybox(layout.Layout())
    finally:
        os.environ["MINIDOCKER_ROOT"] = saved
    return "busybox"
