"""Published ports: `-p`/`-P` as the docker CLI sends them, host ports held, `port` and inspect's view.

Three moments, three places, as in Docker:

    docker CLI   -p 127.0.0.1:8080:80/tcp  ->  Config.ExposedPorts    {"80/tcp": {}}
                                               HostConfig.PortBindings {"80/tcp": [{"HostIp": "127.0.0.1",
                                                                                    "HostPort": "8080"}]}
                 -P                        ->  HostConfig.PublishAllPorts true (every ExposedPorts entry)
    start        the engine picks the host ports (an empty or "0" HostPort: any free one, as the
                 kernel hands them out from net.ipv4.ip_local_port_range), HOLDS them (a bound
                 socket in the supervisor), and the firewall adds a DNAT rule for each
    inspect      NetworkSettings.Ports {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                        "443/tcp": null}   (exposed, not published)

Holding the port matters: with DNAT alone nothing on the host owns port 8080, so a second
container, or any program, could take it and one of the two would silently lose its traffic.
Docker's docker-proxy listens on it; we bind a socket without listening, which reserves the port
(bind fails with EADDRINUSE for anyone else: Docker's "port is already allocated") and takes no
traffic, because the DNAT rule rewrites every packet before it could reach a local socket. The
socket lives in the container's supervisor, so the kernel frees the port when the supervisor
dies, however it dies. See docs/04-networks.md#published-ports.
"""

import json
import os
import re

from minidocker.errors import MinidockerError

PROTOCOLS = ("tcp", "udp", "sctp")


# ---------------------------------------------------------------------------------------------
# The docker CLI's side: -p specs to ExposedPorts and PortBindings

def _port_range(text: str, what: str) -> tuple[int, int]:
    """"80" -> (80, 80), "8000-8010" -> (8000, 8010); a host port may be 0 (any free one)."""
    match = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", text)
    low = 0 if what == "hostPort" else 1
    if not match:
        raise MinidockerError(f"invalid {what}: {text}", "a port is a number 1-65535, or a range such as 8000-8010")
    start, end = int(match[1]), int(match[2] or match[1])
    if not (low <= start <= end <= 65535):
        raise MinidockerError(f"invalid {what}: {text}", "a port is a number 1-65535, or a range such as 8000-8010")
    return start, end


def _split(spec: str) -> tuple[str, str, str]:
    """"[IP:][HOSTPORT:]CONTAINERPORT" -> (ip, host port, container port), split from the right
    as the docker CLI does, so an IPv6 address may keep its colons ("[::1]:8080:80")."""
    rest, _, container = spec.rpartition(":")
    ip, _, host = rest.rpartition(":")
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    return ip, host, container


# --8<-- [start:parse-publish]
def parse_publish(specs: list[str]) -> tuple[dict, dict]:
    """`-p` values -> (Config.ExposedPorts, HostConfig.PortBindings), as the docker CLI builds them:

        -p 80                 {"80/tcp": [{"HostIp": "", "HostPort": ""}]}        any free host port
        -p 8080:80/udp        {"80/udp": [{"HostIp": "", "HostPort": "8080"}]}
        -p 127.0.0.1::80      {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
        -p 8000-8001:80-81    80/tcp -> 8000, 81/tcp -> 8001
        -p 8000-8010:80       {"80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}]}  the first free one
    """
    exposed, bindings = {}, {}
    for spec in specs:
        body, _, proto = spec.partition("/")
        proto = proto.lower() or "tcp"
        if proto not in PROTOCOLS:
            raise MinidockerError(f"invalid proto: {proto}", "a published port is tcp, udp or sctp")
        ip, host, container = _split(body)
        if ip:
            import ipaddress  # here: only an address in -p needs it

            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise MinidockerError(f"invalid IP address: {ip}", "the host address to publish on, e.g. 127.0.0.1") from None
        c_start, c_end = _port_range(container, "containerPort")
        h_start, h_end = _port_range(host, "hostPort") if host else (0, 0)
        many_hosts, many_containers = h_end > h_start, c_end > c_start
        if host and many_containers and (h_end - h_start) != (c_end - c_start):
            raise MinidockerError(f"invalid ranges specified for container and host Ports: {container} and {host}",
                                  "give as many host ports as container ports")
        for i, port in enumerate(range(c_start, c_end + 1)):
            if not host:
                host_port = ""
            elif many_hosts and not many_containers:
                host_port = host  # a range to pick one free port from, at start
            else:
                host_port = str(h_start + i)
            key = f"{port}/{proto}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": host_port})
    return exposed, bindings
# --8<-- [end:parse-publish]


def parse_expose(specs: list[str]) -> dict:
    """`--expose 80[-81][/udp]` -> Config.ExposedPorts: documented, published only by -P."""
    exposed = {}
    for spec in specs:
        port, _, proto = spec.partition("/")
        proto = proto.lower() or "tcp"
        if proto not in PROTOCOLS:
            raise MinidockerError(f"invalid proto: {proto}", "an exposed port is tcp, udp or sctp")
        start, end = _port_range(port, "range format")
        exposed.update({f"{p}/{proto}": {} for p in range(start, end + 1)})
    return exposed


# ---------------------------------------------------------------------------------------------
# The engine's side, at start: which host ports, held by which sockets

def wanted(config: dict, host_config: dict) -> list[tuple[str, str, str]]:
    """(container port "80/tcp", host IP, host port spec) to publish: PortBindings, and with
    PublishAllPorts every exposed port that has no binding, on any free host port."""
    found = [(port, b.get("HostIp") or "", b.get("HostPort") or "")
             for port, binds in sorted((host_config.get("PortBindings") or {}).items(), key=_port_order)
             for b in binds or [{}]]
    if host_config.get("PublishAllPorts"):
        bound = {port for port, _, _ in found}
        found += [(port, "", "") for port in sorted(config.get("ExposedPorts") or {}, key=_port_order)
                  if port not in bound]
    return found


def _port_order(item) -> tuple[int, str]:
    port, _, proto = (item[0] if isinstance(item, tuple) else item).partition("/")
    return int(port) if port.isdigit() else 0, proto


def _socket_for(proto: str):
    import socket  # here: only a published port needs it

    kind = {"tcp": (socket.SOCK_STREAM, 0), "udp": (socket.SOCK_DGRAM, 0),
            "sctp": (socket.SOCK_STREAM, socket.IPPROTO_SCTP)}[proto]
    return socket.socket(socket.AF_INET, kind[0], kind[1])


# --8<-- [start:hold-port]
def hold(proto: str, host_ip: str, host_port: str):
    """Reserve a host port: a socket bound to it, never listening. Returns (socket, port).

    No SO_REUSEADDR: the point is that nobody else may bind it while we hold it. Port 0 asks the
    kernel for any free port, from net.ipv4.ip_local_port_range, as Docker picks ephemeral ones."""
    start, end = _port_range(host_port, "hostPort") if host_port else (0, 0)
    last_error = None
    for port in range(start, end + 1):
        sock = _socket_for(proto)
        try:
            sock.bind((host_ip, port))
            return sock, sock.getsockname()[1]
        except OSError as e:
            sock.close()
            last_error = e
    import errno

    if last_error.errno == errno.EADDRINUSE:
        what = "port is already allocated" if start == end else "all ports are allocated"
        raise MinidockerError(f"Bind for {host_ip}:{host_port} failed: {what}",
                              "publish on another host port, or stop what holds this one: see `minidocker ps`")
    raise MinidockerError(f"listen {proto}4 {host_ip}:{host_port}: bind: {os.strerror(last_error.errno).lower()}",
                          "publish on an address of this host, or on all of them (leave the IP out)")
# --8<-- [end:hold-port]


def ipv4_only(host_ip: str) -> str:
    """The address a binding is published on: "" is every IPv4 address of the host, "0.0.0.0".
    minidocker's networks are IPv4 only (Docker adds [::] when its network has IPv6)."""
    if not host_ip:
        return "0.0.0.0"
    import ipaddress

    if ipaddress.ip_address(host_ip).version != 4:
        raise MinidockerError(f"cannot publish on {host_ip}", "minidocker's networks are IPv4 only: use an IPv4 address")
    return host_ip


# ---------------------------------------------------------------------------------------------
# What inspect and `port` show: $MINIDOCKER_ROOT/containers/<id>/ports.json, written at start

def state_path(container_id: str) -> str:
    from minidocker.container import records

    return os.path.join(records.containers_dir(), container_id, "ports.json")


def save(container_id: str, ports: dict) -> None:
    from minidocker import store

    store.write_json(state_path(container_id), ports)


def forget(container_id: str) -> None:
    try:
        os.unlink(state_path(container_id))
    except FileNotFoundError:
        pass


def settings(container) -> dict:
    """NetworkSettings.Ports of a container (a records.Container): while it runs, each exposed
    port with its bindings, or null when it is not published; {} when it does not run, as Docker."""
    if not container.state.get("Running"):
        return {}
    try:
        with open(os.path.join(container.dir, "ports.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {port: None for port in container.record["Config"].get("ExposedPorts") or {}}


def summary(container) -> list[dict]:
    """GET /containers/json's Ports: [{"IP", "PrivatePort", "PublicPort", "Type"}], what `ps` shows."""
    rows = []
    for port, binds in settings(container).items():
        number, _, proto = port.partition("/")
        for b in binds or [{}]:
            row = {"PrivatePort": int(number), "Type": proto}
            if b:
                row.update(IP=b["HostIp"], PublicPort=int(b["HostPort"]))
            rows.append(row)
    return rows


def ps_column(rows: list[dict]) -> str:
    """`ps`'s PORTS: "0.0.0.0:8080->80/tcp, 443/tcp"."""
    return ", ".join(f"{r['IP']}:{r['PublicPort']}->{r['PrivatePort']}/{r['Type']}" if "PublicPort" in r
                     else f"{r['PrivatePort']}/{r['Type']}" for r in sorted(rows, key=lambda r: (r["PrivatePort"], r["Type"])))


def port_lines(name: str, ports: dict, private: str | None = None) -> list[str]:
    """`docker port CONTAINER [PRIVATE_PORT[/PROTO]]`: "80/tcp -> 0.0.0.0:8080" for every binding,
    or only "0.0.0.0:8080" for the one port asked about."""
    if private is None:
        lines = [f"{port} -> {b['HostIp']}:{b['HostPort']}" for port, binds in ports.items() for b in binds or []]
        return sorted(lines, key=lambda line: (_port_order(line.split(" ")[0]), line))
    number, _, proto = private.partition("/")
    if not number.isdigit() or int(number) > 65535:
        raise MinidockerError(f"Error: invalid port ({number})", "give a port number, e.g. 80 or 80/tcp", exit_code=1)
    binds = ports.get(f"{int(number)}/{proto or 'tcp'}")
    if not binds:
        raise MinidockerError(f"No public port '{private}' published for {name}",
                              f"see `minidocker port {name}`", exit_code=1)
    return [f"{b['HostIp']}:{b['HostPort']}" for b in binds]
