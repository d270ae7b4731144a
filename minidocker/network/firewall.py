"""The firewall of minidocker's networks: outbound NAT, published ports, isolation, beside Docker.

A bridge and veths give containers a wire to each other and to the host. Everything else a
Docker network promises is packet filtering and address rewriting in netfilter, the kernel's
packet hooks, which iptables programs:

    nat    PREROUTING  (packets from outside)  ─┐
           OUTPUT      (packets from the host) ─┴─> MINIDOCKER: DNAT host port -> container IP:port
           POSTROUTING ──> MINIDOCKER-POSTROUTING: MASQUERADE what leaves a network for elsewhere
    filter FORWARD ──> MINIDOCKER-FORWARD: replies and published ports in; isolation; the rest out
                         └─> MINIDOCKER-ISOLATION-STAGE-1/-2: no user network reaches another one

**Why iptables, not nftables.** Debian 12's `iptables` is iptables-nft: the same nf_tables kernel
engine as `nft`, with the iptables language on top. It is what Docker programs, so a learner can
hold `iptables -t nat -S` of minidocker next to Docker's and see the same shapes (DOCKER ->
MINIDOCKER). nftables proper would give one atomic ruleset of our own; iptables' rules live in
the built-in chains everybody shares, so we keep ours in chains of our own and add only one jump
to each built-in chain, looked for before it is added, so that doing it twice is harmless, and
removed with the last network. Each change reads the tables once (iptables-save), and writes
what is missing in one transaction (iptables-restore --noflush), under a lock of our own: our
look-then-add must not interleave with another minidocker command's.

**Published ports reach 127.0.0.1 too.** DNAT in nat/OUTPUT catches the host's own connections,
but one from 127.0.0.1 then leaves through a bridge with a loopback source address, which the
kernel refuses ("martian") unless the outgoing device has route_localnet=1; and the container
could not answer 127.0.0.1 anyway, so POSTROUTING masquerades it to the bridge's address. Docker
does exactly this when its userland proxy is off (docker-proxy, the default, is a process per
port that copies bytes instead). We set route_localnet on our bridges only: on every interface
it would let anyone on the network send packets to the host's loopback services.

**Beside Docker.** dockerd sets the FORWARD policy to DROP: without rules of our own, no packet
would cross from a bridge of ours to anywhere. MINIDOCKER-FORWARD accepts what our networks need,
as Docker's DOCKER-FORWARD does for its own. And like dockerd, we turn on net.ipv4.ip_forward:
the host must route for the containers' traffic to leave. See docs/04-networks.md#the-firewall.

Every rule of a container carries a comment naming it and its supervisor (pid and start time):
when the supervisor died by SIGKILL, cleanup_stale() finds the rule's owner gone and removes it.
A network's rules name its bridge: once the bridge is gone, they are stale too.
"""

import fcntl
import os
import re
import shlex
import subprocess

from minidocker.errors import MinidockerError
from minidocker.network import ports as published

DNAT_CHAIN = "MINIDOCKER"
POSTROUTING_CHAIN = "MINIDOCKER-POSTROUTING"
FORWARD_CHAIN = "MINIDOCKER-FORWARD"
ISOLATION_1, ISOLATION_2 = "MINIDOCKER-ISOLATION-STAGE-1", "MINIDOCKER-ISOLATION-STAGE-2"

# Our chains, and the one rule that leads into each from a built-in chain (or from ours).
CHAINS = {"nat": (DNAT_CHAIN, POSTROUTING_CHAIN), "filter": (FORWARD_CHAIN, ISOLATION_1, ISOLATION_2)}
# Only packets addressed to one of the host's own addresses can be for a published port.
_LOCAL = ["-m", "addrtype", "--dst-type", "LOCAL"]
JUMPS = [("nat", "PREROUTING", [*_LOCAL, "-j", DNAT_CHAIN]),
         ("nat", "OUTPUT", [*_LOCAL, "-j", DNAT_CHAIN]),
         ("nat", "POSTROUTING", ["-j", POSTROUTING_CHAIN]),
         ("filter", "FORWARD", ["-j", FORWARD_CHAIN]),
         ("filter", FORWARD_CHAIN, ["-j", ISOLATION_1])]

LOCK = "/run/minidocker/iptables.lock"  # one host, one netfilter: not under $MINIDOCKER_ROOT
_held: dict[str, list] = {}  # container id -> the sockets that hold its host ports (in its supervisor)


# ---------------------------------------------------------------------------------------------
# iptables, in transactions: one iptables-save to read, one iptables-restore --noflush to write

class Ruleset:
    """Our view of the host's nat and filter tables, and the changes to make to them.

    Read once (`iptables-save`), changed here, written once (`iptables-restore --noflush`, which
    the kernel applies as one transaction: all of it or none). ~5 ms in all, where one
    `iptables` command per rule cost ~10 ms each. Use it through change(): our
    check-then-change must not interleave with another minidocker command's."""

    def __init__(self):
        proc = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True)
        out = proc.stdout + subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout
        if proc.returncode != 0:
            raise MinidockerError(f"iptables-save: {proc.stderr.strip()}", "is the iptables package installed? see `minidocker doctor`")
        self.chains = {"nat": set(), "filter": set()}
        self.rules = {"nat": [], "filter": []}  # [(chain, (words...))] in order, as they will be
        self.lines = {"nat": [], "filter": []}  # the restore input
        table = None
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":") and table in self.chains:
                self.chains[table].add(line[1:].split()[0])
            elif line.startswith("-A ") and table in self.rules:
                words = shlex.split(line)
                self.rules[table].append((words[1], tuple(words[2:])))

    def has(self, table: str, chain: str, rule) -> bool:
        return (chain, tuple(rule)) in self.rules[table]

    def of(self, table: str, chain: str) -> list[tuple]:
        return [rule for c, rule in self.rules[table] if c == chain]

    def _line(self, table: str, *words: str) -> None:
        self.lines[table].append(" ".join(f'"{w}"' if " " in w else w for w in words))

    def new_chain(self, table: str, chain: str) -> None:
        if chain not in self.chains[table]:
            self.chains[table].add(chain)
            self._line(table, f":{chain}", "-", "[0:0]")

    def add(self, table: str, chain: str, rule, first: bool = False) -> None:
        """Add a rule unless it is there already: doing it twice is harmless (idempotent)."""
        if not self.has(table, chain, rule):
            self.rules[table].insert(0 if first else len(self.rules[table]), (chain, tuple(rule)))
            self._line(table, *(["-I", chain, "1"] if first else ["-A", chain]), *rule)

    def delete(self, table: str, chain: str, rule) -> None:
        while self.has(table, chain, rule):  # every twin (two commands that raced without our lock)
            self.rules[table].remove((chain, tuple(rule)))
            self._line(table, "-D", chain, *rule)

    def ensure_chains(self) -> None:
        for table, chains in CHAINS.items():
            for chain in chains:
                self.new_chain(table, chain)
        for table, chain, rule in JUMPS:
            # First in FORWARD: a DROP or REJECT another tool put there must not see our traffic first.
            self.add(table, chain, rule, first=chain == "FORWARD")

    def remove_chains_if_unused(self) -> None:
        """The last user is gone when our chains hold nothing but the jumps between them."""
        structural = {(c, tuple(r)) for _, c, r in JUMPS}
        for table, chains in CHAINS.items():
            if not set(chains) <= self.chains[table]:
                return  # not (all) there: nothing to remove, or someone else's half
            if any(c in chains and (c, r) not in structural for c, r in self.rules[table]):
                return
        for table, chain, rule in reversed(JUMPS):
            self.delete(table, chain, rule)
        for table, chains in CHAINS.items():
            for chain in chains:
                self.chains[table].discard(chain)
                self._line(table, "-X", chain)

    def commit(self) -> None:
        text = "".join(f"*{table}\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"
                       for table, lines in self.lines.items() if lines)
        if not text:
            return
        proc = subprocess.run(["iptables-restore", "-w", "5", "--noflush"], input=text, capture_output=True, text=True)
        if proc.returncode != 0:
            raise MinidockerError(f"iptables-restore: {proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else proc.returncode}",
                                  "is the iptables package installed and nf_tables loaded? see `minidocker doctor`")
        self.lines = {"nat": [], "filter": []}


def change(edit) -> None:
    """Read the tables, let `edit(rules)` decide what to change, write it: under the host-wide
    lock. Only minidocker takes our lock; if some other program (a test's leak check, an admin)
    changed the tables between our read and our write, the transaction fails as a whole and is
    simply tried again on what is there now."""
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        for attempt in range(3):
            rules = Ruleset()
            edit(rules)
            try:
                rules.commit()
                return
            except MinidockerError:
                if attempt == 2:
                    raise


# ---------------------------------------------------------------------------------------------
# Networks

# --8<-- [start:network-rules]
def network_rules(net: dict) -> list[tuple[str, str, list[str], bool]]:
    """(table, chain, rule, first?) for one network. `first`: inserted above the isolation jump
    in MINIDOCKER-FORWARD (replies and published ports are let in before isolation drops)."""
    from minidocker.network import networks

    bridge = networks.bridge_name(net)
    subnet = net["IPAM"]["Config"][0]["Subnet"]
    if net.get("Internal"):
        # --internal: nothing leaves the bridge, nothing from elsewhere enters it; no NAT.
        return [("filter", ISOLATION_1, ["-i", bridge, "!", "-o", bridge, "-j", "DROP"], False),
                ("filter", ISOLATION_1, ["!", "-i", bridge, "-o", bridge, "-j", "DROP"], False),
                ("filter", FORWARD_CHAIN, ["-i", bridge, "-o", bridge, "-j", "ACCEPT"], False)]
    return [
        # Outbound: the world answers the host's address, which conntrack maps back.
        ("nat", POSTROUTING_CHAIN, ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"], False),
        # A published port reached on 127.0.0.1: the container cannot answer a loopback address.
        ("nat", POSTROUTING_CHAIN, ["-s", "127.0.0.0/8", "-o", bridge, "-j", "MASQUERADE"], False),
        # A container reaching a neighbour's published port through the host: the answer must
        # come back through the host too, to be un-DNATed.
        ("nat", POSTROUTING_CHAIN, ["-s", subnet, "-o", bridge, "-m", "conntrack", "--ctstate", "DNAT",
                                    "-j", "MASQUERADE"], False),
        ("filter", FORWARD_CHAIN, ["-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED",
                                   "-j", "ACCEPT"], True),
        ("filter", FORWARD_CHAIN, ["-o", bridge, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"], True),
        # Two stages, as Docker's: leaving this bridge for another bridge of ours is dropped.
        ("filter", ISOLATION_1, ["-i", bridge, "!", "-o", bridge, "-j", ISOLATION_2], False),
        ("filter", ISOLATION_2, ["-o", bridge, "-j", "DROP"], False),
        ("filter", FORWARD_CHAIN, ["-i", bridge, "-j", "ACCEPT"], False),
    ]
# --8<-- [end:network-rules]


def _sysctl(path: str, value: str) -> None:
    try:
        with open(f"/proc/sys/net/ipv4/{path}", "w") as f:
            f.write(value)
    except FileNotFoundError:  # the bridge is already gone
        pass


def network_created(net: dict) -> None:
    """A network (NetworkResource dict) and its bridge were just made: add its rules."""
    from minidocker.network import networks

    def edit(rules: Ruleset) -> None:
        rules.ensure_chains()
        for table, chain, rule, first in network_rules(net):
            rules.add(table, chain, rule, first)
    change(edit)
    if not net.get("Internal"):
        _sysctl(f"conf/{networks.bridge_name(net)}/route_localnet", "1")
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            if f.read().strip() != "1":
                _sysctl("ip_forward", "1")  # as dockerd does; we never turn it off again


def network_removed(net: dict) -> None:
    """A network is about to be removed (its bridge still exists): its rules go, and the chains
    with the last network."""
    from minidocker.network import networks

    _sysctl(f"conf/{networks.bridge_name(net)}/route_localnet", "0")
    def edit(rules: Ruleset) -> None:
        for table, chain, rule, _ in network_rules(net):
            rules.delete(table, chain, rule)
        rules.remove_chains_if_unused()
    change(edit)


# ---------------------------------------------------------------------------------------------
# Containers: published ports

def _owner_tag(container_id: str) -> str:
    """Names the rule's container and the supervisor that holds its ports: "minidocker
    CID12 4242/981723" (pid/start time: a pid alone may be reused by another process)."""
    from minidocker.runtime import process_start_time

    return f"minidocker {container_id[:12]} {os.getpid()}/{process_start_time(os.getpid())}"


# --8<-- [start:dnat-rule]
def dnat_rule(proto: str, host_ip: str, host_port: int, container_ip: str, container_port: int,
              tag: str) -> list[str]:
    """The MINIDOCKER rule that publishes one port, as iptables' words: packets for
    HOST_IP:HOST_PORT are rewritten to go to CONTAINER_IP:CONTAINER_PORT."""
    # --8<-- [start:ex-04-dnat]
    # Return iptables' words: -d HOST_IP/32 (none for 0.0.0.0, any address of the host), -p and
    # -m PROTO --dport HOST_PORT, -m comment --comment TAG, -j DNAT --to-destination IP:PORT.
    rule = [] if host_ip == "0.0.0.0" else ["-d", f"{host_ip}/32"]
    rule += ["-p", proto, "-m", proto, "--dport", str(host_port)]  # -m: the match that knows --dport
    rule += ["-m", "comment", "--comment", tag]  # who owns it: cleanup_stale() reads it
    rule += ["-j", "DNAT", "--to-destination", f"{container_ip}:{container_port}"]
    return rule
    # --8<-- [end:ex-04-dnat]
# --8<-- [end:dnat-rule]


def endpoint_up(net: dict, container_id: str, ip: str, host_config: dict) -> None:
    """A container's endpoint on `net` has address `ip`: publish its ports there. Called in the
    container's supervisor, which holds the host ports for as long as it lives.

    The ports go to the first non-internal network the container joins (Docker publishes on the
    endpoint that gives the container its default gateway)."""
    if net.get("Internal") or container_id in _held:
        return
    from minidocker.container import records

    c = records.find(container_id)
    want = published.wanted(c.record["Config"], host_config)
    if not want:
        return
    sockets, rules, tag = [], [], _owner_tag(container_id)
    shown = {port: None for port in c.record["Config"].get("ExposedPorts") or {}}
    try:
        for port, host_ip, host_port in want:
            number, _, proto = port.partition("/")
            host_ip = published.ipv4_only(host_ip)
            try:
                sock, chosen = published.hold(proto, host_ip, host_port)
            except MinidockerError as e:
                e.what = (f"driver failed programming external connectivity on endpoint {c.name} "
                          f"({container_id[:12]}): {e.what}")
                raise
            sockets.append(sock)
            rules.append(dnat_rule(proto, host_ip, chosen, ip, int(number), tag))
            shown.setdefault(port, None)
            shown[port] = (shown[port] or []) + [{"HostIp": host_ip, "HostPort": str(chosen)}]
        def edit(ruleset: Ruleset) -> None:
            ruleset.ensure_chains()
            for rule in rules:
                ruleset.add("nat", DNAT_CHAIN, rule)
        change(edit)
        published.save(container_id, shown)
    except BaseException:
        for sock in sockets:
            sock.close()
        _remove_container_rules(container_id, ip)
        raise
    _held[container_id] = sockets


def _remove_container_rules(container_id: str, ip: str | None = None) -> None:
    def edit(rules: Ruleset) -> None:
        for rule in rules.of("nat", DNAT_CHAIN):
            tag = _tag_of(rule)
            if tag and tag[0] == container_id[:12] and (ip is None or _destination(rule) == ip):
                rules.delete("nat", DNAT_CHAIN, rule)
        rules.remove_chains_if_unused()
    change(edit)


def _tag_of(rule: list[str]) -> list[str] | None:
    """["CID12", "PID/START"] from a rule's comment "minidocker CID12 PID/START", else None."""
    if "--comment" in rule:
        words = rule[rule.index("--comment") + 1].split()
        if len(words) == 3 and words[0] == "minidocker":
            return words[1:]
    return None


def _destination(rule: list[str]) -> str:
    return rule[rule.index("--to-destination") + 1].rsplit(":", 1)[0] if "--to-destination" in rule else ""


def endpoint_down(net: dict, container_id: str, ip: str, host_config: dict) -> None:
    """A container's endpoint on `net` is going away: its DNAT rules there go, and its host ports
    are let go (when this is the supervisor that held them; else they went with it)."""
    if net.get("Internal"):
        return
    if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
        _remove_container_rules(container_id, ip)
    for sock in _held.pop(container_id, []):
        sock.close()
    try:
        published.forget(container_id)
    except MinidockerError:
        pass


# ---------------------------------------------------------------------------------------------
# After a SIGKILL

def _alive(owner: str) -> bool:
    from minidocker.runtime import process_start_time

    pid, _, start = owner.partition("/")
    return pid.isdigit() and start.isdigit() and process_start_time(int(pid)) == int(start)


def _bridges_named(rule: list[str]) -> list[str]:
    return [rule[i + 1] for i, word in enumerate(rule[:-1]) if word in ("-i", "-o") and re.match(r"md", rule[i + 1])]


def cleanup_stale() -> None:
    """Remove the rules whose owner is gone: a container's, when its supervisor died (SIGKILL);
    a network's, when its bridge no longer exists. One iptables-save when there is nothing to do."""
    def edit(rules: Ruleset) -> None:
        # Listed after the rules were read, not before: a network made in between has its bridge
        # before its rules, so every rule read here whose bridge is missing is truly stale.
        links = set(os.listdir("/sys/class/net"))
        for rule in rules.of("nat", DNAT_CHAIN):
            tag = _tag_of(rule)
            if tag and not _alive(tag[1]):
                rules.delete("nat", DNAT_CHAIN, rule)
        for table, chains in CHAINS.items():
            for chain in chains:
                for rule in rules.of(table, chain):
                    if any(b not in links for b in _bridges_named(rule)):
                        rules.delete(table, chain, rule)
        rules.remove_chains_if_unused()
    change(edit)
