"""A container's /etc/hosts, /etc/resolv.conf and /etc/hostname, as Docker makes them.

The image's own files would be wrong: its /etc/hosts does not know the container's address, and
its resolv.conf names whatever the image's builder used. Docker writes three files per container
in the container's directory and bind-mounts each over the image's:

    $MINIDOCKER_ROOT/containers/<id>/hosts        ->  /etc/hosts
                                    /resolv.conf  ->  /etc/resolv.conf
                                    /hostname     ->  /etc/hostname

The mounts are in the OCI spec from `create` on (mounts()); the content is written at each start
(write()), once the addresses are known. A bind mount of a file, not a copy: the engine can
rewrite the file later (a `network connect` adds a line), and the container sees it at once.
"""

import os


FILES = ("hosts", "resolv.conf", "hostname")
# Docker's own defaults, when the host has no nameserver a container could reach.
FALLBACK_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]


def mounts(container_dir: str) -> list[dict]:
    return [{"destination": f"/etc/{name}", "type": "bind", "source": os.path.join(container_dir, name),
             "options": ["rbind", "rprivate"]} for name in FILES]


def hosts(hostname: str, addresses: list[str], extra_hosts: list[str], aliases: list[str] = ()) -> str:
    """Docker's /etc/hosts: loopback, the IPv6 names, --add-host entries, then our own address."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
             "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]
    for entry in extra_hosts:  # "name:ip", as HostConfig.ExtraHosts holds them
        name, _, ip = entry.partition(":")
        lines.append(f"{ip}\t{name}")
    for ip in addresses:
        lines.append("\t".join([ip, hostname, *aliases]))
    return "\n".join(lines) + "\n"


def host_resolv_conf(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of the host's resolv.conf."""
    servers, search, options = [], [], []
    try:
        with open(path) as f:
            for line in f:
                words = line.split()
                if words[:1] == ["nameserver"] and len(words) > 1:
                    servers.append(words[1])
                elif words[:1] in (["search"], ["domain"]):
                    search = words[1:]
                elif words[:1] == ["options"]:
                    options += words[1:]
    except FileNotFoundError:
        pass
    return servers, search, options


def resolv_conf(dns: list[str], dns_search: list[str], resolver: str | None, host_network: bool) -> str:
    """Docker's rules: --dns and --dns-search replace the host's; on a user network the
    network's own resolver is the nameserver (dns.py); else the host's nameservers, without the
    loopback ones (127.0.0.53 is the *host's* loopback, unreachable from the container's
    namespace), or Google's when none is left."""
    servers, search, options = host_resolv_conf()
    if dns:
        servers = list(dns)
    elif resolver:
        servers, options = [resolver], ["ndots:0"]
    elif not host_network:
        servers = [s for s in servers if not s.startswith("127.") and s != "::1"] or FALLBACK_NAMESERVERS
    search = list(dns_search) or search
    lines = [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def write(container_dir: str, hostname: str, addresses: list[str], host_config: dict,
          resolver: str | None = None, aliases: list[str] = ()) -> None:
    host_network = host_config.get("NetworkMode") == "host"
    if host_network:
        with open("/etc/hosts") as f:  # the host's names are the container's (Docker copies it)
            content = f.read()
    else:
        content = hosts(hostname, addresses, host_config.get("ExtraHosts") or [], aliases)
    _write_in_place(os.path.join(container_dir, "hosts"), content)
    _write_in_place(os.path.join(container_dir, "resolv.conf"),
                    resolv_conf(host_config.get("Dns") or [], host_config.get("DnsSearch") or [], resolver, host_network))
    _write_in_place(os.path.join(container_dir, "hostname"), hostname + "\n")


def _write_in_place(path: str, text: str) -> None:
    """Not store.write_text's temp file and rename: a running container's bind mount holds the
    file's inode, and a rename would give the path a new inode the container never sees."""
    with open(path, "w") as f:
        f.write(text)
