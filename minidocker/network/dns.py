"""Names that resolve on a user network: one DNS responder per network (see docs/04-networks.md#dns).

On a user network a container finds another by its name (`ping db`), by an alias
(`--network-alias`, `network connect --alias`) or by its short id (12 hex digits). Something must
answer those queries; Docker puts a resolver inside the engine (the "embedded DNS server"), podman
starts aardvark-dns. Both only know the network's own names and pass every other name on to the
host's resolvers. The default `bridge` network has none: there a container only has the host's
resolvers, which know nothing of containers (Docker keeps that legacy behaviour, and so do we).

Where the responder listens. Docker's containers all name 127.0.0.11 in /etc/resolv.conf: that
address is inside each container's own network namespace, so dockerd opens a socket in every
container's namespace and adds NAT rules there to reach it. That is per-container magic. We do as
aardvark-dns does instead: one process per network, listening on the network's gateway address
(the bridge's own address, port 53, UDP and TCP), which every container on the network already
reaches over the bridge; each container's /etc/resolv.conf names it (resolver_ip()). One process
per network, no rule in any container.

A side gain: the responder lives in the host's namespace, so it can forward to a resolver on the
host's loopback (systemd-resolved's 127.0.0.53) that a container could never reach; Docker copies
the host's resolv.conf into a container without its 127.x servers for that reason, and since
Docker 26 its embedded server forwards to them from the host's namespace, as we do.

The process and its life. The responder starts with the network's first running container and
stops with its last. The hooks below are called by the engine when a container's endpoint comes up
or goes down, and by every command (cleanup_stale) to repair what a SIGKILL left: each one
*reconciles*: it works out the names the network should answer from the networks store, writes
them to the records file the responder re-reads, and starts or stops the responder to match. So a
killed responder is started again by the next command, and a killed container's names go away.

The wire format is dnslib's (pinned in pyproject.toml): a small, pure-Python library that parses
and packs DNS messages and nothing more, which is all a responder needs; dnspython is the larger
standard for a DNS *client* (resolvers, zones, DNSSEC). The answer itself, the lesson, is
dns_responder.answer().
"""

import contextlib
import errno
import fcntl
import os
import sys
import time

from minidocker import store
from minidocker.errors import MinidockerError

PORT = 53
RESPONDER = "minidocker.network.dns_responder"
BIND_PATIENCE = 2.0  # seconds; the responder looks at its records file every second


def resolver_ip(net: dict) -> "str | None":
    """The address a container on `net` names in /etc/resolv.conf, or None for the host's."""
    options = net.get("Options") or {}
    if net.get("Name") == "bridge" or options.get("com.docker.network.bridge.default_bridge") == "true":
        return None  # Docker's default bridge resolves no container names
    if net.get("Driver", "bridge") != "bridge":
        return None
    for config in (net.get("IPAM") or {}).get("Config") or []:
        gateway = config.get("Gateway", "")
        if gateway and ":" not in gateway:  # IPv4 only, as the rest of chapter 04
            return gateway
    return None


def container_started(net: dict, container_id: str) -> None:
    """A container's endpoint on `net` is up (its address is in net["Containers"])."""
    if resolver_ip(net) is not None:
        reconcile(net["Id"])


def container_stopped(net: dict, container_id: str) -> None:
    """A container's endpoint on `net` is going away: its names go, and the responder with the last."""
    if resolver_ip(net) is not None:
        reconcile(net["Id"], leaving=container_id)


def network_removed(net: dict) -> None:
    """A network is being removed: its responder stops now, and is waited for, so that nothing
    outlives `network rm` and the gateway's port 53 is free for a network that reuses the subnet."""
    if os.path.isdir(_dir(net["Id"])):
        with _locked(net["Id"]) as d:
            _stop(d)


def cleanup_stale() -> None:
    """Repair after a SIGKILL: a network whose responder should run but does not is reconciled
    (the responder started again if its containers still run). Cheap when all is well: a listdir,
    and a look at /proc per running responder. (Containers that died are the engine's sweep's:
    it calls container_stopped for each.)"""
    base = os.path.join(store.root(), "networks")
    for network_id in os.listdir(base) if os.path.isdir(base) else ():
        d = _dir(network_id)
        if os.path.exists(os.path.join(d, "records.json")) and _responder_pid(d) is None:
            reconcile(network_id)


# --8<-- [start:names]
def name_table(members: list[dict]) -> dict[str, list[str]]:
    """Every name the network answers, lower case, to its addresses: a container's name, its short
    id and its aliases. An alias that several containers share has all their addresses (as
    Docker does: a poor man's load balancing, the client takes the first)."""
    table: dict[str, list[str]] = {}
    for m in members:
        for name in (m["name"], m["id"][:12], *m["aliases"]):
            addresses = table.setdefault(name.lower(), [])
            if m["ip"] not in addresses:
                addresses.append(m["ip"])
    return table
# --8<-- [end:names]


def upstreams() -> list[tuple[str, int]]:
    """The resolvers other names are forwarded to: $MINIDOCKER_DNS_UPSTREAM (`IP[:PORT],...`, tests
    point it at a fake server on 127.0.0.1), else the host's /etc/resolv.conf `nameserver`s."""
    spec = os.environ.get("MINIDOCKER_DNS_UPSTREAM")
    if spec is not None:
        entries = [e.strip() for e in spec.split(",") if e.strip()]
    else:
        try:
            with open("/etc/resolv.conf") as f:
                entries = [line.split()[1] for line in f if line.split()[:1] == ["nameserver"] and len(line.split()) > 1]
        except OSError:
            entries = []
    servers = []
    for entry in entries:
        host, port = entry, PORT
        if entry.startswith("["):  # [::1]:5353
            host, _, rest = entry[1:].partition("]")
            port = int(rest.lstrip(":") or PORT)
        elif entry.count(":") == 1:  # 127.0.0.1:5353
            host, port = entry.split(":")[0], int(entry.split(":")[1])
        servers.append((host, port))
    return servers


# ---------------------------------------------------------------------------------------------
# Reconciling: the records file and the responder follow the network's running containers

def _dir(network_id: str) -> str:
    return os.path.join(store.root(), "networks", network_id, "dns")


@contextlib.contextmanager
def _locked(network_id: str):
    """One reconciler per network at a time: two containers starting at once must not start two
    responders (the second bind would fail) nor write each other's names away."""
    path = _dir(network_id)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield path


def reconcile(network_id: str, leaving: "str | None" = None) -> None:
    """Make the records file and the responder match the network's running containers now."""
    from minidocker.network import networks

    try:
        net = networks.get(network_id)
    except MinidockerError:
        net = None  # removed: nothing may answer for it
        if not os.path.isdir(_dir(network_id)):
            return  # and its directory gone with it: do not make it again
    with _locked(network_id) as d:
        members = _members(net, leaving) if net else []
        records = os.path.join(d, "records.json")
        if not members:
            _stop(d)
            return
        content = {"names": name_table(members), "upstreams": _upstreams_of(net, records)}
        store.write_json(records, content)  # the responder re-reads it (a new inode each time)
        if _responder_pid(d) is None:
            _start(resolver_ip(net), d)


def _members(net: dict, leaving: "str | None") -> list[dict]:
    """The network's running containers: {id, name, ip, aliases}, from its endpoints (the
    network's `Containers` in inspect, plus each endpoint's aliases)."""
    from minidocker.network import networks

    return [{"id": cid, "name": e["Name"].lstrip("/"), "ip": e["IPv4Address"].split("/")[0],
             "aliases": list(e.get("Aliases") or [])}
            for cid, e in networks.endpoints_of(net).items() if cid != leaving]


def _upstreams_of(net: dict, records: str) -> list:
    """An --internal network's traffic never leaves it, its queries neither. The upstreams are
    chosen when the responder first starts and kept: a later command (cleanup_stale restarting
    it) may run with another environment."""
    if net.get("Internal"):
        return []
    try:
        return store.read_json(records)["upstreams"]
    except (OSError, ValueError, KeyError):
        return [list(server) for server in upstreams()]


# --8<-- [start:start]
def _start(gateway: str, d: str) -> None:
    """Bind the sockets here, then hand them to a new responder process (as systemd's socket
    activation does): a bind error is reported by the command that caused it, and a query sent
    before the responder is ready waits in the socket's queue instead of being refused."""
    import socket  # here, not at the top: every command's stale sweep imports this module
    import subprocess
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart despite TIME_WAIT
        _bind(udp, gateway)
        _bind(tcp, gateway)
        tcp.listen(16)
        argv = [sys.executable, "-m", RESPONDER, os.path.join(d, "records.json"), str(udp.fileno()), str(tcp.fileno())]
        # Fork twice: the responder must belong to no command or supervisor (it outlives them all:
        # the first container's supervisor may exit long before the last container does).
        middle = os.fork()
        if middle == 0:
            code = 1
            try:
                os.setsid()  # no terminal: a ^C in the shell that ran `run` must not reach it
                with open(os.path.join(d, "responder.log"), "ab") as log:
                    responder = subprocess.Popen(argv, pass_fds=(udp.fileno(), tcp.fileno()), cwd="/",
                                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log)
                store.write_text(os.path.join(d, "responder.pid"), str(responder.pid))
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(middle, 0)
    except OSError as e:
        raise MinidockerError(f"cannot serve DNS on {gateway}:{PORT}: {e.strerror}", _holders_of_the_port()) from e
    finally:
        udp.close()  # the responder has its own copies now
        tcp.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise MinidockerError("the network's DNS responder did not start", f"see {d}/responder.log")
# --8<-- [end:start]


def _bind(sock, address: str) -> None:
    """Bind to address:53, waiting a little while it is taken: a removed network's responder
    lets its port go within a second of its records file vanishing, and a new network (in this
    root or another) may get the same subnet, so the same gateway address, at once."""
    deadline = time.monotonic() + BIND_PATIENCE
    while True:
        try:
            return sock.bind((address, PORT))
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _holders_of_the_port() -> str:
    """The hint for a port 53 that is taken: who holds it, as `ss -p` shows (another DNS server
    listening on all addresses, as dnsmasq may; or a responder that has not let go yet)."""
    import subprocess

    hint = "is another DNS server listening on all addresses, port 53? (ss -lunp 'sport = 53')"
    try:
        held = subprocess.run(["ss", "-Hlnup", f"sport = :{PORT}"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return hint
    sockets = ["; ".join(line.split()[3::2]) for line in held.splitlines()]  # local address; users:((...))
    return f"{hint}; now held by: {' | '.join(sockets)}" if sockets else hint


def _responder_pid(d: str) -> "int | None":
    """The pid of this network's responder if it runs (a pid file may outlive its process, and
    the pid may since belong to another: check it is ours)."""
    try:
        with open(os.path.join(d, "responder.pid")) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as f:
            running = f.read().rpartition(")")[2].split()[0] != "Z"  # a zombie has exited
    except (OSError, ValueError, IndexError):
        return None
    ours = RESPONDER.encode() in argv and os.path.join(d, "records.json").encode() in argv
    return pid if ours and running else None


def _stop(d: str) -> None:
    """Stop the responder and wait until it is gone, so that its port is free for the next one."""
    pid = _responder_pid(d)
    for name in ("records.json", "responder.pid"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(d, name))
    if pid is None:
        return
    import select
    import signal

    # Without its records file the responder exits by itself within a second; a signal is faster.
    # A pidfd names the process itself, not its number, which a new process may take once ours
    # has gone; it becomes readable when the process exits (its sockets closed by then).
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        select.select([pidfd], [], [], 5)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)
