"""`minidocker network ...`: Docker's network commands (chapter 04), over network/networks.py
and network/sandbox.py (connect, disconnect)."""

import json
import sys

from minidocker.errors import MinidockerError

LS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE"}
LS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


def _sweep() -> None:
    """Any network command first clears what killed containers left (lifecycle's refresh)."""
    from minidocker.container.lifecycle import all_containers

    all_containers()


def cmd_create(args) -> int:
    from minidocker.network import networks

    labels = {}
    for item in args.label:
        key, _, value = item.partition("=")
        labels[key] = value
    _sweep()
    print(networks.create(args.name, args.driver, args.subnet, args.gateway, args.internal, labels)["Id"])
    return 0


def cmd_ls(args) -> int:
    from minidocker.container import formatting
    from minidocker.network import networks

    _sweep()
    rows = [{"ID": n["Id"] if args.no_trunc else n["Id"][:12], "Name": n["Name"], "Driver": n["Driver"],
             "Scope": n["Scope"], "Internal": str(n["Internal"]).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in n["Labels"].items())}
            for n in sorted(networks.all(), key=lambda n: n["Name"])]
    fmt = "{{.ID}}" if args.quiet else args.format or LS_TABLE
    sys.stdout.write(formatting.write(fmt, rows, LS_HEADERS))
    return 0


def cmd_inspect(args) -> int:
    from minidocker.network import networks

    found, code = [], 0
    for ref in args.network:
        try:
            found.append(networks.get(ref))
        except MinidockerError as e:
            print(f"Error response from daemon: {e.what}", file=sys.stderr)
            code = 1
    if args.format:
        from minidocker.container.gotemplate import render

        for net in found:
            print(render(args.format, net))
    else:
        print(json.dumps(found, indent=4))
    return code


def cmd_rm(args) -> int:
    from minidocker.network import networks

    _sweep()
    code = 0
    for ref in args.network:  # as the docker CLI: each in turn, the errors said, exit 1 if any
        try:
            networks.remove(ref)
            print(ref)
        except MinidockerError as e:
            print(f"Error response from daemon: {e.what}", file=sys.stderr)
            code = 1
    return code


def cmd_prune(args) -> int:
    from minidocker.network import networks

    from minidocker.cli import confirm

    if not args.force and not confirm("WARNING! This will remove all custom networks not used by at least one container."):
        return 0
    _sweep()
    removed = networks.prune()
    if removed:
        print("Deleted Networks:\n" + "".join(f"{name}\n" for name in removed), end="")
    return 0


def cmd_connect(args) -> int:
    from minidocker.network import sandbox

    sandbox.connect(args.network, args.container, args.ip, args.alias)
    return 0


def cmd_disconnect(args) -> int:
    from minidocker.network import sandbox

    sandbox.disconnect(args.network, args.container)
    return 0


def add_commands(sub, words=()) -> None:
    net = sub.add_parser("network", help="manage networks")
    verbs = net.add_subparsers(dest="verb", metavar="COMMAND", parser_class=type(net))
    net.set_defaults(func=lambda args: net.print_help() or 0)
    p = verbs.add_parser("create", help="create a network")
    p.add_argument("-d", "--driver", default="bridge", help="the driver (only bridge)")
    p.add_argument("--subnet", help="a subnet in CIDR notation (default: one of the pool's free /24s)")
    p.add_argument("--gateway", help="the bridge's address (default: the subnet's first)")
    p.add_argument("--internal", action="store_true", help="no traffic in or out of the network (no NAT)")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="set metadata")
    p.add_argument("name", metavar="NETWORK")
    p.set_defaults(func=cmd_create)
    p = verbs.add_parser("ls", aliases=["list"], help="list networks")
    p.add_argument("-q", "--quiet", action="store_true", help="only the ids")
    p.add_argument("--no-trunc", action="store_true", help="the whole ids")
    p.add_argument("--format", help="a Go template, or table TEMPLATE")
    p.set_defaults(func=cmd_ls)
    p = verbs.add_parser("inspect", help="show networks in detail (NetworkResource JSON)")
    p.add_argument("-f", "--format", help="a Go template")
    p.add_argument("network", nargs="+", metavar="NETWORK")
    p.set_defaults(func=cmd_inspect)
    p = verbs.add_parser("rm", aliases=["remove"], help="remove networks")
    p.add_argument("network", nargs="+", metavar="NETWORK")
    p.set_defaults(func=cmd_rm)
    p = verbs.add_parser("prune", help="remove every network no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_prune)
    p = verbs.add_parser("connect", help="connect a container to a network")
    p.add_argument("--ip", help="its IPv4 address there")
    p.add_argument("--alias", action="append", default=[], help="another name for it there")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_connect)
    p = verbs.add_parser("disconnect", help="disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true", help="even if it is not running")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    p.set_defaults(func=cmd_disconnect)
