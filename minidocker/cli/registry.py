"""The registry commands: pull, push, login, logout (Docker's flags, output and exit codes).

The work is in minidocker/image/pull.py, push.py and auth.py; this module turns flags into calls.
A failed pull, push or login exits 1, as the docker CLI does (the daemon's error, not the engine's
125). `image pull` and `image push` (cli/image.py) reuse _pull_flags/cmd_pull, _push_flags/cmd_push.
"""

import getpass
import sys

from minidocker.errors import MinidockerError

EXIT_FAILED = 1


def _pull_flags(p) -> None:
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("-a", "--all-tags", action="store_true", help="download all tagged images (not in minidocker)")
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="set platform if server is multi-platform capable")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.add_argument("--disable-content-trust", action="store_true", default=True, help="ignored (no content trust)")


def cmd_pull(args) -> int:
    from minidocker.image import pull

    if args.all_tags:
        raise MinidockerError("--all-tags is not supported by minidocker", "pull one tag at a time",
                              exit_code=EXIT_FAILED)
    image = pull.pull(args.name, platform=args.platform, quiet=args.quiet)
    print(image.names[-1])  # the full name, even with -q (docker pull -q prints just that)
    return 0


def _push_flags(p) -> None:
    p.add_argument("name", metavar="NAME[:TAG]")
    p.add_argument("-a", "--all-tags", action="store_true", help="push all tags of the repository (not in minidocker)")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress verbose output")
    p.add_argument("--disable-content-trust", action="store_true", default=True, help="ignored (no content trust)")


def cmd_push(args) -> int:
    from minidocker.image import push, reference

    if args.all_tags:
        raise MinidockerError("--all-tags is not supported by minidocker", "push one tag at a time",
                              exit_code=EXIT_FAILED)
    push.push(args.name, quiet=args.quiet)
    if args.quiet:
        print(reference.normalize(args.name))
    return 0


def _login_flags(p) -> None:
    p.add_argument("server", nargs="?", metavar="SERVER")
    p.add_argument("-u", "--username")
    p.add_argument("-p", "--password")
    p.add_argument("--password-stdin", action="store_true", help="take the password from stdin")


def cmd_login(args) -> int:
    from minidocker.image import auth
    from minidocker.image.registry import Registry, RegistryError

    host = auth.server_host(args.server)
    if args.password and args.password_stdin:
        raise MinidockerError("--password and --password-stdin are mutually exclusive", "give one")
    user, password = args.username, args.password
    if args.password_stdin:
        if not user:
            raise MinidockerError("Must provide --username with --password-stdin", "add -u USER")
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    elif password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    if not user or not password:
        if not sys.stdin.isatty():
            raise MinidockerError("Cannot perform an interactive login from a non TTY device",
                                  "use -u USER --password-stdin", exit_code=EXIT_FAILED)
        user = user or input("Username: ").strip()
        password = password or getpass.getpass("Password: ")
    try:
        # The same way a pull would authenticate: ping, then a token (no scope) or Basic on /v2/.
        Registry(host, credentials=(user, password)).authenticate()
    except RegistryError as e:
        raise MinidockerError(e.what, f"login to {host} refused", exit_code=EXIT_FAILED) from None
    auth.store_credentials(host, user, password)
    print(f"WARNING! Your password will be stored unencrypted in {auth.config_path()}.", file=sys.stderr)
    print("Login Succeeded")
    return 0


def _logout_flags(p) -> None:
    p.add_argument("server", nargs="?", metavar="SERVER")


def cmd_logout(args) -> int:
    from minidocker.image import auth

    host = auth.server_host(args.server)
    if not auth.remove_credentials(host):
        print(f"Not logged in to {auth.config_key(host)}")
        return 0
    print(f"Removing login credentials for {auth.config_key(host)}")
    return 0


COMMANDS = {
    "pull": ("download an image from a registry", _pull_flags, cmd_pull),
    "push": ("upload an image to a registry", _push_flags, cmd_push),
    "login": ("log in to a registry", _login_flags, cmd_login),
    "logout": ("log out from a registry", _logout_flags, cmd_logout),
}


def add_commands(sub, words=()) -> None:
    asked = words[0] if words and words[0] in COMMANDS else None
    for name, (help, add_flags, func) in COMMANDS.items():
        if asked in (None, name):
            p = sub.add_parser(name, help=help)
            add_flags(p)
            p.set_defaults(func=func)
