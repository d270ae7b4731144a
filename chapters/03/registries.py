"""Real registries for the tests: Debian's `docker-registry` (the CNCF distribution registry,
the same program as Docker's `registry:2` image) on 127.0.0.1, with a config of our own (the
packaged one is broken) and its storage in a temporary directory.

- `open_registry()`: no auth at all;
- `open_registry(auth="basic")`: htpasswd Basic auth (`htpasswd -Bbn`, bcrypt as the registry wants);
- `open_registry(auth="token")`: Docker's token auth. The test is the token server: an
  http.server on 127.0.0.1 that checks Basic credentials and answers with a JWT it signs (RS256,
  with the `openssl` CLI), whose `x5c` header carries a self-made certificate; the registry trusts
  that certificate (its `rootcertbundle`). Anonymous requests get a token that grants nothing,
  as Docker Hub does for a private repository.

Every one is a context manager: the registry process and the token server are stopped, the
temporary directory removed, whatever the test did.
"""

import base64
import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

REGISTRY = "/usr/bin/docker-registry"
USER, PASSWORD = "md-user", "md-secret"
SERVICE, ISSUER = "md-test-registry", "md-test-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """The realm of the registry's Bearer challenge: GET /token?service=&scope=... -> a JWT."""

    def __init__(self, workdir: str):
        self.key, self.cert = os.path.join(workdir, "key.pem"), os.path.join(workdir, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
                        "-out", self.cert, "-days", "2", "-subj", "/CN=md-token-issuer"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = [base64.b64encode(der).decode()]  # x5c: standard base64 DER, not base64url
        self.requests: list[dict] = []  # what clients asked for, for the tests to look at
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.answer(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_port}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        # RS256 = RSASSA-PKCS1-v1_5 over SHA-256: exactly what `openssl dgst -sha256 -sign` makes.
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input.encode(),
                                   check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(signature)}"

    def answer(self, handler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        given = handler.headers.get("Authorization", "")
        user = None
        if given.startswith("Basic "):
            name, _, password = base64.b64decode(given[6:]).decode().partition(":")
            if (name, password) != (USER, PASSWORD):
                body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]})
                return self._send(handler, 401, body.encode())
            user = name
        self.requests.append({"user": user, "scope": query.get("scope", []), "service": query.get("service")})
        access = []
        for scope in query.get("scope", []) if user else []:  # anonymous: a token that grants nothing
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        token = self.sign({"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                           "iat": now, "jti": os.urandom(8).hex(), "access": access})
        self._send(handler, 200, json.dumps({"token": token, "expires_in": 300}).encode())

    @staticmethod
    def _send(handler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class LocalRegistry:
    """A running docker-registry: `.host` is "127.0.0.1:PORT"."""

    def __init__(self, auth: str | None = None):
        self.dir = tempfile.mkdtemp(prefix="md-registry-")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.token_server = None
        self.process = None
        try:
            self._start(auth)
        except BaseException:
            self.close()
            raise

    def _start(self, auth: str | None) -> None:
        auth_yaml = ""
        if auth == "basic":
            line = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True,
                                  text=True).stdout.strip()
            with open(os.path.join(self.dir, "htpasswd"), "w") as f:
                f.write(line + "\n")
            auth_yaml = f"auth:\n  htpasswd:\n    realm: md-basic-realm\n    path: {self.dir}/htpasswd\n"
        elif auth == "token":
            self.token_server = TokenServer(self.dir)
            auth_yaml = (f"auth:\n  token:\n    realm: {self.token_server.realm}\n    service: {SERVICE}\n"
                         f"    issuer: {ISSUER}\n    rootcertbundle: {self.token_server.cert}\n")
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.dir}/storage\n  delete:\n    enabled: true\n"
                    f"http:\n  addr: {self.host}\n{auth_yaml}")
        # Not this test session's MINIDOCKER_ROOT in its environment: the leak check would count
        # the registry as a process some test forgot.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MINIDOCKER")}
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")
        self.process = subprocess.Popen([REGISTRY, "serve", config], stdout=self.log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                return
            except urllib.error.HTTPError:  # 401: it answers, and wants auth
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    with open(self.log.name, errors="replace") as f:
                        raise RuntimeError(f"docker-registry did not start: {f.read()[-2000:]}")
                time.sleep(0.02)

    def close(self) -> None:
        if self.process and self.process.poll() is None:
            # SIGKILL, not SIGTERM: the registry would drain its connections for a while, and its
            # storage is thrown away next anyway.
            self.process.kill()
            self.process.wait()
        if getattr(self, "log", None):
            self.log.close()
        if self.token_server:
            self.token_server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def open_registry(auth: str | None = None):
    registry = LocalRegistry(auth)
    try:
        yield registry
    finally:
        registry.close()


class FakeRegistry:
    """A registry that misbehaves on purpose, which a real one will not: it serves one image
    (`blobs`: digest -> bytes, `manifest` bytes under the tag "latest"), except that the blob
    `fault_digest` is served per `fault`:
    - "corrupt": other bytes of the same length (the digest will not match);
    - "truncated": the Content-Length of the whole, half the bytes, then the connection closed;
    - "missing": 404 BLOB_UNKNOWN;
    - "stall": half the bytes, then nothing until close() (for a pull killed half-way);
      `.stalled` is set once the half is sent."""

    def __init__(self, manifest: bytes, media_type: str, blobs: dict, fault: str = "", fault_digest: str = ""):
        self.stalled, self.release = threading.Event(), threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                fake.answer(self, manifest, media_type, blobs, fault, fault_digest)

            do_HEAD = do_GET

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, h, manifest, media_type, blobs, fault, fault_digest) -> None:
        path = h.path.split("?")[0]
        if path == "/v2/":
            return self._send(h, 200, b"{}")
        if path.endswith("/manifests/latest"):
            return self._send(h, 200, manifest, media_type)
        digest = path.rsplit("/", 1)[-1]
        if digest not in blobs or (digest == fault_digest and fault == "missing"):
            body = json.dumps({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]})
            return self._send(h, 404, body.encode())
        data = blobs[digest]
        if digest != fault_digest or fault not in ("corrupt", "truncated", "stall"):
            return self._send(h, 200, data, "application/octet-stream")
        if fault == "corrupt":
            return self._send(h, 200, bytes(b ^ 0xFF for b in data[:64]) + data[64:], "application/octet-stream")
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[: len(data) // 2])
        h.wfile.flush()
        if fault == "stall":
            self.stalled.set()
            self.release.wait(30)
        h.close_connection = True

    @staticmethod
    def _send(h, status: int, body: bytes, content_type: str = "application/json") -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
