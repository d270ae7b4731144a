"""From `run` and `create` flags to the body of POST /containers/create, as the docker CLI builds it.

The docker CLI does little with its flags: it checks their syntax ("64m" is a size, "0.5" a
number), converts them to the API's units (bytes, nano-CPUs) and sends JSON. What the values mean
(is 1 MB of memory enough? is the name valid?) is the engine's to judge (container/config.py).
tests/test_create_body.py checks this module against the real docker CLI, flag by flag.

    -m 64m        ->  HostConfig.Memory    67108864
    --cpus 0.5    ->  HostConfig.NanoCpus  500000000
    -u 1000:1000  ->  User                 "1000:1000"
"""

import os
import re

from minidocker.container.config import INT64_MAX, INT64_MIN  # the Engine API's numbers are Go int64s
from minidocker.errors import MinidockerError

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def _invalid(text: str, flag: str, why: str, hint: str) -> MinidockerError:
    """The docker CLI's words for a flag value it cannot take."""
    return MinidockerError(f'invalid argument "{text}" for "{flag}" flag: {why}', hint)


def parse_size(text: str, flag: str = "-m, --memory") -> int:
    """Docker's size syntax, binary units: "64m", "64M", "64mb", "64MiB" -> 67108864; "100" is bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", text.strip().lower())
    if not match:
        raise _invalid(text, flag, f"invalid size: '{text}'", "use a number with an optional unit: b, k, m, g, e.g. 64m")
    number, unit = match.groups()
    size = float(number) * _UNITS[unit]  # a float, as Docker computes it ("1.5g")
    if size > INT64_MAX:
        # The docker CLI lets such a number wrap around to a negative one (the daemon then says
        # it is under 6MB); we say what is wrong.
        raise _invalid(text, flag, "value out of range", "the most the API can carry is 8191p")
    return int(size)  # a fraction of a byte is cut off, as Docker does


def parse_nano_cpus(text: str) -> int:
    """--cpus 0.5 -> 500000000: the API counts CPUs in billionths, as an integer.

    Exact, as the docker CLI's big.Rat: "1/3" CPU is no whole number of nano-CPUs, so it is
    refused rather than rounded. (A float holds few decimals exactly: 0.29 is 0.28999999999999998...)
    """
    # The syntax first, with at most 4 exponent digits: Fraction("1e999999999") would build a
    # billion-digit number before we could say it is too big.
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,4})?|[+-]?\d+/0*[1-9]\d*", text):
        raise _invalid(text, "--cpus", f"failed to parse {text} as a rational number", "use a number such as 0.5")
    from fractions import Fraction  # here: only --cpus needs it, and every import slows a start

    nano = Fraction(text) * 10**9
    if nano.denominator != 1:
        raise _invalid(text, "--cpus", "value is too precise", "use at most 9 decimals")
    if abs(nano.numerator) > INT64_MAX:
        raise _invalid(text, "--cpus", "value out of range", "use --cpus within the machine's CPUs")
    return nano.numerator


def parse_int64(text: str, flag: str) -> int:
    """An integer flag, as Go's strconv.ParseInt(text, 0, 64) reads it: "20", "-1", "0x10"."""
    try:
        number = int(text, 0)
    except ValueError:
        raise _invalid(text, flag, f'strconv.ParseInt: parsing "{text}": invalid syntax', "use a whole number") from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise _invalid(text, flag, f'strconv.ParseInt: parsing "{text}": value out of range', "use a smaller number")
    return number


def parse_env(items: list[str]) -> list[str] | None:
    """-e NAME=VALUE as is; -e NAME takes NAME's value from our environment (sent bare if unset).
    A later -e for the same NAME replaces the earlier one, in the earlier one's place."""
    env: dict[str, str] = {}
    for item in items:
        name = item.split("=", 1)[0]
        if not name:
            raise MinidockerError(f"invalid environment variable: {item}", "use -e NAME=VALUE")
        env[name] = item if "=" in item or name not in os.environ else f"{name}={os.environ[name]}"
    return list(env.values()) or None


def image_and_command(args, verb: str) -> tuple[str, list[str]]:
    """`run [FLAGS] IMAGE [CMD...]`: the first word after the flags is the image, the rest its
    command. With --rootfs DIR (minidocker's own, from chapter 01) every word is the command, and
    the "image" is the directory, made absolute: no image reference starts with "/", so the engine
    can tell the two apart."""
    words = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.rootfs:
        return os.path.abspath(args.rootfs), words
    if not words:
        raise MinidockerError(f'"{verb}" requires at least 1 argument', f"minidocker {verb} [OPTIONS] IMAGE [COMMAND] [ARG...]")
    return words[0], words[1:]


def entrypoint(args) -> list[str] | None:
    """--entrypoint PROG -> [PROG]; --entrypoint "" -> [""], which tells the engine to reset the
    image's Entrypoint to none (the docker CLI sends exactly this); no flag -> None."""
    return None if args.entrypoint is None else [args.entrypoint]


def parse_device(flag: str) -> dict:
    """--device HOST[:CONTAINER][:PERMISSIONS] -> a HostConfig.Devices entry, as the docker CLI
    parses it: the container's path defaults to the host's, the permissions to rwm (read, write,
    mknod)."""
    parts = flag.split(":")
    permissions = "rwm"
    if len(parts) > 1 and parts[-1] and set(parts[-1]) <= set("rwm"):
        permissions = parts.pop()
    if not 1 <= len(parts) <= 2 or not parts[0]:
        raise MinidockerError(f"invalid device specification: {flag}", "--device /dev/HOST[:/dev/CONTAINER][:rwm]")
    return {"PathOnHost": parts[0], "PathInContainer": parts[-1], "CgroupPermissions": permissions}


def create_body(args, detach: bool = False, verb: str = "create") -> tuple[str | None, dict]:
    """(name, body) for POST /containers/create?name=NAME, from parsed `run`/`create` flags."""
    image, command = image_and_command(args, verb)
    host_config = {"AutoRemove": args.rm, "ReadonlyRootfs": args.read_only,
                   "Memory": parse_size(args.memory) if args.memory is not None else 0,
                   "NanoCpus": parse_nano_cpus(args.cpus) if args.cpus is not None else 0,
                   "PidsLimit": parse_int64(args.pids_limit, "--pids-limit") if args.pids_limit is not None else 0}
    if args.init:
        host_config["Init"] = True  # the docker CLI sends Init only when it is asked for
    from minidocker.container import restart  # chapter 07: who starts it again when it exits

    host_config["RestartPolicy"] = restart.parse_flag(args.restart)
    if args.rm and host_config["RestartPolicy"]["Name"] not in ("", "no"):
        raise MinidockerError("conflicting options: cannot specify both --restart and --rm", "choose one")
    exposed, host_config["PortBindings"] = {}, {}
    if args.publish or args.expose:  # chapter 04: network/ports.py (imported only when asked for)
        from minidocker.network.ports import parse_expose, parse_publish

        exposed, host_config["PortBindings"] = parse_publish(args.publish)
        exposed.update(parse_expose(args.expose))
    host_config["PublishAllPorts"] = args.publish_all
    # Chapter 08: sent as the docker CLI sends them; the engine checks them (minidocker/security/).
    if args.security_opt:  # seccomp=FILE: the client reads the file and sends its JSON
        from minidocker.security.options import from_cli

        args.security_opt = from_cli(args.security_opt)
    host_config.update({"CapAdd": args.cap_add or None, "CapDrop": args.cap_drop or None,
                        "Privileged": args.privileged, "SecurityOpt": args.security_opt or None,
                        "Devices": [parse_device(d) for d in args.device], "UsernsMode": args.userns})
    body = {
        "Hostname": args.hostname or "", "User": args.user or "",
        # Which streams the client will attach: all of them for `run`, none for `run -d`.
        "AttachStdin": args.interactive and not detach,
        "AttachStdout": not detach, "AttachStderr": not detach,
        "Tty": args.tty, "OpenStdin": args.interactive,
        "StdinOnce": args.interactive and not detach,  # stdin closes when the attached client leaves
        "Env": parse_env(args.env), "Cmd": command or None,
        # The image as typed (Docker keeps it so: `ps` shows it), or a --rootfs directory.
        "Image": image, "WorkingDir": args.workdir or "", "Entrypoint": entrypoint(args),
        "HostConfig": host_config,
    }
    if exposed:
        body["ExposedPorts"] = dict(sorted(exposed.items()))  # absent when empty, as the docker CLI sends it
    network_flags(args, body)
    if args.volume or args.mount or args.tmpfs or args.volumes_from:
        from minidocker.volume import flags as volume_flags  # chapter 05: -v, --mount, --tmpfs, --volumes-from

        volume_flags.apply(args, body)
    return args.name, body


def network_flags(args, body: dict) -> None:
    """--network & co. (chapter 04): HostConfig.NetworkMode ("default" unless given, as the docker
    CLI sends it), Dns, DnsSearch, ExtraHosts; --ip and --network-alias belong to the endpoint,
    NetworkingConfig.EndpointsConfig[NETWORK]."""
    host_config = body["HostConfig"]
    host_config["NetworkMode"] = args.network
    for key, values in (("Dns", args.dns), ("DnsSearch", args.dns_search), ("ExtraHosts", args.add_host)):
        if values:
            host_config[key] = list(values)
    endpoint = {}
    if args.ip:
        endpoint["IPAMConfig"] = {"IPv4Address": args.ip}
    if args.network_alias:
        endpoint["Aliases"] = list(args.network_alias)
    if endpoint:
        body["NetworkingConfig"] = {"EndpointsConfig": {args.network: endpoint}}
