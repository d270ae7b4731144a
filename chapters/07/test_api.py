"""Chapter 07: the Engine API itself, over the unix socket with http.client (what `curl
--unix-socket` sends): the handshake, the stream framing, errors, bad input. See docs/07-daemon.md.
"""

import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from minidocker import API_VERSION
from minidocker.daemon import router, streams

DOCS = "docs/07-daemon.md"


def test_ping_headers_negotiate_the_version(daemon):
    for method in ("GET", "HEAD"):
        status, headers, body = daemon.api(method, "/_ping")
        assert status == 200, f"{method} /_ping answers 200 (see {DOCS}#the-handshake)"
        assert headers["Api-Version"] == API_VERSION, f"API-Version names our newest version: {dict(headers)}"
        assert headers["Ostype"] == "linux" and headers["Docker-Experimental"] == "false", dict(headers)
    assert daemon.api("GET", "/_ping")[2] == b"OK"
    status, _, version = daemon.api("GET", "/v1.41/version")
    assert status == 200 and version["ApiVersion"] == API_VERSION, f"a versioned path reaches the same handler: {version}"
    status, _, body = daemon.api("GET", "/v1.99/version")
    assert status == 400 and "too new" in body["message"], f"a version newer than ours is refused: {body}"


def test_docker_version_negotiates(docker):
    out = docker("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}")
    client, server = out.stdout.split() if out.returncode == 0 else ("", "")
    newest = docker("version", "--format", "{{.Client.DefaultAPIVersion}}").stdout.strip() or client  # the CLI's own
    agreed = min((tuple(map(int, v.split("."))) for v in (newest, API_VERSION)))  # 20.10 speaks 1.41, 28 speaks 1.50
    assert server == API_VERSION and tuple(map(int, client.split("."))) == agreed, (
        f"the docker CLI speaks the older of its API version and ours after HEAD /_ping: {out!r} (see {DOCS}#the-handshake)")


def test_frame_header():
    assert streams.frame(1, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n", f"see {DOCS}#the-stream-framing"
    assert streams.frame(2, b"x" * 300)[:8] == b"\x02\x00\x00\x00\x00\x00\x01\x2c", "the length is big-endian uint32"


@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=300)), max_size=8))
@settings(max_examples=50, deadline=None)
def test_frames_round_trip(pieces):
    data = b"".join(streams.frame(s, p) for s, p in pieces)
    assert streams.unframe(data) == pieces, f"frames read back as written (see {DOCS}#the-stream-framing)"


@pytest.mark.parametrize("pattern, path, params", [
    ("/containers/{id}/json", "/containers/web/json", {"id": "web"}),
    ("/containers/{id}/json", "/containers/web/start", None),
    ("/containers/{id}/json", "/containers//json", None),
    ("/containers/{id}/json", "/containers/a/b/json", None),
    ("/images/{name:.*}/json", "/images/library/busybox:latest/json", {"name": "library/busybox:latest"}),
    ("/_ping", "/_ping", {}), ("/_ping", "/_pingX", None), ("/_ping", "/x_ping", None),
    ("/containers/{id}/json", "/containers/a%2Fb/json", {"id": "a/b"}),
])
def test_route_patterns(pattern, path, params):
    assert router.match(router.compile_pattern(pattern), path) == params, (
        f"{pattern} against {path} (see {DOCS}#routing)")


def test_errors_are_json_with_dockers_status(daemon, busybox):
    status, headers, body = daemon.api("GET", "/v1.43/containers/md-nope/json")
    assert status == 404 and headers["Content-Type"] == "application/json" and "No such container" in body["message"], (
        f"an unknown container is a 404 with {{\"message\"}}: {status} {body} (see {DOCS}#errors)")
    assert daemon.api("GET", "/v1.43/nothing/here")[0] == 404
    status, _, body = daemon.api("POST", "/containers/create?name=md-s1-dup",
                                 {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
    assert status == 201, body
    try:
        status, _, body = daemon.api("POST", "/containers/create?name=md-s1-dup",
                                     {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
        assert status == 409 and "already in use" in body["message"], f"a taken name is a 409 conflict: {status} {body}"
    finally:
        daemon.api("DELETE", "/containers/md-s1-dup")


def _ids(daemon) -> list[str]:
    return sorted(c["Id"] for c in daemon.api("GET", "/containers/json?all=1")[2])


def test_bad_input_changes_nothing(daemon, busybox):
    before = _ids(daemon)
    status, _, body = daemon.api("POST", "/containers/create", b'{"Image": "busybox", "Cmd": [')
    assert status == 400 and "invalid JSON" in body["message"], f"malformed JSON is a 400: {status} {body}"
    status, _, body = daemon.api("POST", "/containers/create", b'[1, 2]')
    assert status == 400, f"a body that is not an object is a 400: {status} {body}"
    status, _, body = daemon.api("GET", "/containers/json?all=maybe")
    assert status == 400, f"a boolean that is not 1/true/0/false is a 400: {status} {body}"
    assert _ids(daemon) == before, "bad requests made no container"


@pytest.mark.parametrize("path", ["/containers/../../etc/passwd", "/v1.43/containers/../../../etc/json",
                                  "/containers/%2e%2e/json", "/containers/./json"])
def test_path_tricks_are_refused(daemon, path):
    # http.client sends the path as written (curl would clean it first).
    conn = daemon.connection()
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.endheaders()
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status in (400, 404) and "message" in body, (
        f"{path}: a path is a name, never a walk: {resp.status} {body} (see {DOCS}#errors)")


def test_keep_alive_and_chunked_logs(daemon, busybox):
    status, _, body = daemon.api("POST", "/containers/create",
                                 {"Image": "busybox", "Cmd": ["sh", "-c", "echo out; echo err >&2"],
                                  "HostConfig": {"NetworkMode": "none"}})
    cid = body["Id"]
    try:
        conn = daemon.connection()
        conn.request("POST", f"/containers/{cid}/start")
        assert conn.getresponse().read() == b""
        conn.request("POST", f"/containers/{cid}/wait")  # the same connection: keep-alive
        resp = conn.getresponse()
        assert json.loads(resp.read())["StatusCode"] == 0
        conn.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
        resp = conn.getresponse()
        assert resp.getheader("Transfer-Encoding") == "chunked", "logs stream in chunks"
        frames = streams.unframe(resp.read())
        conn.close()
        assert sorted(frames) == [(1, b"out\n"), (2, b"err\n")], (
            f"without a TTY, stdout is stream 1 and stderr stream 2: {frames} (see {DOCS}#the-stream-framing)")
    finally:
        daemon.api("DELETE", f"/containers/{cid}?force=1")


def test_socket_mode(daemon):
    mode = os.stat(daemon.sock).st_mode & 0o777
    assert mode in (0o660, 0o600), f"the socket is root access: 0660 (group minidocker) or 0600, not {oct(mode)}"
