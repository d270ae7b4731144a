"""Chapter 07: the daemon under load and bad input (docs/07-daemon.md#under-load).

One thread per connection: 20 clients at once each run a container (`run --rm`, as the docker
CLI's requests) while others list them, and the state stays consistent (tests/test_daemon_load.py
runs the same with the issue's 50, too slow for a suite a learner runs dozens of times); a client that connects
and says nothing holds only its own thread; a huge body is refused before it is read; and the
socket's mode keeps out whoever is neither root nor in the minidocker group.
"""

import json
import os
import socket
import tempfile
import threading
import time

import harness

DOCS = "docs/07-daemon.md#under-load"
SLOW_MACHINE = 600  # seconds: only a hung daemon takes this long


def run_rm(daemon, results: list) -> None:
    """`docker run --rm --network none busybox true`: create, wait (answered before start), start."""
    body = {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"AutoRemove": True, "NetworkMode": "none"}}
    status, _, created = daemon.api("POST", "/v1.43/containers/create", body, timeout=SLOW_MACHINE)
    if status != 201:
        results.append(("create", status, created))
        return
    cid = created["Id"]
    # A wait lasts as long as the machine needs for all the clients' containers (minutes on an
    # emulated lab VM): a deadline here would test the machine's speed, not the daemon.
    waiter = daemon.connection(timeout=SLOW_MACHINE)
    waiter.request("POST", f"/v1.43/containers/{cid}/wait?condition=removed")
    # The docker CLI starts only once the wait's headers are back: a request merely sent may be
    # read after the container has run and gone, and a wait for a removed container is a 404.
    waiting = waiter.getresponse()
    status, _, answer = daemon.api("POST", f"/v1.43/containers/{cid}/start", timeout=SLOW_MACHINE)
    exit_answer = json.loads(waiting.read())
    waiter.close()
    if "StatusCode" not in exit_answer:
        results.append(("wait", waiting.status, exit_answer))
        return
    results.append((cid, status, exit_answer["StatusCode"]))


def test_twenty_clients_at_once(daemon, busybox):
    many_clients_at_once(daemon, 20)


def many_clients_at_once(daemon, clients: int) -> None:
    results, listings = [], []
    stop = threading.Event()

    def lister():
        while not stop.is_set():
            status, _, rows = daemon.api("GET", "/v1.43/containers/json?all=1", timeout=SLOW_MACHINE)
            listings.append((status, rows))

    threads = [threading.Thread(target=run_rm, args=(daemon, results)) for _ in range(clients)]
    listers = [threading.Thread(target=lister) for _ in range(4)]
    for t in listers + threads:
        t.start()
    for t in threads:
        t.join(SLOW_MACHINE)
    stop.set()
    for t in listers:
        t.join(10)
    started = [r for r in results if r[1] == 204]
    assert len(results) == clients and len(started) == clients and all(r[2] == 0 for r in started), \
        f"every client's container ran and exited 0 ({DOCS}): {[r for r in results if r[1] != 204 or r[2] != 0][:3]}"
    assert len({r[0] for r in started}) == clients, f"{clients} containers, {clients} different ids"
    ours = {r[0] for r in started}
    for status, rows in listings:
        assert status == 200 and isinstance(rows, list), f"GET /containers/json under load: {status} {rows!r:.200}"
        assert {row["Id"] for row in rows} <= ours, "a listing shows only containers that exist"
    _, _, left = daemon.api("GET", "/v1.43/containers/json?all=1")
    assert [c["Id"] for c in left if c["Id"] in ours] == [], f"run --rm removed every container ({DOCS})"
    assert not [e for e in os.listdir(os.path.join(daemon.root, "containers")) if not e.startswith(".")], \
        "no container directory is left on disk"


def test_a_silent_client_blocks_nobody(daemon):
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(daemon.sock)  # connects, then says nothing
    half = socket.socket(socket.AF_UNIX)
    half.connect(daemon.sock)
    half.sendall(b"POST /v1.43/containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")  # and vanishes
    try:
        start = time.monotonic()
        status, _, _ = daemon.api("GET", "/_ping")
        assert status == 200 and time.monotonic() - start < 5, f"a silent client must not block others ({DOCS})"
    finally:
        half.close()
        silent.close()
    assert daemon.api("GET", "/_ping")[0] == 200, "the daemon lives on after a client vanished mid-request"


def test_a_huge_body_is_refused_unread(daemon):
    conn = daemon.connection(timeout=10)
    conn.putrequest("POST", "/v1.43/containers/create")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(64 * 1024**3))  # 64 GiB announced, none sent
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status in (400, 413), f"a huge body gets 413 before it is read ({DOCS}), got {resp.status}"
    conn.close()
    status, _, body = daemon.api("GET", "/v1.43/containers/..%2F..%2Fetc/json")
    assert status in (400, 404), f"a path trick is refused: {status} {body}"


def test_nobody_cannot_connect(daemon):
    """The socket's own mode is the guard: tested through a hard link in a directory nobody may
    enter, so that only the socket's mode and owner decide (the fixture's directory is root's)."""
    mode = os.stat(daemon.sock).st_mode & 0o777
    assert mode in (0o600, 0o660), f"the socket is 0660 root:minidocker as docker.sock, or 0600: {oct(mode)}"
    open_dir = tempfile.mkdtemp(prefix="md-sock-")
    os.chmod(open_dir, 0o755)
    link = os.path.join(open_dir, "md.sock")
    os.link(daemon.sock, link)
    try:
        out = harness.run_cli_as_nobody("-H", f"unix://{link}", "ps")
        assert out.returncode == 125 and "permission denied" in out.stderr, \
            f"a client that is neither root nor in the minidocker group cannot connect ({DOCS}) {harness.explain(out)}"
        assert harness.run_cli("-H", f"unix://{link}", "ps").returncode == 0, "root can, through the same link"
    finally:
        os.unlink(link)
        os.rmdir(open_dir)
