"""Record the JSON body the real docker CLI sends for `docker create`, with no dockerd running.

The docker CLI is only an HTTP client of the Engine API: it talks to whatever DOCKER_HOST names.
We point it at a unix socket served by a fake engine (stdlib http.server, in a thread) that
records every request and answers just enough for `docker create` to succeed.
    record_create(["-m", "64m", "busybox", "true"]) -> {"name": None, "path": ..., "body": {...}}
    python tests/docker_cli.py create -m 64m busybox true     # prints every request as JSON

What the docker CLI sends (docker CLI 28.2.2, DOCKER_API_VERSION=1.43)
---------------------------------------------------------------------
Requests: `HEAD /_ping`, then `POST /v1.43/containers/create[?name=N]` (Content-Type
application/json). `--name ""` sends no query at all. The CLI checks no name characters
("bad name!" and "/web" are sent as they are): name rules are the engine's job.
Default body (`docker create busybox`), top level = the container Config:
    Hostname "", Domainname "", User "", AttachStdin false, AttachStdout TRUE, AttachStderr TRUE,
    Tty false, OpenStdin false, StdinOnce false, Env null, Cmd null, Image "busybox",
    Volumes {}, WorkingDir "", Entrypoint null, OnBuild null, Labels {},
    HostConfig {...}, NetworkingConfig {"EndpointsConfig": {"default": {<all empty/null>}}}
    Absent: ExposedPorts, Healthcheck, StopSignal, StopTimeout, Shell, MacAddress, ArgsEscaped.
HostConfig: Binds null, ContainerIDFile "", LogConfig {"Type": "", "Config": {}},
    NetworkMode "default", PortBindings {}, RestartPolicy {"Name": "no", "MaximumRetryCount": 0},
    AutoRemove false, VolumeDriver "", VolumesFrom null, ConsoleSize [0, 0], CapAdd null,
    CapDrop null, CgroupnsMode "", Dns [], DnsOptions [], DnsSearch [], ExtraHosts null,
    GroupAdd null, IpcMode "", Cgroup "", Links null, OomScoreAdj 0, PidMode "", Privileged false,
    PublishAllPorts false, ReadonlyRootfs false, SecurityOpt null, UTSMode "", UsernsMode "",
    ShmSize 0, Isolation "", CpuShares 0, Memory 0, NanoCpus 0, CgroupParent "", BlkioWeight 0,
    BlkioWeightDevice/BlkioDeviceReadBps/WriteBps/ReadIOps/WriteIOps [], CpuPeriod 0,
    CpuQuota 0, CpuRealtimePeriod 0, CpuRealtimeRuntime 0, CpusetCpus "", CpusetMems "",
    Devices [], DeviceCgroupRules null, DeviceRequests null, MemoryReservation 0, MemorySwap 0,
    MemorySwappiness -1, OomKillDisable false, PidsLimit 0 (sent, not absent), Ulimits [],
    CpuCount 0, CpuPercent 0, IOMaximumIOps 0, IOMaximumBandwidth 0, MaskedPaths null,
    ReadonlyPaths null. Absent: Mounts, Init, Runtime, Tmpfs, Sysctls, StorageOpt, Annotations.
Per flag (only the fields that change from the default):
    busybox sh -c 'echo hi'  Cmd ["sh", "-c", "echo hi"]; everything after IMAGE is Cmd, even
                             flags and a literal "--" (`busybox -m 64m` -> Cmd ["-m", "64m"])
    -e A=1 -e X=             Env ["A=1", "X="] (list of strings, in flag order; "A=b=c" as is)
    -e NAME                  Env ["NAME=<value>"] if NAME is in the CLI's environment, else the
                             bare ["NAME"] is sent (what to do with it is the engine's choice)
    -w /dir, -w rel          WorkingDir "/dir", "rel" (not checked client-side; -w "" = default)
    -u 1000, -u 1000:1000    User "1000", "1000:1000" (a string; names pass through too)
    -h host                  Hostname "host" (not checked: "bad host!" is sent)
    -i                       AttachStdin, OpenStdin, StdinOnce all true
    -t                       Tty true only (ConsoleSize stays [0, 0] with no terminal); -it: both
    --entrypoint /bin/sh     Entrypoint ["/bin/sh"] (--entrypoint "" -> [""])
    --read-only / --init     HostConfig.ReadonlyRootfs true / HostConfig.Init true (else absent)
    --rm                     HostConfig.AutoRemove true
    -m 64m|64M|64mb|64MiB    HostConfig.Memory 67108864: binary units, case-insensitive, optional
                             "b"/"ib"; -m 100 -> 100 bytes; -m 1.5g -> 1610612736; fractional
                             bytes truncate (-m 1.5 -> 1); -m 4k is sent (the 6MB floor is the
                             engine's); -m 0 = default; huge values wrap around
                             (-m 9999999999999999999g -> -9223372036854775808!)
    --cpus 0.5|1.5|0.001     HostConfig.NanoCpus 500000000 | 1500000000 | 1000000 (an int);
                             "1/2" and ".5" parse too; --cpus -1 is sent as -1000000000
    --pids-limit 20|-1       HostConfig.PidsLimit 20 | -1; --pids-limit 0 = default 0;
                             -5 is sent; Go integer syntax, so 0x10 -> 16
docker run: same create body, except `run -d` sends AttachStdout/AttachStderr false (`-d -i`:
    OpenStdin true, AttachStdin/StdinOnce false). Then a foreground run POSTs
    /containers/ID/attach?stderr=1&stdout=1&stream=1 (an HTTP upgrade) before the rest; `run -d`
    POSTs /containers/ID/wait?condition=next-exit, then /containers/ID/start. `run -t` with a
    stdin that is no terminal fails client-side: "the input device is not a TTY" (exit 1).
Refused client-side (nothing POSTed; exit 125, message then usage on stderr):
    -m foo|-1|""  invalid argument "foo" for "-m, --memory" flag: invalid size: 'foo'
    --cpus abc    invalid argument "abc" for "--cpus" flag: failed to parse abc as a rational number
    --cpus 0.0000000001  invalid argument "0.0000000001" for "--cpus" flag: value is too precise
    --pids-limit abc|1.5  ... flag: strconv.ParseInt: parsing "abc": invalid syntax
    -e "" / -e =x invalid argument "=x" for "-e, --env" flag: invalid environment variable: =x
    --rm --restart always   docker: conflicting options: cannot specify both --restart and --rm
  and with exit 1: no IMAGE ("'docker create' requires at least 1 argument"), an upper-case
  image ("invalid reference format: repository name (library/BusyBox) must be lowercase").
"""

import http.server
import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from urllib.parse import parse_qs, urlsplit

API_VERSION = "1.43"  # = minidocker.API_VERSION; pinned so the CLI builds /v1.43/... paths
FAKE_ID = "0123456789abcdef" * 4  # a container id is 64 hex digits


class DockerCLIError(RuntimeError):
    """The docker CLI failed; .returncode and .stderr say how."""

    def __init__(self, returncode, stderr):
        super().__init__(f"docker exited {returncode}: {stderr.strip()}")
        self.returncode, self.stderr = returncode, stderr


class _Engine(http.server.BaseHTTPRequestHandler):
    """Just enough of the Engine API for `docker create`; every request lands in server.log."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real engine: so always send Content-Length
    timeout = 5  # a connection that stalls gives up instead of holding its thread forever

    def _reply(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        # A real engine puts these on every reply; the CLI reads them from the ping.
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Ostype", "linux")
        self.send_header("Docker-Experimental", "false")
        kind = "application/json" if isinstance(body, (dict, list)) else "text/plain"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size) if size else b""
        self.server.log.append({"method": self.command, "path": self.path, "headers":
                                dict(self.headers), "body": json.loads(raw) if raw else None})
        route = urlsplit(self.path).path
        # The CLI pings before its first real request, to learn about the engine: its OS, whether
        # it is experimental, and the API version it speaks. Without DOCKER_API_VERSION the CLI
        # then "negotiates": it uses min(its own newest, the engine's), e.g. /v1.50 vs /v1.43.
        if route.endswith("/_ping"):
            self._reply(200, b"OK")
        elif route.endswith("/version"):
            self._reply(200, {"ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "Os": "linux",
                              "Arch": "amd64", "Version": "fake", "Components": []})
        elif self.command == "POST" and route.endswith("/containers/create"):
            self._reply(201, {"Id": FAKE_ID, "Warnings": []})
        elif FAKE_ID in route:  # `docker run` goes on to attach/wait/start: refuse, politely
            self._reply(500, {"message": "fake engine: it only records the create"})
        else:
            self._reply(404, {"message": f"fake engine: no route for {self.command} {self.path}"})

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, *args):  # the default prints each request to stderr
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True  # a connection the CLI left open never blocks shutdown or exit


def docker_available(min_major: int = 0):
    """True if a working `docker` CLI is on PATH (no engine is needed), of version `min_major` or
    newer ("Docker version 28.2.2, build e6534b4" is 28)."""
    exe = shutil.which("docker")
    if not exe:
        return False
    out = subprocess.run([exe, "--version"], capture_output=True, text=True)
    major = re.search(r"version (\d+)\.", out.stdout)
    return out.returncode == 0 and bool(major) and int(major.group(1)) >= min_major


def record_raw(argv, timeout=10, env=None):
    """Run `docker ARGV...` against a fresh fake engine -> (CompletedProcess, list of requests).

    Each request is {"method", "path", "headers", "body"}. `env` adds variables to the CLI's
    environment (e.g. for `-e NAME`). Raises subprocess.TimeoutExpired if the CLI hangs."""
    with tempfile.TemporaryDirectory(prefix="fake-dockerd-") as tmp:
        sock = os.path.join(tmp, "docker.sock")
        server = _Server(sock, _Engine)
        server.log = []
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            # None of the caller's docker setup may leak in: no DOCKER_CONTEXT, TLS settings...
            clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
            clean.update(env or {}, DOCKER_HOST=f"unix://{sock}",
                         DOCKER_CONFIG=os.path.join(tmp, "config"),  # ~/.docker: unread, untouched
                         DOCKER_API_VERSION=API_VERSION)  # no negotiation: always /v1.43
            proc = subprocess.run(["docker", *argv], env=clean, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        finally:
            server.shutdown()  # ends serve_forever; then close the listening socket
            server.server_close()
            thread.join(timeout=5)
        return proc, list(server.log)


def find_create(log):
    """The create request of a record_raw log as {"name", "body", "path"}, or None."""
    for req in log:
        url = urlsplit(req["path"])
        if req["method"] == "POST" and url.path.endswith("/containers/create"):
            name = parse_qs(url.query).get("name", [None])[0]
            return {"name": name, "body": req["body"], "path": req["path"]}
    return None


def record_create(args, timeout=10):
    """`docker create ARGS...` -> {"name": ?name= or None, "body": JSON body, "path": path}."""
    proc, log = record_raw(["create", *args], timeout=timeout)
    if proc.returncode != 0:
        raise DockerCLIError(proc.returncode, proc.stderr)
    request = find_create(log)
    if request is None:
        raise DockerCLIError(proc.returncode, "the CLI succeeded but never POSTed a create")
    return request


if __name__ == "__main__":
    proc, log = record_raw(sys.argv[1:])
    print(json.dumps(log, indent=2), proc.stderr, sep="\n", end="")
    sys.exit(proc.returncode)
